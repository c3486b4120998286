"""docs/runbook.md has one section per alert the generated rules can raise
(alerts/*.rules.yaml `alert:` fields), and no section for an alert that does
not exist. Each section must say what to check, how to fix it and how to
verify the fix."""

import re
import sys
from pathlib import Path

import yaml

from common import REPO, Report


def alert_names(alerts_dir):
    names = {}
    for f in sorted(Path(alerts_dir).glob("*.rules.yaml")):
        for g in (yaml.safe_load(f.read_text()) or {}).get("groups", []):
            for r in g.get("rules", []):
                if "alert" in r:
                    names[r["alert"]] = f.name
    return names


def sections(runbook):
    text = Path(runbook).read_text()
    alerts_part = text.split("\n## Alerts", 1)[1] if "\n## Alerts" in text else ""
    alerts_part = re.split(r"\n## (?!#)", alerts_part, maxsplit=1)[0]
    out = {}
    parts = re.split(r"^### +(\S+)[ \t]*$", alerts_part, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2]):
        out[name] = body
    return out


def check(alerts_dir, runbook, report):
    names = alert_names(alerts_dir)
    if not names:
        report.fail(f"no alerts found in {alerts_dir}/*.rules.yaml")
        return
    secs = sections(runbook)
    for n, src in sorted(names.items()):
        body = secs.get(n)
        if body is None:
            report.fail(f"alert {n} ({src}) has no '### {n}' section under '## Alerts' in docs/runbook.md")
        elif any(lead not in body for lead in ("**Check.**", "**Fix.**", "**Verify.**")):
            report.fail(f"runbook section {n} lacks **Check.**, **Fix.** or **Verify.**")
    for n in sorted(set(secs) - set(names)):
        report.fail(f"runbook section {n} names no alert in the generated rules")
    if set(secs) == set(names):
        report.ok(f"all {len(names)} alerts of {', '.join(sorted(set(names.values())))} have a runbook section with Check, Fix and Verify")


def main(argv):
    report = Report("runbook: a section for every generated alert")
    check(REPO / "alerts", REPO / "docs" / "runbook.md", report)
    # self-test: an alert without a section must fail
    import tempfile, shutil
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REPO / "alerts", Path(tmp) / "alerts")
        extra = Path(tmp) / "alerts" / "zz-selftest.rules.yaml"
        extra.write_text("groups:\n- name: t\n  rules:\n  - alert: SelfTestAlertWithoutRunbook\n    expr: vector(1)\n")

        class Q:
            errors = []

            def ok(self, w):
                pass

            def fail(self, w):
                self.errors.append(w)
        q = Q()
        check(Path(tmp) / "alerts", REPO / "docs" / "runbook.md", q)
        if any("SelfTestAlertWithoutRunbook" in e for e in q.errors):
            report.ok("self-test: an alert without a runbook section is rejected")
        else:
            report.fail("self-test: an alert without a runbook section was ACCEPTED")
    return report.finish()


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
