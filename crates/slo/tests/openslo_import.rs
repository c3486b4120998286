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
    slo::generate::write_all(&slos, dir.path()).expect("write");
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
