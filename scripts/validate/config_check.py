"""The shipped configuration, as the binaries themselves read it: every
container of every rendered overlay and of docker-compose.yml that runs one
of our four services is given its exact environment and the binary runs
`--check-config` (URLs, ports, keys that exclude each other, the OTLP endpoint
against the exporter's protocol, TLS files, sslmode, the trace sampler; see
crates/service-kit/src/check.rs). The environment is resolved as the platform
would: Kubernetes valueFrom/envFrom from the rendered ConfigMaps and Secrets
(Secrets the manifests do not carry get a placeholder of the right shape),
Compose with x- anchors, merge keys and ${VAR:-default} from .env.example;
under both, the ENV of the binary's Dockerfile stage.

Then every host:port a Kubernetes container's environment names (URLs, broker
lists) must be allowed by its overlay's NetworkPolicies: the egress of the
policies selecting the pod to the target's pods or namespace on the target
port, and, for a target whose pods the overlay's policies select, their
ingress. Hosts outside the cluster must be allowed by an ipBlock: a private
(VPC) one for the managed database, a public one for anything else.

Binaries: $TODO_BIN_DIR, else $CARGO_TARGET_DIR/debug, else target/debug
(scripts/test.sh builds them first). Negative self-tests put :4317 back into a
Deployment's OTEL_EXPORTER_OTLP_ENDPOINT, name a port the NetworkPolicy does
not allow, drop the database's egress rule, and break the compose anchor."""

import base64
import copy
import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from common import REPO, Report, load_compose_yaml, selector_matches

# Env prefix -> binary (crates/<binary>).
BINARIES = {"COMMAND_": "command-service", "QUERY_": "query-service",
            "PROCESSOR_": "event-processor", "OBSERVER_": "observer"}
# Variables that hold an address the service does not connect to: where it
# listens, the link it prints, the issuer it compares tokens with.
NOT_DIALLED = re.compile(r"_(LISTEN_ADDR|EXTERNAL_URL|AUTH_OIDC__ISSUER)$")
# The managed database's URI as Terraform writes it into the todo-postgres
# Secret (infrastructure/terraform/modules/postgres/outputs.tf, database_uri):
# the cluster's private host in the VPC, DigitalOcean's port 25060.
VPC_DB_HOST = "private-todo-db.vpc.placeholder"
DB_PLACEHOLDER = f"postgres://todo:placeholder@{VPC_DB_HOST}:25060/todo?sslmode=require"
# A Sentry DSN as sentry.io issues it (Secret todo-sentry, key dsn): its host
# is on the internet, so every service's egress must allow HTTPS there.
SENTRY_PLACEHOLDER = "https://placeholder@o0.ingest.sentry.io/0"
DEFAULT_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432}
PUBLIC_PROBE = ipaddress.ip_address("8.8.8.8")  # stands for any public address


def bin_dir():
    if os.environ.get("TODO_BIN_DIR"):
        return Path(os.environ["TODO_BIN_DIR"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "debug"
    return REPO / "target" / "debug"


def binary_for(env):
    found = {b for p, b in BINARIES.items() if any(k.startswith(p) for k in env)}
    return found.pop() if len(found) == 1 else None


def image_env(dockerfile=REPO / "Dockerfile"):
    """{stage: ENV} of the Dockerfile, each stage with what it inherits from
    the stage it is built FROM: the image's part of a container's environment
    (the listen address is set there)."""
    stages, cur = {}, None
    for line in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
        words = line.strip().split()
        if not words:
            continue
        if words[0].upper() == "FROM":
            name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else None
            cur = dict(stages.get(words[1], {}))
            if name:
                stages[name] = cur
        elif words[0].upper() == "ENV" and cur is not None:
            rest = line.strip()[3:].strip()
            if "=" in rest.split()[0]:
                for kv in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)', rest):
                    cur[kv[0]] = kv[1].strip('"')
            else:
                k, _, v = rest.partition(" ")
                cur[k] = v.strip()
    return stages


def run_check(binary, env):
    """(ok, output) of `binary --check-config` with the image's ENV overlaid
    by the container's environment, as the container would start."""
    full = dict(image_env().get(binary, {}))
    full.update(env)
    out = subprocess.run([str(bin_dir() / binary), "--check-config"], env=full,
                         capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip()
    return out.returncode == 0, text


# ------------------------------------------------------------- kubernetes env

def placeholder(var, key):
    """A stand-in for a Secret value the manifests do not carry, shaped as the
    variable expects."""
    if var.endswith("DATABASE_URL") or "database-url" in key or "database_url" in key:
        return DB_PLACEHOLDER
    if var == "SENTRY_DSN":
        return SENTRY_PLACEHOLDER
    if var.endswith("_URL"):
        return "https://placeholder.invalid/"
    return "placeholder"


def _objects(docs, kind, ns):
    return {d["metadata"]["name"]: d for d in docs
            if d["kind"] == kind and d["metadata"].get("namespace", ns) == ns}


def _data(obj):
    if obj["kind"] == "Secret":
        out = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        out.update(obj.get("stringData") or {})
        return out
    return dict(obj.get("data") or {})


def resolve_k8s_env(docs, ns, container, problems):
    """The container's environment as the kubelet would set it."""
    cms, secrets = _objects(docs, "ConfigMap", ns), _objects(docs, "Secret", ns)
    env = {}

    def source(kind, name, optional, what):
        table = cms if kind == "ConfigMap" else secrets
        if name in table:
            return _data(table[name]), False
        if kind == "ConfigMap" and not optional:
            problems.append(f"{what}: ConfigMap {name} is not in the overlay")
        return None, kind == "Secret"

    for ef in container.get("envFrom", []):
        for kind, ref in (("ConfigMap", ef.get("configMapRef")), ("Secret", ef.get("secretRef"))):
            if ref:
                data, _ = source(kind, ref["name"], ref.get("optional"), "envFrom")
                for k, v in (data or {}).items():
                    env[ef.get("prefix", "") + k] = v
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            # $(VAR) refers to a variable defined earlier; $$ escapes.
            env[name] = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                               lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                               str(e["value"]))
            continue
        vf = e.get("valueFrom", {})
        for kind, ref in (("ConfigMap", vf.get("configMapKeyRef")), ("Secret", vf.get("secretKeyRef"))):
            if not ref:
                continue
            data, external = source(kind, ref["name"], ref.get("optional"), name)
            if data is not None:
                if ref["key"] in data:
                    env[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    problems.append(f"{name}: {kind} {ref['name']} has no key {ref['key']}")
            elif external:
                env[name] = placeholder(name, ref["key"])
        if "fieldRef" in vf:
            env[name] = {"status.podIP": "10.244.0.10", "status.hostIP": "10.0.0.10"}.get(
                vf["fieldRef"]["fieldPath"], "placeholder")
        if "resourceFieldRef" in vf:
            env[name] = "1"
    return env


def workloads(docs):
    """(kind/name, namespace, pod labels, container) of every container that
    runs one of our binaries."""
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        tpl = d["spec"]["template"]
        for c in tpl["spec"].get("containers", []) + tpl["spec"].get("initContainers", []):
            yield (f"{d['kind']}/{d['metadata']['name']}", d["metadata"].get("namespace", "default"),
                   tpl["metadata"].get("labels", {}), c)


# ---------------------------------------------------------- endpoints in env

def endpoints(env):
    """(variable, host, port) of every address the environment names and the
    service dials."""
    out = []
    for var, value in sorted(env.items()):
        if value is None or NOT_DIALLED.search(var):
            continue
        value = str(value).strip()
        if "://" in value:
            try:
                u = urlsplit(value)
                port = u.port or DEFAULT_PORTS.get(u.scheme)
            except ValueError:
                continue  # --check-config reports it
            if u.hostname and port:
                out.append((var, u.hostname, port))
        elif var.endswith("_BROKERS"):
            for b in value.split(","):
                host, _, port = b.strip().rpartition(":")
                if host and port.isdigit():
                    out.append((var, host, int(port)))
    return out


# --------------------------------------------------------- network policies


class Target:
    """Where a host:port goes: pods in a namespace (their labels, or None when
    only the namespace is known), the VPC (the managed database), or the
    internet."""

    def __init__(self, kind, port, what, ns=None, labels=None):
        self.kind, self.port, self.what, self.ns, self.labels = kind, port, what, ns, labels


def namespace_labels(docs, ns):
    labels = {"kubernetes.io/metadata.name": ns}
    for d in docs:
        if d["kind"] == "Namespace" and d["metadata"]["name"] == ns:
            labels.update(d["metadata"].get("labels") or {})
    return labels


def known_namespaces(docs):
    """Namespaces the overlay creates, uses, or names in a policy selector."""
    out = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    out |= {d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")}
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        for rule in d["spec"].get("egress", []) + d["spec"].get("ingress", []):
            for peer in rule.get("to", []) + rule.get("from", []):
                name = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                if name:
                    out.add(name)
    return out


def services(docs):
    """{(ns, name): (pod selector labels or None, {port: targetPort})}, with
    the bootstrap Services Strimzi generates for each Kafka."""
    out = {}
    for d in docs:
        ns = d["metadata"].get("namespace", "default")
        if d["kind"] == "Service":
            ports = {p["port"]: p.get("targetPort", p["port"]) for p in d["spec"].get("ports", [])}
            out[(ns, d["metadata"]["name"])] = (d["spec"].get("selector"), ports)
        elif d["kind"] == "Kafka":
            name = d["metadata"]["name"]
            ports = {lst["port"]: lst["port"] for lst in d["spec"]["kafka"].get("listeners", [])}
            # Strimzi's broker pods carry these labels.
            labels = {"app.kubernetes.io/name": "kafka", "strimzi.io/cluster": name, "strimzi.io/kind": "Kafka"}
            out[(ns, f"{name}-kafka-bootstrap")] = (labels, ports)
    return out


def container_port(docs, ns, labels, target_port):
    """A named targetPort resolved against the containers of the pods it selects."""
    if isinstance(target_port, int) or str(target_port).isdigit():
        return int(target_port)
    for _, wns, plabels, c in workloads(docs):
        if wns == ns and labels and all(plabels.get(k) == v for k, v in labels.items()):
            for p in c.get("ports", []):
                if p.get("name") == target_port:
                    return p["containerPort"]
    return None


def cluster_service(docs, host, pod_ns):
    """(name, namespace) when host is a cluster DNS name of a Service
    (name, name.ns, name.ns.svc, name.ns.svc.cluster.local), else None."""
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], pod_ns
    if parts[2:] in (["svc"], ["svc", "cluster", "local"]):
        return parts[0], parts[1]
    if len(parts) == 2 and parts[1] in known_namespaces(docs):
        return parts[0], parts[1]
    return None


def locate(docs, svcs, pod_ns, host, port):
    """(Target, None) for host:port seen from a pod in pod_ns, or (None, error)."""
    if host == VPC_DB_HOST:
        return Target("vpc", port, f"the managed database in the VPC, {host}"), None
    svc = cluster_service(docs, host, pod_ns)
    if svc is None:
        try:
            if ipaddress.ip_address(host).is_private:
                return Target("vpc", port, f"{host}, a private address"), None
        except ValueError:
            pass
        return Target("internet", port, f"{host}, outside the cluster"), None
    name, ns = svc
    if (ns, name) not in svcs:
        if ns == pod_ns:
            return None, f"{host}: no Service {name} in namespace {ns} in the overlay"
        # Another namespace's Service: only its namespace is known.
        return Target("pods", port, f"Service {name}.{ns}, not in the overlay: pods unknown", ns=ns), None
    selector, ports = svcs[(ns, name)]
    if port not in ports:
        return None, f"{host}:{port}: Service {name}.{ns} has no port {port} (has {sorted(ports)})"
    tport = container_port(docs, ns, selector, ports[port])
    return Target("pods", tport or port, f"Service {name}.{ns}", ns=ns, labels=selector or {}), None


def _port_ok(rule, port):
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        if "port" not in p:
            return True
        lo, hi = p["port"], p.get("endPort", p["port"])
        if isinstance(lo, int) and lo <= port <= hi:
            return True
    return False


def _peer_ok(docs, peer, policy_ns, target):
    """Whether one `to`/`from` peer of a policy in policy_ns covers target."""
    if "ipBlock" in peer:
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        if target.kind == "vpc":
            # The database's address is known only once Terraform ran: a
            # private ipBlock stands for the VPC.
            return net.is_private and net.prefixlen > 0
        if target.kind == "internet":
            excepted = any(PUBLIC_PROBE in ipaddress.ip_network(x) for x in peer["ipBlock"].get("except", []))
            return PUBLIC_PROBE in net and not excepted
        return False  # pod addresses are not matched by ipBlock here
    if target.kind != "pods":
        return False
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    if ns_sel is not None:
        if not selector_matches(ns_sel, namespace_labels(docs, target.ns)):
            return False
    elif target.ns != policy_ns:
        return False
    if pod_sel is None or not (pod_sel.get("matchLabels") or pod_sel.get("matchExpressions")):
        return True
    if target.labels is None:
        return False  # pods of an unknown Service: only a whole-namespace rule covers them
    return selector_matches(pod_sel, target.labels)


def egress_allowed(docs, ns, labels, target):
    """(allowed, why): NetworkPolicy egress from a pod (ns, labels) to target."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"].get("namespace", "default") == ns
                and "Egress" in d["spec"].get("policyTypes", ["Egress"] if "egress" in d["spec"] else [])
                and selector_matches(d["spec"].get("podSelector", {}), labels)]
    if not policies:
        return True, "no policy isolates the pod's egress"
    for pol in policies:
        for rule in pol["spec"].get("egress") or []:
            if not _port_ok(rule, target.port):
                continue
            peers = rule.get("to") or [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}]
            for peer in peers:
                if _peer_ok(docs, peer, ns, target):
                    return True, pol["metadata"]["name"]
    names = ", ".join(p["metadata"]["name"] for p in policies)
    return False, f"not allowed by the egress of {names}"


def ingress_allowed(docs, src_ns, src_labels, target):
    """For a target whose pods the overlay's policies select: their ingress
    from the source pod on the target port."""
    if target.kind != "pods" or target.labels is None:
        return True, "ingress not checked (outside the overlay)"
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"
                and d["metadata"].get("namespace", "default") == target.ns
                and "Ingress" in d["spec"].get("policyTypes", ["Ingress"])
                and selector_matches(d["spec"].get("podSelector", {}), target.labels)]
    if not policies:
        return True, "no policy isolates the target's ingress"
    source = Target("pods", None, "the source pod", ns=src_ns, labels=src_labels)
    for pol in policies:
        for rule in pol["spec"].get("ingress") or []:
            if not _port_ok(rule, target.port):
                continue
            for peer in rule.get("from") or [{"namespaceSelector": {}}]:
                if _peer_ok(docs, peer, target.ns, source):
                    return True, pol["metadata"]["name"]
    names = ", ".join(p["metadata"]["name"] for p in policies)
    return False, f"not allowed by the ingress of {names}"


def check_flows(docs, where, ns, labels, env, fail, ok):
    svcs = services(docs)
    allowed_flows = []
    for var, host, port in endpoints(env):
        target, err = locate(docs, svcs, ns, host, port)
        if err:
            fail(f"{where}: {var}: {err}")
            continue
        allowed, why = egress_allowed(docs, ns, labels, target)
        if not allowed:
            fail(f"{where}: {var} names {host}:{port} ({target.what}), {why}")
            continue
        allowed, why_in = ingress_allowed(docs, ns, labels, target)
        if not allowed:
            fail(f"{where}: {var} names {host}:{port} ({target.what}), {why_in}")
            continue
        allowed_flows.append(f"{host}:{port} ({why})")
    ok(f"{where}: egress allowed to all {len(allowed_flows)} host:port(s) its environment names: "
       + ", ".join(allowed_flows))


def sweep_overlay(docs, label, fail, ok):
    for wl, ns, labels, c in workloads(docs):
        problems = []
        env = resolve_k8s_env(docs, ns, c, problems)
        binary = binary_for(env)
        if binary is None:
            continue
        where = f"{label} {wl} container {c['name']}"
        for p in problems:
            fail(f"{where}: {p}")
        good, text = run_check(binary, env)
        if good:
            ok(f"{where}: {binary} --check-config: {text}")
        else:
            fail(f"{where}: {binary} --check-config failed:\n        " + text.replace("\n", "\n        "))
        check_flows(docs, where, ns, labels, env, fail, ok)


# ------------------------------------------------------------------- compose

INTERP = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, variables):
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?e}, ${VAR?e}, ${VAR:+r}, ${VAR+r}."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        val = variables.get(name)
        if op in (":-", "-"):
            return arg if (val is None or (op == ":-" and val == "")) else val
        if op in (":?", "?"):
            if val is None or (op == ":?" and val == ""):
                raise ValueError(f"${{{name}}} is required: {arg}")
            return val
        if op in (":+", "+"):
            return arg if (val is not None and (op == "+" or val != "")) else ""
        return val if val is not None else ""
    return INTERP.sub(sub, value)


def dotenv(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip().strip('"').strip("'")
    return out


def compose_env(svc, variables):
    """A service's environment after anchors and merge keys (YAML), then
    interpolation; `KEY:` without a value passes KEY through from .env when
    set there and is unset otherwise."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    out = {}
    for k, v in env.items():
        if v is None:
            if k in variables:
                out[k] = variables[k]
            continue
        v = "true" if v is True else "false" if v is False else str(v)
        out[k] = interpolate(v, variables)
    return out


def sweep_compose(path, env_file, fail, ok):
    doc = load_compose_yaml(path)
    variables = dotenv(env_file)
    names = set((doc.get("services") or {}).keys())
    for name, svc in (doc.get("services") or {}).items():
        try:
            env = compose_env(svc, variables)
        except ValueError as e:
            fail(f"compose {name}: {e}")
            continue
        binary = binary_for(env)
        if binary is None:
            continue
        good, text = run_check(binary, env)
        if good:
            ok(f"compose {name}: {binary} --check-config: {text}")
        else:
            fail(f"compose {name}: {binary} --check-config failed:\n        " + text.replace("\n", "\n        "))
        for var, host, port in endpoints(env):
            if host not in names and "." not in host:
                fail(f"compose {name}: {var} names {host}:{port}, which is not a Compose service")


# ----------------------------------------------------------------- self-test

class _Quiet:
    def __init__(self):
        self.errors = []

    def fail(self, what):
        self.errors.append(what)

    def ok(self, what):
        pass


def _dep(docs, name):
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def _set_env(docs, dep, var, value):
    c = _dep(docs, dep)["spec"]["template"]["spec"]["containers"][0]
    for e in c["env"]:
        if e["name"] == var:
            e.clear()
            e.update(name=var, value=value)
            return
    raise KeyError(f"{dep} has no env {var}")


def self_test(docs, report):
    def pol(d, name):
        return next(x for x in d if x["kind"] == "NetworkPolicy" and x["metadata"]["name"] == name)

    def drop_db_egress(d):
        p = pol(d, "allow-query-service")
        p["spec"]["egress"] = [r for r in p["spec"]["egress"] if not any("ipBlock" in t and ipaddress.ip_network(t["ipBlock"]["cidr"]).is_private for t in r.get("to", []))]

    cases = [
        ("OTLP endpoint back on :4317 in a Deployment",
         lambda d: _set_env(d, "command-service", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.monitoring.svc.cluster.local:4317"),
         "OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.monitoring.svc.cluster.local:4317' is the OTLP/gRPC port"),
        ("a port the NetworkPolicy does not allow",
         lambda d: _set_env(d, "observer", "OBSERVER_PROMETHEUS_URL", "http://prometheus-operated.monitoring.svc:9091"),
         "OBSERVER_PROMETHEUS_URL names prometheus-operated.monitoring.svc:9091"),
        ("the Kafka TLS listener (9093), which the NetworkPolicy does not open",
         lambda d: _set_env(d, "event-processor", "PROCESSOR_KAFKA_BROKERS", "todo-kafka-kafka-bootstrap:9093"),
         "PROCESSOR_KAFKA_BROKERS names todo-kafka-kafka-bootstrap:9093"),
        ("a broker port no Kafka listener has",
         lambda d: _set_env(d, "query-service", "QUERY_KAFKA_BROKERS", "todo-kafka-kafka-bootstrap:9094"),
         "has no port 9094"),
        ("no egress to the managed database",
         drop_db_egress, "QUERY_DATABASE_URL names private-todo-db"),
        ("an invalid trace sampler",
         lambda d: _dep(d, "query-service")["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "OTEL_TRACES_SAMPLER", "value": "sometimes"}),
         "OTEL_TRACES_SAMPLER: 'sometimes'"),
        ("an sslmode the build does not know",
         lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "todo-postgres", "namespace": "todo"},
                             "stringData": {"database-url": DB_PLACEHOLDER.replace("require", "required")}}),
         "DATABASE_URL: sslmode 'required'"),
    ]
    for what, mutate, expect in cases:
        d = copy.deepcopy(docs)
        mutate(d)
        q = _Quiet()
        sweep_overlay(d, "self-test", q.fail, q.ok)
        hit = [line.strip() for e in q.errors for line in e.splitlines() if expect in line]
        if hit:
            report.ok(f"self-test: {what} is rejected ({hit[0][:130]})")
        else:
            report.fail(f"self-test: {what} was not rejected as expected (got {q.errors[:2]})")
    # Compose: the anchor every app service merges, and interpolation.
    import tempfile
    path = REPO / "docker-compose.yml"
    text = path.read_text()
    old = "  OTEL_EXPORTER_OTLP_ENDPOINT: http://tempo:4318"
    if old not in text:
        report.fail(f"self-test: cannot find {old.strip()!r} in docker-compose.yml")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=path.parent, prefix=".selftest-", delete=True) as f:
        f.write(text.replace(old, "  OTEL_EXPORTER_OTLP_ENDPOINT: http://tempo:${OTLP_PORT:-4317}", 1))
        f.flush()
        q = _Quiet()
        sweep_compose(Path(f.name), REPO / ".env.example", q.fail, q.ok)
    hit = [e for e in q.errors if "OTEL_EXPORTER_OTLP_ENDPOINT: 'http://tempo:4317'" in e]
    if len(hit) >= 5:
        report.ok(f"self-test: :4317 through the x-service-env anchor and ${{OTLP_PORT:-4317}} is rejected in all {len(hit)} services that merge it")
    else:
        report.fail(f"self-test: :4317 in the compose anchor rejected in {len(hit)} services, want every app service ({q.errors[:2]})")
    checks = [("${A:-x}", {}, "x"), ("${A:-x}", {"A": ""}, "x"), ("${A-x}", {"A": ""}, ""),
              ("a$${B}", {}, "a${B}"), ("${A}:${B:-9}", {"A": "h"}, "h:9"), ("${A:+on}", {"A": "1"}, "on")]
    bad = [(t, v, interpolate(t, v), want) for t, v, want in checks if interpolate(t, v) != want]
    if bad:
        report.fail(f"self-test: compose interpolation wrong: {bad}")
    else:
        report.ok(f"self-test: compose interpolation (${{VAR:-d}}, ${{VAR-d}}, $$, ${{VAR:+r}}): {len(checks)} cases")


def main(argv, rendered=None):
    report = Report("configuration: every container's environment through its binary's --check-config, "
                    "and the host:ports it names through the NetworkPolicies")
    missing = [b for b in BINARIES.values() if not (bin_dir() / b).exists()]
    if missing:
        report.fail(f"{bin_dir()} lacks {', '.join(missing)}: build them first "
                    f"(cargo build -p {' -p '.join(BINARIES.values())}; scripts/test.sh does) or set TODO_BIN_DIR")
        return report.finish()
    if rendered is None:
        import k8s_check
        rendered = {env: k8s_check.render(REPO / "k8s/overlays" / env) for env in k8s_check.OVERLAYS}
    for label, docs in rendered.items():
        sweep_overlay(docs, label, report.fail, report.ok)
    sweep_compose(REPO / "docker-compose.yml", REPO / ".env.example", report.fail, report.ok)
    if rendered:
        self_test(next(iter(rendered.values())), report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
