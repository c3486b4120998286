"""docker-compose.yml: Compose Specification schema, mounts, pins, depends_on,
health checks, secrets and service config keys."""

import json
import re
import sys
from pathlib import Path

import jsonschema

from common import REPO, SCHEMAS, Report, load_compose_yaml
import config_keys

SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
INTERP = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")


def image_pinned(image):
    """A tag other than latest, or a digest."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return bool(tag) and tag != "latest" and "$" not in tag


def env_mapping(env):
    if env is None:
        return {}
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def validate(compose_path, report):
    schema = json.loads((SCHEMAS / "compose" / "compose-spec.json").read_text())
    try:
        doc = load_compose_yaml(compose_path)
    except Exception as e:  # a YAML error is a finding, not a crash
        report.fail(f"{compose_path.name} is not valid YAML: {e}")
        return
    validator = jsonschema.Draft202012Validator(schema)
    errs = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for e in errs:
        report.fail(f"schema: /{'/'.join(map(str, e.absolute_path))}: {e.message}")
    if not errs:
        report.ok(f"{compose_path.name} validates against compose-spec.json (compose-go v2.13.0, draft 2020-12)")

    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    base = compose_path.parent
    for name, svc in services.items():
        image = svc.get("image")
        if not image:
            report.fail(f"{name}: no image (every service names a pinned image, built or pulled)")
        elif svc.get("build"):
            if not image_pinned(image):
                report.fail(f"{name}: built image {image!r} has no version tag")
        elif not image_pinned(image):
            report.fail(f"{name}: image {image!r} is not pinned (tag other than latest, or digest)")
        # mounts
        for v in svc.get("volumes") or []:
            src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source")
            if src is None:
                continue
            if src.startswith((".", "/")):
                if src.startswith("/var/run/docker.sock"):
                    continue  # the Docker host's socket, not a repo file
                p = (base / src).resolve() if src.startswith(".") else Path(src)
                if not p.exists():
                    report.fail(f"{name}: mounted host path {src} does not exist")
                else:
                    report.ok(f"{name}: mount {src} exists")
            elif src not in volumes:
                report.fail(f"{name}: named volume {src!r} is not declared under volumes:")
        # build context / dockerfile target
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = (base / build.get("context", ".")).resolve()
            dockerfile = ctx / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                report.fail(f"{name}: build dockerfile {dockerfile} missing")
            elif build.get("target") and not re.search(
                    rf"^FROM\s+\S+\s+AS\s+{re.escape(build['target'])}\s*$", dockerfile.read_text(), re.M | re.I):
                report.fail(f"{name}: Dockerfile has no stage {build['target']!r}")
        # depends_on
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            report.fail(f"{name}: depends_on is a list; use the long form with a condition")
            deps = {d: {} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                report.fail(f"{name}: depends_on {dep!r}, which is not a service")
                continue
            cond = (spec or {}).get("condition")
            if cond not in ("service_healthy", "service_completed_successfully"):
                report.fail(f"{name}: depends_on {dep} has condition {cond!r} (want service_healthy)")
            elif cond == "service_healthy" and not services[dep].get("healthcheck"):
                report.fail(f"{name}: waits for {dep} to be healthy but {dep} has no healthcheck")
        nm = svc.get("network_mode", "")
        if nm.startswith("service:") and nm.split(":", 1)[1] not in services:
            report.fail(f"{name}: network_mode {nm} names no service")
        # health checks
        hc = svc.get("healthcheck")
        exempt = (svc.get("labels") or {}).get("todo.validate/healthcheck", "")
        if not hc and not exempt.startswith("none:"):
            report.fail(f"{name}: no healthcheck (or label todo.validate/healthcheck: 'none: why')")
        elif hc and hc.get("disable"):
            report.fail(f"{name}: healthcheck disabled")
        # secrets: only interpolated from .env
        env = env_mapping(svc.get("environment"))
        for k, val in env.items():
            sval = "" if val is None else str(val)
            if SECRET_KEY.search(k) and sval and not INTERP.match(sval):
                report.fail(f"{name}: {k} has a literal value; take it from .env as ${{{k}}}")
            m = URL_PASSWORD.search(sval)
            if m and not INTERP.match(m.group(1)):
                report.fail(f"{name}: {k} embeds a literal password in a URL")
        config_keys.check_env(report, f"compose {name}", env)
    report.ok(f"{len(services)} services: images pinned, depends_on targets exist with conditions, health checks present")
    env_example = base / ".env.example"
    if env_example.exists():
        text = compose_path.read_text()
        needed = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
        have = set(re.findall(r"^([A-Z0-9_]+)=", env_example.read_text(), re.M))
        for n in sorted(needed - have):
            report.fail(f".env.example lacks {n}, which docker-compose.yml requires")
        report.ok(f".env.example names every required variable ({', '.join(sorted(needed))})")
    else:
        report.fail(".env.example missing")


class _Quiet:
    def __init__(self):
        self.errors = []

    def ok(self, what):
        pass

    def warn(self, what):
        pass

    def fail(self, what):
        self.errors.append(what)


def self_test(path, report):
    """Broken copies of the compose file (next to the original, so relative
    mounts resolve) must be rejected."""
    import tempfile
    text = path.read_text()
    cases = [
        ("unpinned image", "image: prom/prometheus:v2.55.1", "image: prom/prometheus", "not pinned"),
        ("latest tag", "image: grafana/loki:3.3.2", "image: grafana/loki:latest", "not pinned"),
        ("missing mounted file", "./deploy/haproxy/haproxy.cfg:", "./deploy/haproxy/haproxy.cfgx:", "does not exist"),
        ("depends_on unknown service", "      loki:\n        condition: service_healthy", "      lokii:\n        condition: service_healthy", "not a service"),
        ("invalid Compose field", "    read_only: true\n    restart: unless-stopped\n    ports:", "    read_only: true\n    restrat: unless-stopped\n    ports:", "schema"),
        ("literal secret", "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in .env}", "GF_SECURITY_ADMIN_PASSWORD: hunter2", "literal value"),
        ("unknown service config key", "QUERY_GROUP_ID: query-service", "QUERY_GROUP: query-service", "not a field"),
        ("unknown nested config key", "QUERY_RATE_LIMIT__PER_IP_BURST: ${RATE_LIMIT_PER_IP_BURST:-0}", "QUERY_RATE_LIMIT__PER_IP_BURSTS: ${RATE_LIMIT_PER_IP_BURST:-0}", "not a field"),
    ]
    for what, old, new, expect in cases:
        if old not in text:
            report.fail(f"self-test: {what}: cannot find {old!r} in {path.name}")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=path.parent, prefix=".selftest-", delete=True) as f:
            f.write(text.replace(old, new, 1))
            f.flush()
            q = _Quiet()
            validate(Path(f.name), q)
        hit = [e for e in q.errors if expect in e]
        if hit:
            report.ok(f"self-test: {what} is rejected ({hit[0][:100]})")
        else:
            report.fail(f"self-test: {what} was not rejected as expected ({q.errors[:1]})")


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else REPO / "docker-compose.yml"
    report = Report(f"compose: {path}")
    validate(path, report)
    self_test(path, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
