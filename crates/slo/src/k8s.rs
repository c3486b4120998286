//! Kubernetes renderings: one `PrometheusRule` (Prometheus Operator,
//! `monitoring.coreos.com/v1`) per service, one dashboard `ConfigMap` per
//! dashboard (Grafana sidecar label `grafana_dashboard: "1"`) and each
//! overlay's Alertmanager configuration as a `Secret`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::compile::{self, RuleGroup};
use crate::model::Slo;

pub const NAMESPACE: &str = "monitoring";

/// The labels the monitoring stack selects Prometheus Operator objects on.
/// kube-prometheus-stack's Prometheus picks up only PrometheusRules and
/// ServiceMonitors labelled `release: <Helm release>` (its default
/// `ruleSelector` / `serviceMonitorSelector`); the release is installed as
/// `kube-prometheus-stack` (docs/deployment.md). The generated
/// PrometheusRules carry these; the hand-written ServiceMonitors under
/// `k8s/` must carry the same (tests/k8s_manifests.rs), and
/// scripts/validate/k8s_check.py checks the rendered overlays against the
/// assumed Prometheus resource.
pub const MONITORING_STACK_LABELS: &[(&str, &str)] = &[("release", "kube-prometheus-stack")];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object<S: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    #[serde(flatten)]
    body: S,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    namespace: &'static str,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RuleSpec {
    spec: RuleGroups,
}

#[derive(Serialize)]
struct RuleGroups {
    groups: Vec<RuleGroup>,
}

#[derive(Serialize)]
struct Data {
    data: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StringData {
    #[serde(rename = "type")]
    kind: &'static str,
    string_data: BTreeMap<String, String>,
}

fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(
        "app.kubernetes.io/part-of".to_string(),
        "todo-observability".to_string(),
    );
    l.insert(
        "app.kubernetes.io/managed-by".to_string(),
        "todoctl-slo".to_string(),
    );
    for (k, v) in extra {
        l.insert(k.to_string(), v.to_string());
    }
    l
}

pub fn manifests(
    slos: &[Slo],
    opts: &crate::generate::Options,
    generated: &BTreeMap<PathBuf, String>,
) -> Result<BTreeMap<String, String>, crate::Error> {
    let mut out = BTreeMap::new();
    let slo_rules = compile::rule_files(slos, &opts.runbook_base)
        .into_iter()
        .map(|(service, file)| (format!("slo-{service}"), file));
    let ops_rules = (
        crate::ops::RULE_FILE.to_string(),
        crate::ops::rule_file(&opts.thresholds, &opts.runbook_base),
    );
    for (name, file) in slo_rules.chain([ops_rules]) {
        let obj = Object {
            api_version: "monitoring.coreos.com/v1",
            kind: "PrometheusRule",
            metadata: Metadata {
                name: name.clone(),
                namespace: NAMESPACE,
                labels: labels(&[&[("role", "alert-rules")], MONITORING_STACK_LABELS].concat()),
            },
            body: RuleSpec {
                spec: RuleGroups {
                    groups: file.groups,
                },
            },
        };
        out.insert(
            format!("prometheusrule-{name}.yaml"),
            compile::to_yaml(&obj)?,
        );
    }
    for (path, text) in generated {
        let Ok(rel) = path.strip_prefix("dashboards") else {
            continue;
        };
        let name = rel.to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if stem.contains('/') {
            continue;
        }
        let obj = Object {
            api_version: "v1",
            kind: "ConfigMap",
            metadata: Metadata {
                name: format!("grafana-dashboard-{stem}"),
                namespace: NAMESPACE,
                labels: labels(&[("grafana_dashboard", "1")]),
            },
            body: Data {
                data: BTreeMap::from([(name.clone(), text.clone())]),
            },
        };
        out.insert(
            format!("configmap-dashboard-{stem}.yaml"),
            compile::to_yaml(&obj)?,
        );
    }
    Ok(out)
}

/// The Alertmanager configuration of one overlay as the Secret
/// `alertmanager-todo` (key `alertmanager.yaml`), which the Alertmanager
/// resource names in `spec.configSecret`. It holds routing only: credentials
/// are file paths into the receiver Secret (`crate::receivers`).
pub fn alertmanager_secret(config: &str) -> Result<String, crate::Error> {
    let obj = Object {
        api_version: "v1",
        kind: "Secret",
        metadata: Metadata {
            name: "alertmanager-todo".into(),
            namespace: NAMESPACE,
            labels: labels(&[]),
        },
        body: StringData {
            kind: "Opaque",
            string_data: BTreeMap::from([("alertmanager.yaml".to_string(), config.to_string())]),
        },
    };
    compile::to_yaml(&obj)
}
