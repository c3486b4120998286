//! The published JSON Schema accepts our specs and refuses structural errors.
mod common;

fn yaml_to_json(text: &str) -> serde_json::Value {
    serde_norway::from_str(text).expect("yaml")
}

#[test]
fn published_schema_accepts_every_spec_and_rejects_structural_errors() {
    let schema = slo::schema::schema();
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let root = common::repo_root();
    for e in std::fs::read_dir(root.join("slo")).expect("slo dir") {
        let p = e.expect("entry").path();
        if p.file_name()
            .is_some_and(|n| n == slo::receivers::FILE || n == slo::cost::FILE)
        {
            continue; // not an SLO spec (tests/receivers.rs, src/cost.rs)
        }
        let doc = yaml_to_json(&std::fs::read_to_string(&p).expect("read"));
        let errs: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errs.is_empty(), "{}: {errs:?}", p.display());
    }
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    for name in [
        "unknown-top-field",
        "unknown-slo-field",
        "missing-objective",
        "objective-as-percent",
        "both-window-kinds",
        "two-sli-kinds",
        "unknown-severity",
        "empty-tier-list",
    ] {
        let doc = yaml_to_json(
            &std::fs::read_to_string(fixtures.join(format!("{name}.yaml"))).expect("fixture"),
        );
        assert!(!v.is_valid(&doc), "schema accepted {name}");
    }
}
