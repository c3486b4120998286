"""Dockerfile: multi-stage release build, non-root runtime, and every binary a
target copies is one the workspace builds (crates/<name>/src/main.rs or a
[[bin]] / src/bin/<name>.rs of a workspace crate)."""

import re
import sys
from pathlib import Path

from common import REPO, Report

# Binaries whose crate is being written concurrently: absent is a WARNING.
PENDING = {"observer"}


def workspace_binaries(root):
    bins = {}
    for cargo in sorted((root / "crates").glob("*/Cargo.toml")):
        crate = cargo.parent
        text = cargo.read_text()
        pkg = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
        pkg_name = pkg.group(1) if pkg else crate.name
        if (crate / "src" / "main.rs").exists():
            bins[pkg_name] = f"crates/{crate.name}/src/main.rs"
        for m in re.finditer(r'^\[\[bin\]\](.*?)(?=^\[|\Z)', text, re.M | re.S):
            n = re.search(r'^name\s*=\s*"([^"]+)"', m.group(1), re.M)
            if n:
                bins[n.group(1)] = f"crates/{crate.name}/Cargo.toml [[bin]]"
        for b in (crate / "src" / "bin").glob("*.rs"):
            bins[b.stem] = f"crates/{crate.name}/src/bin/{b.name}"
    return bins


def check(dockerfile, report, root=REPO):
    text = dockerfile.read_text()
    joined = re.sub(r"\\\n", " ", text)
    stages = {}
    order = []
    current = None
    for line in joined.splitlines():
        m = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(2) or f"stage{len(order)}"
            stages[current] = {"from": m.group(1), "lines": []}
            order.append(current)
        elif current:
            stages[current]["lines"].append(line)
    if "build" not in stages:
        report.fail("no `build` stage")
        return
    build = " ".join(stages["build"]["lines"])
    if "cargo build --release" not in build or "--locked" not in build:
        report.fail("build stage does not run `cargo build --release --locked`")
    else:
        report.ok("build stage runs cargo build --release --locked (multi-stage)")
    static = re.search(r'bins="([^"]+)"', build)
    built = set(static.group(1).split()) if static else set(re.findall(r"--bin\s+([\w-]+)", build))
    conditional = {}
    for m in re.finditer(r'if \[ -f (crates/[\w-]+/Cargo.toml) \]; then bins="\$bins ([\w-]+)"', build):
        conditional[m.group(2)] = m.group(1)
    ws = workspace_binaries(root)
    report.ok(f"workspace binaries: {', '.join(f'{k} ({v})' for k, v in sorted(ws.items()))}")
    for b in sorted(built):
        if b not in ws:
            report.fail(f"build stage builds --bin {b}, which no workspace crate defines")
    for b, guard in sorted(conditional.items()):
        if (root / guard).exists() and b not in ws:
            report.fail(f"{guard} exists but defines no binary {b}")
    runtime_ok = False
    for name in order:
        lines = stages[name]["lines"]
        if name == "runtime":
            runtime_ok = any(re.match(r"USER\s+10001", l) for l in lines)
            if runtime_ok:
                report.ok("runtime stage runs as uid 10001 (non-root)")
            else:
                report.fail("runtime stage has no USER 10001")
        for l in lines:
            m = re.match(r"COPY\s+--from=build\s+/out/([\w-]+)\s+(\S+)", l)
            if not m:
                continue
            b = m.group(1)
            if stages[name]["from"] != "runtime":
                report.fail(f"target {name} copies {b} but is not FROM runtime (non-root base)")
            if b in ws:
                if b in built or b in conditional:
                    report.ok(f"target {name}: copies /out/{b}, built by the build stage, defined by {ws[b]}")
                else:
                    report.fail(f"target {name}: copies /out/{b} but the build stage never builds it")
            elif b in PENDING and b in conditional:
                report.warn(f"target {name}: binary {b!r} is not in the workspace yet ({conditional[b]} missing); "
                            f"the build skips it and `docker build --target {name}` fails until the crate lands")
            else:
                report.fail(f"target {name}: copies /out/{b}, which no workspace crate builds "
                            f"(no crates/{b}/src/main.rs, [[bin]] or src/bin/{b}.rs)")
            ep = [x for x in lines if x.startswith("ENTRYPOINT")]
            if ep and m.group(2) not in ep[-1]:
                report.fail(f"target {name}: ENTRYPOINT {ep[-1]} does not run {m.group(2)}")


class _Quiet:
    def __init__(self):
        self.errors, self.warnings = [], []

    def ok(self, what):
        pass

    def warn(self, what):
        self.warnings.append(what)

    def fail(self, what):
        self.errors.append(what)


def self_test(path, report):
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for c in (REPO / "crates").glob("*/Cargo.toml"):
            if c.parent.name == "observer":
                continue  # a workspace where the observer has not landed yet
            (root / "crates" / c.parent.name / "src").mkdir(parents=True)
            shutil.copy(c, root / "crates" / c.parent.name / "Cargo.toml")
            if (c.parent / "src" / "main.rs").exists():
                (root / "crates" / c.parent.name / "src" / "main.rs").write_text("fn main() {}\n")
        q = _Quiet()
        check(path, q, root)
        if not q.errors and any("observer" in w for w in q.warnings):
            report.ok("self-test: without crates/observer the observer target is a WARNING, not a failure")
        else:
            report.fail(f"self-test: without crates/observer: errors {q.errors[:1]}, warnings {q.warnings[:1]}")
        broken = root / "Dockerfile"
        broken.write_text(path.read_text().replace("/out/todoctl /usr/local/bin/todoctl", "/out/todo-ctl /usr/local/bin/todoctl"))
        q = _Quiet()
        check(broken, q, root)
        if any("todo-ctl" in e for e in q.errors):
            report.ok("self-test: a target copying a binary no crate builds is rejected")
        else:
            report.fail("self-test: a target copying a binary no crate builds was ACCEPTED")


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else REPO / "Dockerfile"
    report = Report(f"dockerfile: {path.name} targets vs workspace binaries")
    check(path, report)
    self_test(path, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
