//! The functions behind `todoctl slo …`.
mod common;

use std::path::Path;

#[test]
fn validate_prints_one_line_per_problem_and_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("e").path())
        .collect();
    files.sort();
    let o = slo::cli::validate(&dir, &files);
    assert!(!o.ok);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), files.len() + 1, "{}", o.stderr);
    assert!(
        lines
            .last()
            .expect("summary")
            .ends_with(&format!("{} error(s)", files.len()))
    );
    for l in &lines[..files.len()] {
        assert!(l.contains(".yaml:") && l.contains("(fix: "), "{l}");
    }
}

#[test]
fn validate_generate_check_and_explain_on_our_specs() {
    let root = common::repo_root();
    let specs = root.join("slo");
    let o = slo::cli::validate(&specs, &[]);
    assert!(o.ok, "{}", o.stderr);
    let o = slo::cli::explain(&specs, Some("command-api-availability"));
    assert!(
        o.stdout
            .contains("pages when 2% of the 30-day budget burns within 1 h (burn rate 14.4)"),
        "{}",
        o.stdout
    );
    let o = slo::cli::explain(&specs, Some("nope"));
    assert!(!o.ok && o.stderr.contains("known:"));
    let tmp = tempfile::tempdir().expect("tmp");
    let o = slo::cli::generate(&specs, tmp.path(), true, &slo::Options::default());
    assert!(!o.ok, "check against an empty dir must report stale files");
    assert!(slo::cli::generate(&specs, tmp.path(), false, &slo::Options::default()).ok);
    let o = slo::cli::generate(&specs, tmp.path(), true, &slo::Options::default());
    assert!(o.ok, "{}", o.stderr);
}

#[test]
fn import_writes_validated_specs_and_refuses_overwrite() {
    let tmp = tempfile::tempdir().expect("tmp");
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openslo/todo.yaml");
    let o = slo::cli::import(&f, tmp.path());
    assert!(o.ok, "{}", o.stderr);
    assert!(tmp.path().join("web.yaml").exists());
    assert!(slo::cli::validate(tmp.path(), &[]).ok);
    assert!(!slo::cli::import(&f, tmp.path()).ok);
}
