//! The generated PrometheusRule manifests validate against the vendored
//! Prometheus Operator CRD schema (draft 4, as the README of the schemas says),
//! with unknown fields refused; ConfigMaps carry every dashboard.
mod common;

use serde_json::Value;

/// Adds `additionalProperties: false` wherever `properties` is set, so typos
/// fail (the API server would silently prune them).
fn strict(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // RE2's mid-pattern `(?i)` is no ECMA regex, so the draft-4 meta-schema
            // refuses it; it only guards a Thanos-only field we never set.
            if m.get("pattern")
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains("(?i)"))
            {
                m.remove("pattern");
            }
            if m.contains_key("properties")
                && !m.contains_key("additionalProperties")
                && !m.contains_key("x-kubernetes-preserve-unknown-fields")
            {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, x) in m.iter_mut() {
                strict(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

#[test]
fn prometheusrules_validate_against_the_operator_crd() {
    let root = common::repo_root();
    let crd: Value = serde_norway::from_str(
        &std::fs::read_to_string(root.join(
            "../shared/schemas/prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
        ))
        .expect("crd"),
    )
    .expect("crd yaml");
    let version = crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("v1");
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    // metadata is checked by the API server, not by this schema
    if let Some(p) = schema["properties"].as_object_mut() {
        p.insert("metadata".into(), serde_json::json!({"type": "object"}));
    }
    strict(&mut schema);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .expect("schema");
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    let all = slo::artifacts(&slos, &common::receivers(), &common::prices()).expect("artifacts");
    let mut rules = 0;
    let mut maps = 0;
    for (path, text) in &all {
        let name = path.to_string_lossy();
        if !name.starts_with("k8s/monitoring/") {
            continue;
        }
        let doc: Value = serde_norway::from_str(text).expect("yaml");
        match doc["kind"].as_str() {
            Some("PrometheusRule") => {
                assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
                let errs: Vec<String> = validator
                    .iter_errors(&doc)
                    .map(|e| format!("{e} at {}", e.instance_path()))
                    .collect();
                assert!(errs.is_empty(), "{name}: {errs:?}");
                rules += 1;
            }
            Some("ConfigMap") => {
                let data = doc["data"].as_object().expect("data");
                assert_eq!(data.len(), 1);
                for (file, json) in data {
                    let dashboard = all
                        .get(&std::path::PathBuf::from(format!("dashboards/{file}")))
                        .expect("dashboard file");
                    assert_eq!(json.as_str(), Some(dashboard.as_str()), "{name}");
                }
                assert_eq!(doc["metadata"]["labels"]["grafana_dashboard"], "1");
                maps += 1;
            }
            Some("Secret") => assert!(
                doc["stringData"]["alertmanager.yaml"]
                    .as_str()
                    .is_some_and(|s| s.contains("inhibit_rules"))
            ),
            other => panic!("{name}: unexpected kind {other:?}"),
        }
    }
    assert_eq!(
        rules, 3,
        "one per service and one for the operational alerts"
    );
    assert!(maps >= 6);
    // The strict schema must refuse a typo, or this test proves nothing.
    let mut bad: Value = serde_norway::from_str(
        &all[&std::path::PathBuf::from("k8s/monitoring/prometheusrule-slo-command-service.yaml")],
    )
    .expect("yaml");
    bad["spec"]["groups"][0]["rulez"] = Value::Bool(true);
    assert!(!validator.is_valid(&bad));
}

/// Every `*.yaml` under `dir`, recursively.
fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// Missing or different labels of `doc` against the monitoring stack's.
fn missing_stack_labels(doc: &Value) -> Vec<String> {
    slo::k8s::MONITORING_STACK_LABELS
        .iter()
        .filter(|(k, v)| doc["metadata"]["labels"][*k].as_str() != Some(*v))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect()
}

/// The objects kube-prometheus-stack selects by label carry the one set of
/// labels in `slo::k8s::MONITORING_STACK_LABELS`: the generated
/// PrometheusRules (the code uses the constant) and the hand-written
/// ServiceMonitors under k8s/ (this test keeps them in step with it).
/// scripts/validate/k8s_check.py checks the rendered overlays against the
/// assumed Prometheus resource itself.
#[test]
fn rules_and_service_monitors_carry_the_monitoring_stack_labels() {
    let root = common::repo_root();
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    let all = slo::artifacts(&slos, &common::receivers(), &common::prices()).expect("artifacts");
    let mut rules = 0;
    for (path, text) in &all {
        let doc: Value = serde_norway::from_str(text).unwrap_or(Value::Null);
        if doc["kind"] == "PrometheusRule" {
            let missing = missing_stack_labels(&doc);
            assert!(missing.is_empty(), "{}: lacks {missing:?}", path.display());
            rules += 1;
        }
    }
    assert_eq!(
        rules, 3,
        "generated PrometheusRules (per service, and operations)"
    );

    let mut files = Vec::new();
    yaml_files(&root.join("k8s"), &mut files);
    files.sort();
    let mut monitors = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for doc in text.split("\n---") {
            let Ok(doc) = serde_norway::from_str::<Value>(doc) else {
                continue;
            };
            if doc["apiVersion"] == "monitoring.coreos.com/v1"
                && matches!(
                    doc["kind"].as_str(),
                    Some("ServiceMonitor" | "PodMonitor" | "Probe" | "PrometheusRule")
                )
            {
                let missing = missing_stack_labels(&doc);
                assert!(
                    missing.is_empty(),
                    "{} {}/{}: lacks labels {missing:?} (slo::k8s::MONITORING_STACK_LABELS): kube-prometheus-stack would not select it",
                    f.strip_prefix(&root).unwrap_or(f).display(),
                    doc["kind"].as_str().unwrap_or("?"),
                    doc["metadata"]["name"].as_str().unwrap_or("?"),
                );
                if doc["kind"] == "ServiceMonitor" {
                    monitors.push(doc["metadata"]["name"].as_str().unwrap_or("?").to_string());
                }
            }
        }
    }
    assert!(
        monitors.len() >= 2,
        "ServiceMonitors found under k8s/: {monitors:?}"
    );
    // The check can fail: an object without the labels is reported.
    let unlabelled: Value = serde_norway::from_str(
        "kind: ServiceMonitor\nmetadata: {name: x, labels: {release: prometheus}}",
    )
    .expect("yaml");
    assert!(!missing_stack_labels(&unlabelled).is_empty());
}
