"""Terraform for DigitalOcean: every .tf parses (python-hcl2), modules and
environments exist, the required resources are there with the settings that
matter (auto-scaling pool, HA database, TLS load balancer, ...), every module
call passes only declared variables and all required ones, variables and
outputs are documented, prod runs the region module in two regions, VPC CIDRs
sit inside the k8s overlays' `vpc` ipBlock, and `terraform fmt -check`."""

import copy
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import hcl2
import yaml

from common import REPO, Report

TF = REPO / "infrastructure" / "terraform"
ENVS = ("dev", "staging", "prod")
MODULES = ("network", "doks", "postgres", "registry", "edge", "region", "cdn")


def unq(v):
    """python-hcl2 8 keeps HCL quoting: strip it from keys and strings."""
    if isinstance(v, dict):
        return {unq(k): unq(x) for k, x in v.items() if not k.startswith("__")}  # __is_block__, __comments__
    if isinstance(v, list):
        return [unq(x) for x in v]
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def load_dir(d, report):
    """Merged view of one directory: resources, variables, outputs, modules."""
    out = {"resource": {}, "variable": {}, "output": {}, "module": {}, "terraform": []}
    for f in sorted(d.glob("*.tf")):
        try:
            with open(f) as fh:
                doc = unq(hcl2.load(fh))
        except Exception as e:  # the parser's error is the finding
            report.fail(f"{f.relative_to(REPO) if f.is_relative_to(REPO) else f.name}: does not parse: {str(e).splitlines()[0][:160]}")
            continue
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    out["resource"][(rtype, rname)] = body
        for kind in ("variable", "output", "module"):
            for block in doc.get(kind, []):
                out[kind].update(block)
        out["terraform"] += doc.get("terraform", [])
    return out


def first(body, key):
    v = body.get(key)
    return v[0] if isinstance(v, list) and v and isinstance(v[0], dict) else v


def check_docs(name, parsed, report):
    for v, body in parsed["variable"].items():
        if not body.get("description") or "type" not in body:
            report.fail(f"{name}: variable {v} needs a description and a type")
    for o, body in parsed["output"].items():
        if not body.get("description"):
            report.fail(f"{name}: output {o} needs a description")


def resolve(value, env_vars):
    """${var.x} -> the variable's default, for the few checks that need a value."""
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{var\.(\w+)\}", value)
        if m and m.group(1) in env_vars:
            return env_vars[m.group(1)].get("default")
    return value


def check(root, report, overlays_root=REPO / "k8s" / "overlays"):
    mods = {}
    for m in MODULES:
        d = root / "modules" / m
        if not d.is_dir():
            report.fail(f"module {m} missing ({d})")
            continue
        mods[m] = load_dir(d, report)
        check_docs(f"modules/{m}", mods[m], report)
    envs = {}
    for e in ENVS:
        d = root / "environments" / e
        if not d.is_dir():
            report.fail(f"environment {e} missing")
            continue
        envs[e] = load_dir(d, report)
        check_docs(f"environments/{e}", envs[e], report)
    files = list(root.rglob("*.tf"))
    report.ok(f"{len(files)} .tf files parsed with python-hcl2 ({len(mods)} modules, {len(envs)} environments)")

    res = {k: v for m in mods.values() for k, v in m["resource"].items()}
    types = {t for t, _ in res}

    def need(rtype, why, pred=None, detail=""):
        bodies = [b for (t, _), b in res.items() if t == rtype]
        if not bodies:
            report.fail(f"no {rtype} ({why})")
        elif pred and not any(pred(b) for b in bodies):
            report.fail(f"{rtype} lacks {detail} ({why})")
        else:
            report.ok(f"{rtype}: {why}")

    need("digitalocean_vpc", "VPC per region", lambda b: "ip_range" in b, "ip_range")
    need("digitalocean_kubernetes_cluster", "DOKS cluster with an auto-scaling node pool",
         lambda b: (first(b, "node_pool") or {}).get("auto_scale") is True
         and "min_nodes" in first(b, "node_pool") and "max_nodes" in first(b, "node_pool")
         and "vpc_uuid" in b, "node_pool.auto_scale = true with min_nodes/max_nodes, vpc_uuid")
    need("digitalocean_firewall", "cloud firewall on the workers", lambda b: "inbound_rule" in b and "tags" in b,
         "inbound_rule + tags")
    need("digitalocean_database_cluster", "managed PostgreSQL in the VPC",
         lambda b: b.get("engine") == "pg" and "private_network_uuid" in b and "node_count" in b,
         'engine = "pg", private_network_uuid, node_count')
    need("digitalocean_database_firewall", "database reachable from the cluster only",
         lambda b: (first(b, "rule") or {}).get("type") == "k8s", 'rule type "k8s"')
    need("digitalocean_container_registry", "container registry")
    need("digitalocean_certificate", "TLS certificate (Let's Encrypt)", lambda b: b.get("type") == "lets_encrypt",
         'type = "lets_encrypt"')
    need("digitalocean_loadbalancer", "load balancer terminating TLS",
         lambda b: b.get("redirect_http_to_https") is True and any(
             r.get("entry_protocol") == "https" and r.get("certificate_name") for r in b.get("forwarding_rule", [])),
         "an https forwarding_rule with certificate_name and redirect_http_to_https")
    need("cloudflare_load_balancer", "Cloudflare in front of the prod regions")

    # postgres HA default, node_count validation
    pg_default = mods.get("postgres", {}).get("variable", {}).get("node_count", {}).get("default")
    region_default = mods.get("region", {}).get("variable", {}).get("db_node_count", {}).get("default")

    # module calls: sources exist, arguments declared, required ones passed
    def check_calls(where, parsed, base):
        for name, body in parsed["module"].items():
            src = body.get("source", "")
            target = (base / src).resolve()
            if not target.is_dir():
                report.fail(f"{where}: module {name}: source {src} does not exist")
                continue
            callee = mods.get(target.name) or load_dir(target, report)
            declared = set(callee["variable"])
            passed = set(body) - {"source", "version", "providers", "depends_on", "count", "for_each"}
            for a in sorted(passed - declared):
                report.fail(f"{where}: module {name} passes {a}, which {src} does not declare")
            for v, vb in callee["variable"].items():
                if "default" not in vb and v not in passed:
                    report.fail(f"{where}: module {name} does not pass required variable {v}")
        report.ok(f"{where}: {len(parsed['module'])} module call(s) pass only declared variables and every required one")

    for m, parsed in mods.items():
        check_calls(f"modules/{m}", parsed, root / "modules" / m)
    for e, parsed in envs.items():
        check_calls(f"environments/{e}", parsed, root / "environments" / e)

    # providers pinned
    for where, parsed in [(f"modules/{m}", p) for m, p in mods.items()] + [(f"environments/{e}", p) for e, p in envs.items()]:
        used = {t.split("_")[0] for t, _ in parsed["resource"]}
        pinned = {}
        for t in parsed["terraform"]:
            for rp in t.get("required_providers", []):
                for k, v in rp.items():
                    if isinstance(v, dict) and v.get("version"):
                        pinned[k] = v["version"]
        for p in sorted(used - set(pinned)):
            report.fail(f"{where}: provider {p} used without a pinned version in required_providers")
        if where.startswith("environments") and not any("backend" in t for t in parsed["terraform"]):
            report.fail(f"{where}: no remote state backend")

    # environments: region module, HA database outside dev, prod in two regions
    for e, parsed in envs.items():
        regions = {n: b for n, b in parsed["module"].items() if b.get("source", "").endswith("modules/region")}
        if not regions:
            report.fail(f"environments/{e}: does not instantiate modules/region")
            continue
        if not any(b.get("source", "").endswith("modules/registry") for b in parsed["module"].values()):
            report.fail(f"environments/{e}: no container registry")
        slugs = set()
        for n, b in regions.items():
            slugs.add(resolve(b.get("region"), parsed["variable"]))
            count = b.get("db_node_count", region_default if region_default is not None else pg_default)
            if e != "dev" and (not isinstance(count, int) or count < 2):
                report.fail(f"environments/{e}: module {n}: PostgreSQL node_count {count} is not HA (want >= 2)")
            cidr = b.get("vpc_ip_range")
            ovl = overlays_root / e / "kustomization.yaml"
            if ovl.exists() and cidr:
                want = re.findall(r"value: (\d+\.\d+\.\d+\.\d+/\d+)", ovl.read_text())
                want = [w for w in want if not w.startswith("10.10.0.0/16") or e == "dev"]
                block = ipaddress.ip_network(want[-1]) if want else None
                if block is None or not ipaddress.ip_network(cidr).subnet_of(block):
                    report.fail(f"environments/{e}: VPC {cidr} is outside the overlay's vpc ipBlock {block}")
                else:
                    report.ok(f"environments/{e}: module {n}: VPC {cidr} inside k8s/overlays/{e} vpc ipBlock {block}")
        if e == "prod":
            if len(regions) != 2 or len(slugs) != 2 or None in slugs:
                report.fail(f"environments/prod: want the region module in two distinct regions, got {sorted(map(str, slugs))}")
            else:
                report.ok(f"environments/prod: region module in two regions ({', '.join(sorted(slugs))})")
            if not any(b.get("source", "").endswith("modules/cdn") for b in parsed["module"].values()):
                report.fail("environments/prod: no Cloudflare (modules/cdn)")
        else:
            report.ok(f"environments/{e}: one region ({', '.join(map(str, slugs))}), registry, "
                      f"{'HA ' if e != 'dev' else ''}PostgreSQL")


def fmt_check(root, report):
    tf = shutil.which("terraform")
    if not tf:
        print("    NOTICE terraform is not installed: `terraform fmt -check` skipped (the HCL parse above still ran)")
        return
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", CHECKPOINT_DISABLE="1")
    out = subprocess.run([tf, "fmt", "-check", "-recursive", "-diff", str(root)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        report.fail(f"terraform fmt -check -recursive: not formatted:\n{out.stdout[-2000:]}{out.stderr[-500:]}")
    else:
        report.ok(f"terraform fmt -check -recursive ({subprocess.run([tf, 'version'], capture_output=True, text=True, env=env).stdout.splitlines()[0]})")


class _Quiet:
    def __init__(self):
        self.errors = []

    def ok(self, what):
        pass

    def warn(self, what):
        pass

    def fail(self, what):
        self.errors.append(what)


def self_test(report):
    cases = [
        ("modules/doks/main.tf", "auto_scale = true", "auto_scale = false", "node pool without autoscaling", "auto_scale"),
        ("environments/prod/main.tf", 'region        = var.secondary_region', 'region        = var.primary_region',
         "prod in one region only", "two distinct regions"),
        ("environments/staging/main.tf", "db_node_count    = 2", "db_node_count    = 1", "staging database without standby", "not HA"),
        ("environments/dev/main.tf", "hostname         = var.hostname", "hostname         = var.hostname\n  hostnme = 1",
         "unknown module argument", "hostnme"),
        ("modules/edge/main.tf", 'entry_protocol   = "https"', "entry_protocol   = ", "HCL syntax error", "does not parse"),
        ("modules/postgres/variables.tf", 'description = "Database node size slug."', "", "undocumented variable", "description"),
    ]
    for rel, old, new, what, expect in cases:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "terraform"
            shutil.copytree(TF, root)
            p = root / rel
            text = p.read_text()
            if old not in text:
                report.fail(f"self-test: cannot find {old!r} in {rel}")
                continue
            p.write_text(text.replace(old, new, 1))
            q = _Quiet()
            check(root, q)
            hit = [e for e in q.errors if expect in e]
            if hit:
                report.ok(f"self-test: {what} is rejected ({hit[0][:100]})")
            else:
                report.fail(f"self-test: {what} was not rejected as expected ({q.errors[:1]})")


def main(argv):
    report = Report("terraform: parse, required resources/variables/outputs, layout")
    check(TF, report)
    fmt_check(TF, report)
    self_test(report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
