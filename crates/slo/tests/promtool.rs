//! The generated rules and tests, checked with the real Prometheus tools.
mod common;

use std::process::Command;

use common::*;

fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    slo::generate(&repo_root().join("slo"), dir.path()).expect("generate");
    dir
}

#[test]
fn promtool_check_rules_passes_on_every_rules_file() {
    let promtool = require_tool("promtool");
    let dir = generated();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("alerts"))
        .expect("alerts dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yaml"))
        .collect();
    assert!(!files.is_empty());
    let out = Command::new(&promtool).arg("check").arg("rules").args(&files).output().expect("promtool");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn amtool_check_config_passes() {
    let amtool = require_tool("amtool");
    let dir = generated();
    let out = Command::new(&amtool)
        .arg("check-config")
        .arg(dir.path().join("alerts/alertmanager.yml"))
        .output()
        .expect("amtool");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn promtool_test_rules_passes_on_generated_scenarios() {
    let promtool = require_tool("promtool");
    let dir = generated();
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("alerts/tests"))
        .expect("tests dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "one test file per SLO expected, got {files:?}");
    let out = Command::new(&promtool).arg("test").arg("rules").args(&files).output().expect("promtool");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
