//! OpenSLO v1 documents import into the same model, and the result compiles
//! to rules that promtool accepts.
mod common;

#[test]
fn openslo_ratio_and_threshold_metrics_import_and_compile() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openslo/todo.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let files = slo::openslo::import("todo.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(files.len(), 1);
    let rendered = slo::openslo::to_yaml(&files).expect("yaml");
    // Round trip: the emitted spec passes our own strict validation.
    let slos = slo::validate::load_texts(&[(rendered[0].0.clone(), rendered[0].1.clone())])
        .unwrap_or_else(|e| panic!("{e}\n{}", rendered[0].1));
    assert_eq!(slos.len(), 2);
    let avail = slos
        .iter()
        .find(|s| s.name == "web-availability")
        .expect("ratio slo");
    assert_eq!(avail.objective, 0.995);
    assert!(
        matches!(avail.window, slo::model::Window::Rolling(d) if d == slo::duration::Dur::days(28))
    );
    let lat = slos
        .iter()
        .find(|s| s.name == "web-p99-latency")
        .expect("threshold slo");
    assert!(
        matches!(lat.window, slo::model::Window::Calendar { unit: slo::model::CalendarUnit::Month, tz } if tz == chrono_tz::Europe::Berlin)
    );
    assert!(matches!(
        lat.budgeting,
        slo::model::Budgeting::Timeslices { .. }
    ));

    let promtool = common::require_tool("promtool");
    let dir = tempfile::tempdir().expect("tempdir");
    slo::generate::write_all(
        &slos,
        &slo::Receivers::demo(),
        &slo::cost::Prices::unpriced(),
        &slo::Options::default(),
        dir.path(),
    )
    .expect("write");
    let out = std::process::Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(dir.path().join("alerts/web.rules.yaml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openslo_errors_name_the_document_line() {
    let text = "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {service: s, indicatorRef: missing, timeWindow: [{duration: 28d, isRolling: true}], objectives: [{target: 0.99}]}\n";
    let e = slo::openslo::import("f.yaml", text).expect_err("missing SLI");
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].to_string().starts_with("f.yaml:1:"), "{}", e.0[0]);
}

/// Serves the vendored OpenSLO schema parts by their `$id`, offline.
struct LocalOpenSlo(std::path::PathBuf);

impl jsonschema::Retrieve for LocalOpenSlo {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let rel = uri
            .as_str()
            .strip_prefix("https://openslo.com/schemas/v1/")
            .ok_or_else(|| format!("unexpected $ref {}", uri.as_str()))?;
        Ok(serde_json::from_str(&std::fs::read_to_string(
            self.0.join(rel),
        )?)?)
    }
}

#[test]
fn import_fixture_is_valid_openslo_per_the_vendored_schema() {
    use serde::Deserialize;
    let dir = common::repo_root().join("../shared/schemas/openslo/v1");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("openslo.schema.json")).expect("schema"),
    )
    .expect("json");
    let validator = jsonschema::options()
        .with_retriever(LocalOpenSlo(dir))
        .build(&schema)
        .expect("compile openslo schema");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openslo/todo.yaml"),
    )
    .expect("fixture");
    let mut n = 0;
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).expect("yaml");
        let errs: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errs.is_empty(), "{}: {errs:?}", v["metadata"]["name"]);
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn export_of_every_spec_is_valid_openslo_per_the_vendored_schema() {
    use serde::Deserialize;
    let dir = common::repo_root().join("../shared/schemas/openslo/v1");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("openslo.schema.json")).expect("schema"),
    )
    .expect("json");
    let validator = jsonschema::options()
        .with_retriever(LocalOpenSlo(dir))
        .build(&schema)
        .expect("compile openslo schema");
    let text = slo::openslo::export_dir(&common::repo_root().join("slo")).expect("export");
    let mut n = 0;
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).expect("yaml");
        let errs: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errs.is_empty(), "{}: {errs:?}", v["metadata"]["name"]);
        n += 1;
    }
    assert!(n >= 8, "{n} documents");
}
