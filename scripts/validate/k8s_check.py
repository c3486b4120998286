"""Kubernetes: render every overlay with kustomize and validate every object
offline. Core kinds: kubernetes-validate (strict, bundled OpenAPI schemas).
CRD kinds: the vendored CRDs' openAPIV3Schema (draft 4) with
additionalProperties: false injected wherever properties are listed, so a
misspelt field fails as it would with kubeconform --strict. Three kinds with no
vendored CRD use the approximate schemas of approx_schemas.py (reported).
A negative self-test renders a broken copy and asserts it is rejected.
Every PrometheusRule and ServiceMonitor must be selected by the Prometheus
resource the manifests assume (ASSUMED_PROMETHEUS), with its own self-test.
Each overlay's Alertmanager config passes amtool and has no loopback receiver
and no credential written inline (with a self-test). The monitoring stack's
Helm values (k8s/cluster/kube-prometheus-stack.values.yaml) turn on exemplar
storage, mount the generated Alertmanager config and the receivers' Secret,
link exemplars to Tempo and keep the selectors ASSUMED_PROMETHEUS models
(with a self-test)."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

import approx_schemas
import config_keys
from common import REPO, SCHEMAS, Report, load_yaml_docs, selector_matches

K8S_VERSION = os.environ.get("TODO_K8S_VERSION", "1.33.0")  # DOKS' current minor
OVERLAYS = ("dev", "staging", "prod")

# The Prometheus resource the manifests assume (docs/deployment.md, "Cluster
# prerequisites"): kube-prometheus-stack's chart defaults for a Helm release
# named kube-prometheus-stack in namespace monitoring. With
# ruleSelectorNilUsesHelmValues / serviceMonitorSelectorNilUsesHelmValues at
# their default (true) the selectors match `release: <release name>`; the
# namespace selectors are {} (every namespace). The objects get the label from
# slo::k8s::MONITORING_STACK_LABELS (generated rules) and k8s/base
# (ServiceMonitors, kept equal to it by crates/slo/tests/k8s_manifests.rs).
# This is the cluster's side, stated independently on purpose.
ASSUMED_PROMETHEUS = {
    "namespace": "monitoring",
    "ruleSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
    "ruleNamespaceSelector": {},
    "serviceMonitorSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
    "serviceMonitorNamespaceSelector": {},
    "podMonitorSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
    "podMonitorNamespaceSelector": {},
    "probeSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
    "probeNamespaceSelector": {},
}
# kind -> (object selector, namespace selector) fields of the Prometheus spec.
SELECTED_BY = {
    "PrometheusRule": ("ruleSelector", "ruleNamespaceSelector"),
    "ServiceMonitor": ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
    "PodMonitor": ("podMonitorSelector", "podMonitorNamespaceSelector"),
    "Probe": ("probeSelector", "probeNamespaceSelector"),
}


def kustomize_cmd():
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone"]
    if shutil.which("kustomize"):
        return ["kustomize", "build", "--load-restrictor", "LoadRestrictionsNone"]
    return None


def render(overlay_dir):
    cmd = kustomize_cmd()
    out = subprocess.run(cmd + [str(overlay_dir)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return load_yaml_docs(out.stdout)


def _strict(schema):
    """Copy of an OpenAPI v3 schema with additionalProperties: false where properties are listed."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in s and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")):
        s["additionalProperties"] = False
    return s


def load_crd_schemas():
    table = {}
    for path in sorted(SCHEMAS.glob("*/*.yaml")):
        for crd in load_yaml_docs(path.read_text()):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                if not v.get("served", True):
                    continue
                schema = _strict(v["schema"]["openAPIV3Schema"])
                # apiVersion/kind/metadata are always allowed at the root.
                schema.setdefault("properties", {})
                for f in ("apiVersion", "kind", "metadata"):
                    schema["properties"].setdefault(f, {})
                table[(f"{group}/{v['name']}", kind)] = (schema, path.relative_to(SCHEMAS))
    return table


class Validator:
    def __init__(self):
        self.crds = load_crd_schemas()

    def errors(self, doc):
        """(source, [error messages]) for one object."""
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in self.crds:
            schema, src = self.crds[key]
            v = jsonschema.Draft4Validator(schema)
            errs = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]
            return f"CRD {src}", errs
        if key in approx_schemas.SCHEMAS:
            v = jsonschema.Draft4Validator(approx_schemas.SCHEMAS[key])
            errs = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]
            return "APPROXIMATE hand-written schema", errs
        try:
            kubernetes_validate.validate(copy.deepcopy(doc), K8S_VERSION, strict=True)
            return f"kubernetes-validate {K8S_VERSION} strict", []
        except kubernetes_validate.SchemaNotFoundError:
            return "none", [f"no schema for {key[0]} {key[1]} (neither core nor vendored CRD)"]
        except kubernetes_validate.ValidationError as e:
            return f"kubernetes-validate {K8S_VERSION} strict", [f"/{'/'.join(map(str, e.path))}: {e.message}"]
        except kubernetes_validate.InvalidSchemaError as e:
            return "kubernetes-validate", [f"invalid schema: {e}"]


def validate_docs(docs, validator, report, label):
    by_source = {}
    failed = 0
    for d in docs:
        src, errs = validator.errors(d)
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('namespace', '-')}/{d.get('metadata', {}).get('name')}"
        by_source.setdefault(src, 0)
        by_source[src] += 1
        for e in errs:
            failed += 1
            report.fail(f"{label}: {name}: {e}")
    return by_source, failed


def check_env_keys(docs, report, label):
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"].get("containers", []):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            config_keys.check_env(report, f"{label} {d['metadata']['name']}", env)


def check_monitoring_complete(report):
    base = yaml.safe_load((REPO / "k8s/base/kustomization.yaml").read_text())
    slo_files = {f for g in base.get("configMapGenerator", []) if g["name"] == "slo-specs" for f in g["files"]}
    # receivers.yaml and cost.yaml are not SLO specs (the loader skips them; the observer needs neither)
    want = {f"../../slo/{p.name}" for p in (REPO / "slo").glob("*.yaml") if p.name not in ("receivers.yaml", "cost.yaml")}
    if want - slo_files:
        report.fail(f"k8s/base/kustomization.yaml slo-specs misses SLO specs: {sorted(want - slo_files)}")
    else:
        report.ok(f"slo-specs ConfigMap carries all {len(want)} slo/*.yaml specs for the observer")
    canary_files = {f for g in base.get("configMapGenerator", []) if g["name"] == "canary-specs" for f in g["files"]}
    want = {f"canary/{p.name}" for p in (REPO / "k8s/base/canary").glob("*.yaml")}
    if want - canary_files:
        report.fail(f"k8s/base/kustomization.yaml canary-specs misses canary specs: {sorted(want - canary_files)}")
    else:
        report.ok(f"canary-specs ConfigMap carries all {len(want)} k8s/base/canary/*.yaml specs for the observer")
    listed = set(yaml.safe_load((REPO / "k8s/base/monitoring/kustomization.yaml").read_text())["resources"])
    files = sorted((REPO / "k8s/monitoring").glob("*.yaml"))
    # one Alertmanager config per overlay (slo/receivers.yaml), included by that overlay only
    per_env = {p.name: p.name[len("secret-alertmanager-"):-len(".yaml")]
               for p in files if p.name.startswith("secret-alertmanager-")}
    generated = {f"../../monitoring/{p.name}" for p in files if p.name not in per_env}
    missing = generated - listed
    if missing:
        report.fail(f"k8s/base/monitoring/kustomization.yaml misses generated files: {sorted(missing)}")
    else:
        report.ok(f"k8s/base/monitoring includes all {len(generated)} shared generated files of k8s/monitoring/")
    for env in OVERLAYS:
        k = yaml.safe_load((REPO / "k8s/overlays" / env / "kustomization.yaml").read_text())
        mine = {f"../../monitoring/{n}" for n, e in per_env.items() if e == env}
        have = {r for r in k.get("resources", []) if "secret-alertmanager" in r}
        if not mine or have != mine:
            report.fail(f"k8s/overlays/{env} must include exactly its generated Alertmanager config "
                        f"{sorted(mine) or '(none generated: add the overlay to slo/receivers.yaml)'}, has {sorted(have)}")
        else:
            report.ok(f"overlay {env} includes its own Alertmanager config {sorted(mine)[0]}")


# Receiver fields that carry a credential; a config must name a file instead
# (`<field>_file`, or http_config credentials_file / password_file).
INLINE_SECRET_FIELDS = {"routing_key", "service_key", "api_key", "api_url", "bot_token", "token",
                        "password", "credentials", "auth_token", "user_key", "webhook_url", "secret"}


def check_rollout_specs(report):
    """Every rollout spec (k8s/base/canary/*.yaml and the blue-green example
    under examples/) through `todoctl canary validate`, the observer's own
    loader; and a malformed strategy must be refused naming the field."""
    todoctl = (Path(os.environ["TODO_BIN_DIR"]) if os.environ.get("TODO_BIN_DIR")
               else Path(os.environ["CARGO_TARGET_DIR"]) / "debug" if os.environ.get("CARGO_TARGET_DIR")
               else REPO / "target" / "debug") / "todoctl"
    if not todoctl.exists():
        report.fail(f"{todoctl} missing: build it (cargo build -p todoctl) to validate the rollout specs")
        return
    specs = sorted((REPO / "k8s/base/canary").glob("*.yaml")) + sorted((REPO / "k8s/base/canary/examples").glob("*.yaml"))
    out = subprocess.run([str(todoctl), "canary", "validate", *map(str, specs)], capture_output=True, text=True)
    if out.returncode != 0:
        report.fail(f"todoctl canary validate refused a rollout spec: {out.stderr.strip()}")
    else:
        report.ok(f"todoctl canary validate accepts the {len(specs)} rollout specs under k8s/base/canary (blue-green example included)")
    example = REPO / "k8s/base/canary/examples/command-service-blue-green.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.yaml"
        bad.write_text(example.read_text().replace("strategy: blue_green", "strategy: blue-green"))
        out = subprocess.run([str(todoctl), "canary", "validate", str(bad)], capture_output=True, text=True)
        if out.returncode == 10 and "strategy" in out.stderr and str(bad) in out.stderr:
            report.ok("self-test: a malformed strategy is refused, naming file and field")
        else:
            report.fail(f"self-test: a malformed strategy was not refused by name: {out.returncode} {out.stderr.strip()}")


def alertmanager_problems(config):
    """Loopback receivers and inline credentials in one Alertmanager config."""
    problems = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}" if path else str(key)
                if key in INLINE_SECRET_FIELDS and value not in (None, ""):
                    problems.append(f"{here}: credential written inline (use {key}_file / a mounted Secret)")
                if key == "url" and isinstance(value, str):
                    host = re.sub(r"^[a-z]+://", "", value).split("/")[0].split("?")[0]
                    if "@" in host or "?" in value:
                        problems.append(f"{here}: URL carries credentials ({value})")
                    hostname = host.rsplit("@", 1)[-1].rsplit(":", 1)[0].strip("[]")
                    if hostname in ("localhost", "::1", "0.0.0.0") or hostname.startswith("127."):
                        problems.append(f"{here}: loopback receiver {value} (nothing listens next to Alertmanager in a cluster)")
                walk(value, here)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(config.get("receivers", []), "receivers")
    walk(config.get("global", {}), "global")
    return problems


def check_alertmanager(docs, report, env):
    """The overlay's Alertmanager config: one Secret, valid for amtool, no
    loopback receiver, no credential inline."""
    secrets = [d for d in docs if d.get("kind") == "Secret" and d["metadata"]["name"] == "alertmanager-todo"]
    if len(secrets) != 1:
        report.fail(f"overlay {env}: {len(secrets)} Secrets alertmanager-todo (want exactly one)")
        return
    text = secrets[0].get("stringData", {}).get("alertmanager.yaml", "")
    problems = alertmanager_problems(yaml.safe_load(text) or {})
    for p in problems:
        report.fail(f"overlay {env}: Alertmanager config: {p}")
    amtool = shutil.which("amtool")
    if amtool is None:
        report.fail("amtool not installed (scripts/install-deps.sh installs it)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"alertmanager-{env}.yml"
        path.write_text(text)
        out = subprocess.run([amtool, "check-config", path], capture_output=True, text=True)
    if out.returncode != 0:
        report.fail(f"overlay {env}: amtool check-config failed:\n{(out.stdout + out.stderr)[-1500:]}")
    elif not problems:
        receivers = sorted({k[:-len("_configs")] for r in yaml.safe_load(text)["receivers"] for k in r if k.endswith("_configs")})
        report.ok(f"overlay {env}: Alertmanager config passes amtool; receivers {', '.join(receivers)}; "
                  "no loopback URL, credentials from mounted files only")


def alertmanager_self_test(report):
    """The check must refuse what the compose demo may do and inline keys."""
    bad = {"receivers": [{"name": "oncall", "webhook_configs": [{"url": "http://127.0.0.1:9095/alerts/oncall"}],
                          "pagerduty_configs": [{"routing_key": "abc"}]}]}
    found = alertmanager_problems(bad)
    if len(found) == 2:
        report.ok("self-test: a loopback webhook and an inline routing_key are refused")
    else:
        report.fail(f"self-test: expected 2 problems in a bad Alertmanager config, got {found}")


def why_not_selected(doc, prometheus, namespaces):
    """None if `prometheus` selects `doc` (a PrometheusRule, ServiceMonitor, …),
    else the reason. `namespaces`: name -> labels of the cluster's namespaces."""
    sel_field, ns_field = SELECTED_BY[doc["kind"]]
    meta = doc.get("metadata", {})
    ns = meta.get("namespace", "default")
    ns_sel = prometheus.get(ns_field)
    if ns_sel is None:  # unset: the Prometheus' own namespace only
        if ns != prometheus["namespace"]:
            return f"namespace {ns} is not {prometheus['namespace']} ({ns_field} unset)"
    else:
        ns_labels = dict(namespaces.get(ns, {}))
        ns_labels.setdefault("kubernetes.io/metadata.name", ns)
        if not selector_matches(ns_sel, ns_labels):
            return f"namespace {ns} (labels {ns_labels}) does not match {ns_field} {ns_sel}"
    sel = prometheus.get(sel_field)
    if sel is None:  # a nil selector selects nothing
        return f"{sel_field} is unset"
    labels = meta.get("labels") or {}
    if not selector_matches(sel, labels):
        return f"labels {labels} do not match {sel_field} {sel}"
    return None


def namespace_labels(docs):
    """Labels of the namespaces the overlay creates; monitoring is the stack's."""
    ns = {"monitoring": {}}
    for d in docs:
        if d.get("kind") == "Namespace":
            ns[d["metadata"]["name"]] = d["metadata"].get("labels") or {}
    return ns


def check_prometheus_selects(docs, report, label, prometheus=ASSUMED_PROMETHEUS):
    """Every rule and monitor of the overlay is picked up by the monitoring stack."""
    namespaces = namespace_labels(docs)
    counts, failed = {}, 0
    for d in docs:
        if d.get("kind") not in SELECTED_BY or not str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
            continue
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
        why = why_not_selected(d, prometheus, namespaces)
        if why:
            failed += 1
            report.fail(f"{label}: {d['kind']}/{d['metadata'].get('namespace')}/{d['metadata']['name']} "
                        f"would not be selected by the kube-prometheus-stack Prometheus: {why}")
    if not counts.get("PrometheusRule") or not counts.get("ServiceMonitor"):
        failed += 1
        report.fail(f"{label}: expected PrometheusRules and ServiceMonitors, found {counts}")
    if not failed:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        report.ok(f"overlay {label}: the assumed kube-prometheus-stack Prometheus selects all {summary}")


def prometheus_selection_self_test(docs, report):
    """Objects the assumed Prometheus would ignore must be reported."""
    namespaces = namespace_labels(docs)
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    unlabelled = copy.deepcopy(rule)
    unlabelled["metadata"]["labels"].pop("release", None)
    other_release = copy.deepcopy(monitor)
    other_release["metadata"]["labels"]["release"] = "prometheus"
    narrow = dict(ASSUMED_PROMETHEUS, ruleNamespaceSelector={"matchLabels": {"team": "platform"}})
    no_ns_selector = {k: v for k, v in ASSUMED_PROMETHEUS.items() if k != "serviceMonitorNamespaceSelector"}
    cases = [
        ("PrometheusRule without the release label", unlabelled, ASSUMED_PROMETHEUS),
        ("ServiceMonitor of another release", other_release, ASSUMED_PROMETHEUS),
        ("PrometheusRule outside a narrowed ruleNamespaceSelector", rule, narrow),
        ("ServiceMonitor in todo with serviceMonitorNamespaceSelector unset", monitor, no_ns_selector),
    ]
    for what, doc, prometheus in cases:
        why = why_not_selected(doc, prometheus, namespaces)
        if why:
            report.ok(f"self-test: {what} reported: {why[:90]}")
        else:
            report.fail(f"self-test: {what} was considered SELECTED")
    if why_not_selected(rule, ASSUMED_PROMETHEUS, namespaces) is not None:
        report.fail("self-test: the unmodified PrometheusRule is not selected")


def negative_self_test(validator, report):
    """Break a copy three ways (core kind, Gateway API CRD, Strimzi CRD) and one
    approximate kind; each must be rejected."""
    cases = [
        ("Deployment", "command-service", "/spec/template/spec/containers/0/securityContext/readOnlyRootFS", True),
        ("HTTPRoute", "todo-api", "/spec/rules/1/backendRefs/0/weigth", 100),
        ("KafkaTopic", "todo-events", "/spec/partitons", 6),
        ("Resiliency", "todo-resiliency", "/spec/policies/retries/pubsubRetry/maxRetries", "ten"),
        ("ServiceMonitor", "todo-services", "/spec/endpoints/0/intervall", "15s"),
        ("KafkaConnector", "todo-search-opensearch", "/spec/taskMax", 2),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REPO / "k8s", Path(tmp) / "k8s")
        shutil.copytree(REPO / "slo", Path(tmp) / "slo")  # configMapGenerator source
        kfile = Path(tmp) / "k8s/overlays/dev/kustomization.yaml"
        k = yaml.safe_load(kfile.read_text())
        for kind, name, path, value in cases:
            k.setdefault("patches", []).append({
                "target": {"kind": kind, "name": name},
                "patch": json.dumps([{"op": "add", "path": path, "value": value}])})
        kfile.write_text(yaml.safe_dump(k))
        try:
            docs = render(kfile.parent)
        except RuntimeError as e:
            report.fail(f"self-test: the broken copy did not render: {e}")
            return
        for kind, name, path, value in cases:
            doc = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
            src, errs = validator.errors(doc)
            if errs:
                report.ok(f"self-test: broken {kind}/{name} ({path}={value!r}) rejected by {src}: {errs[0][:90]}")
            else:
                report.fail(f"self-test: broken {kind}/{name} ({path}={value!r}) was ACCEPTED by {src}")


STACK_VALUES = REPO / "k8s/cluster/kube-prometheus-stack.values.yaml"


def stack_values_problems(values):
    """What the monitoring stack's Helm values lack that the manifests,
    generated configs and dashboards rely on."""
    problems = []

    def at(path):
        v = values
        for k in path.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        return v

    if "exemplar-storage" not in (at("prometheus.prometheusSpec.enableFeatures") or []):
        problems.append("prometheus.prometheusSpec.enableFeatures lacks exemplar-storage")
    for key in ("ruleSelectorNilUsesHelmValues", "serviceMonitorSelectorNilUsesHelmValues"):
        if at(f"prometheus.prometheusSpec.{key}") is False:
            problems.append(f"prometheus.prometheusSpec.{key}: false selects otherwise than ASSUMED_PROMETHEUS")
    for key in ("ruleSelector", "serviceMonitorSelector", "ruleNamespaceSelector", "serviceMonitorNamespaceSelector"):
        if at(f"prometheus.prometheusSpec.{key}") not in (None, {}):
            problems.append(f"prometheus.prometheusSpec.{key} overrides the selector ASSUMED_PROMETHEUS models")
    generated = [d for d in load_yaml_docs((REPO / "k8s/monitoring/secret-alertmanager-prod.yaml").read_text()) if d]
    config_secret = generated[0]["metadata"]["name"] if generated else None
    if at("alertmanager.alertmanagerSpec.configSecret") != config_secret:
        problems.append(f"alertmanager.alertmanagerSpec.configSecret is not the generated Secret {config_secret!r}")
    receivers = yaml.safe_load((REPO / "slo/receivers.yaml").read_text()) or {}
    secret = ((receivers.get("kubernetes") or {}).get("secret")) or "alertmanager-receivers"
    if secret not in (at("alertmanager.alertmanagerSpec.secrets") or []):
        problems.append(f"alertmanager.alertmanagerSpec.secrets lacks the receivers' Secret {secret!r}")
    tempo = [d.get("uid") for d in (yaml.safe_load((REPO / "deploy/grafana/datasources/loki-tempo.yaml").read_text())
                                    or {}).get("datasources", []) if d.get("type") == "tempo"]
    link = at("grafana.sidecar.datasources.exemplarTraceIdDestinations") or {}
    if link.get("traceIdLabelName") != "trace_id" or link.get("datasourceUid") not in tempo:
        problems.append(f"grafana.sidecar.datasources.exemplarTraceIdDestinations must link trace_id to Tempo {tempo}")
    return problems


def check_stack_values(report):
    values = yaml.safe_load(STACK_VALUES.read_text()) or {}
    problems = stack_values_problems(values)
    for p in problems:
        report.fail(f"{STACK_VALUES.relative_to(REPO)}: {p}")
    if not problems:
        report.ok(f"{STACK_VALUES.relative_to(REPO)}: exemplar storage, Alertmanager config and receivers' Secret, "
                  "Tempo exemplar link, default selectors")
    broken = copy.deepcopy(values)
    broken["prometheus"]["prometheusSpec"]["enableFeatures"] = []
    broken["alertmanager"]["alertmanagerSpec"]["secrets"] = []
    found = stack_values_problems(broken)
    if len(found) == len(problems) + 2:
        report.ok("self-test: Helm values without exemplar storage or the receivers' Secret are refused")
    else:
        report.fail(f"self-test: expected 2 more problems in broken Helm values, got {found}")


def main(argv):
    report = Report("kubernetes: render overlays and validate against Kubernetes + CRD schemas")
    if kustomize_cmd() is None:
        report.fail("neither kubectl nor kustomize is installed; cannot render overlays")
        return report.finish()
    validator = Validator()
    report.ok(f"renderer: {' '.join(kustomize_cmd())}; {len(validator.crds)} CRD versions loaded from {SCHEMAS}")
    check_monitoring_complete(report)
    check_rollout_specs(report)
    check_stack_values(report)
    rendered = {}
    for env in OVERLAYS:
        try:
            docs = render(REPO / "k8s/overlays" / env)
        except RuntimeError as e:
            report.fail(f"{env}: kustomize failed: {e}")
            continue
        rendered[env] = docs
        by_source, failed = validate_docs(docs, validator, report, env)
        summary = ", ".join(f"{n} by {s}" for s, n in sorted(by_source.items()))
        if not failed:
            report.ok(f"overlay {env}: {len(docs)} objects valid ({summary})")
        check_env_keys(docs, report, env)
        check_prometheus_selects(docs, report, env)
        check_alertmanager(docs, report, env)
    approx = sorted({f"{k[1]}" for k in approx_schemas.SCHEMAS})
    report.warn(f"approximate (hand-written) schemas used for: {', '.join(approx)} (no vendored CRD)")
    negative_self_test(validator, report)
    alertmanager_self_test(report)
    if "dev" in rendered:
        prometheus_selection_self_test(rendered["dev"], report)
    ok = report.finish()
    return ok, rendered


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv)[0] else 1)
