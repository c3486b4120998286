"""The compose stack's configs checked by the real tools that read them:
promtool (Prometheus config, with the generated rules loaded through the same
rule_files glob), amtool (the generated Alertmanager config), haproxy -c
(gateway), blackbox_exporter --config.check; and the k8s copy of the blackbox
modules equals compose's."""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, Report


def run(report, what, cmd, ok_pattern=None):
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip()
    if out.returncode != 0 or (ok_pattern and not re.search(ok_pattern, text)):
        report.fail(f"{what}: `{' '.join(map(str, cmd))}` exited {out.returncode}:\n{text[-1500:]}")
        return False
    report.ok(f"{what}: {' '.join(Path(str(c)).name if i == 0 else str(c) for i, c in enumerate(cmd))}")
    return True


def tool(report, *names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    report.fail(f"{names[0]} not installed (scripts/install-deps.sh installs it)")
    return None


def main(argv):
    report = Report("compose configs: promtool, amtool, haproxy, blackbox_exporter")
    with tempfile.TemporaryDirectory() as tmp:
        promtool = tool(report, "promtool")
        if promtool:
            cfg = (REPO / "deploy/prometheus/prometheus.yml").read_text()
            if "/etc/prometheus/rules/*.rules.yaml" not in cfg:
                report.fail("deploy/prometheus/prometheus.yml does not load /etc/prometheus/rules/*.rules.yaml (the generated rules)")
            local = Path(tmp) / "prometheus.yml"
            local.write_text(cfg.replace("/etc/prometheus/rules/", str(REPO / "alerts") + "/"))
            n_rules = len(list((REPO / "alerts").glob("*.rules.yaml")))
            if run(report, "Prometheus config with the generated rules", [promtool, "check", "config", local],
                   r"SUCCESS: \d+ rules found"):
                report.ok(f"  ... {n_rules} generated rule files loaded through the compose rule_files glob")
        amtool = tool(report, "amtool")
        if amtool:
            run(report, "Alertmanager config (generated)", [amtool, "check-config", REPO / "alerts/alertmanager.yml"])
            am = (REPO / "alerts/alertmanager.yml").read_text()
            hooks = set(re.findall(r"url: (http://[^\s]+)", am))
            if any("127.0.0.1:9095" not in h for h in hooks):
                report.fail(f"webhooks {hooks} no longer point at 127.0.0.1:9095, where the compose pager listens")
            else:
                report.ok("webhooks reach the pager (127.0.0.1:9095 in Alertmanager's network namespace)")
        haproxy = tool(report, "haproxy")
        if haproxy:
            run(report, "HAProxy gateway", [haproxy, "-c", "-f", REPO / "deploy/haproxy/haproxy.cfg"], r"Configuration file is valid")
        bb = tool(report, "prometheus-blackbox-exporter", "blackbox_exporter")
        if bb:
            run(report, "blackbox modules", [bb, "--config.check", f"--config.file={REPO / 'deploy/blackbox/blackbox.yml'}"],
                r"Config file is ok")
    if (REPO / "deploy/blackbox/blackbox.yml").read_bytes() != (REPO / "k8s/base/blackbox/blackbox.yml").read_bytes():
        report.fail("k8s/base/blackbox/blackbox.yml differs from deploy/blackbox/blackbox.yml (keep them identical)")
    else:
        report.ok("k8s/base/blackbox/blackbox.yml == deploy/blackbox/blackbox.yml")
    return report.finish()


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
