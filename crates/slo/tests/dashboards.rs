//! Every generated dashboard validates against Grafana's published dashboard JSON Schema.
mod common;

#[test]
fn dashboards_validate_against_grafana_schema() {
    let root = common::repo_root();
    let schema_path = root.join("../shared/schemas/grafana/dashboard.jsonschema.json");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&schema_path)
            .unwrap_or_else(|e| panic!("{}: {e}", schema_path.display())),
    )
    .expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("compile schema");
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    let dashboards =
        slo::dashboards::all(&slos, &slo::ops::Thresholds::default(), &common::prices())
            .expect("dashboards");
    assert!(dashboards.len() >= 9, "{:?}", dashboards.keys());
    // The seed's business, infrastructure and cost views are among them.
    for view in ["business.json", "infrastructure.json", "cost.json"] {
        assert!(dashboards.contains_key(view), "{view} missing");
    }
    let mut failures = Vec::new();
    for (name, text) in &dashboards {
        let v: serde_json::Value = serde_json::from_str(text).expect("dashboard json");
        for e in validator.iter_errors(&v) {
            failures.push(format!("{name}: {} at {}", e, e.instance_path()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} schema errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The validator is strict: a stray field must be refused, or this test proves nothing.
    let mut bad: serde_json::Value =
        serde_json::from_str(&dashboards["slo-overview.json"]).expect("json");
    bad["panels"][1]["bogus"] = serde_json::json!(1);
    assert!(
        !validator.is_valid(&bad),
        "schema accepted an unknown panel field"
    );
}

#[test]
fn panel_ids_are_unique_and_queries_use_contract_names() {
    let root = common::repo_root();
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    for (name, text) in
        slo::dashboards::all(&slos, &slo::ops::Thresholds::default(), &common::prices())
            .expect("dashboards")
    {
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let ids: Vec<u64> = v["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .map(|p| p["id"].as_u64().expect("id"))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "{name}: duplicate panel ids");
    }
    let red = slo::dashboards::red();
    let s = serde_json::to_string(&red).expect("json");
    assert!(
        s.contains(contracts_name()),
        "RED dashboard must use the typed histogram name"
    );
}

fn contracts_name() -> &'static str {
    "http_server_request_duration_seconds_bucket"
}

/// The latency panels (RED, projection freshness) ask for exemplars, and the
/// generated Prometheus datasource links their `trace_id` to the Tempo
/// datasource that compose provisions.
#[test]
fn latency_panels_show_exemplars_linked_to_tempo() {
    let root = common::repo_root();
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    let dashboards =
        slo::dashboards::all(&slos, &slo::ops::Thresholds::default(), &common::prices())
            .expect("dashboards");
    let targets = |name: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&dashboards[name]).expect("json");
        v["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    for (name, histogram) in [
        (
            "service-red.json",
            "http_server_request_duration_seconds_bucket",
        ),
        ("kafka-lag.json", "projection_freshness_seconds_bucket"),
    ] {
        let latency: Vec<_> = targets(name)
            .into_iter()
            .filter(|t| {
                t["expr"]
                    .as_str()
                    .unwrap_or("")
                    .contains("histogram_quantile")
            })
            .filter(|t| t["expr"].as_str().unwrap_or("").contains(histogram))
            .collect();
        assert!(!latency.is_empty(), "{name}: no latency panel");
        for t in latency {
            assert_eq!(t["exemplar"], true, "{name}: {t}");
        }
    }
    let provisioning = slo::dashboards::provisioning().expect("provisioning");
    let ds: serde_json::Value =
        serde_norway::from_str(&provisioning["datasources/prometheus.yaml"]).expect("yaml");
    let link = &ds["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"][0];
    assert_eq!(link["name"], "trace_id", "{ds}");
    let tempo: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/datasources/loki-tempo.yaml"))
            .expect("compose datasources"),
    )
    .expect("yaml");
    let tempo_uid = tempo["datasources"]
        .as_array()
        .expect("datasources")
        .iter()
        .find(|d| d["type"] == "tempo")
        .map(|d| d["uid"].clone())
        .expect("a Tempo datasource");
    assert_eq!(link["datasourceUid"], tempo_uid, "{ds}");
}

#[test]
fn cost_panels_say_they_are_estimates_and_use_the_price_table() {
    let prices = slo::cost::parse_str(
        "cost.yaml",
        "cost:\n  currency: EUR\n  replica_hour:\n    command-service: 0.125\n",
    )
    .expect("prices");
    let d = serde_json::to_value(slo::dashboards::cost(&prices)).expect("json");
    let mut priced = 0;
    for p in d["panels"].as_array().expect("panels") {
        let text = format!("{} {}", p["title"], p["description"]);
        let exprs = serde_json::to_string(&p["targets"]).expect("targets");
        if exprs.contains("0.125") {
            priced += 1;
            assert!(
                text.to_lowercase().contains("estimate"),
                "a priced panel must say it is an estimate: {text}"
            );
            assert_eq!(p["fieldConfig"]["defaults"]["unit"], "currencyEUR");
        }
    }
    assert!(priced >= 3, "{priced} panels use the price");
}
