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
    let out = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .args(&files)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every generated Alertmanager config: the compose demo's and the one
/// inside each overlay's Secret.
#[test]
fn amtool_check_config_passes_on_every_target() {
    let amtool = require_tool("amtool");
    let dir = generated();
    let mut configs = vec![dir.path().join("alerts/alertmanager.yml")];
    for (name, text) in alertmanager_secrets(dir.path()) {
        let path = dir.path().join(format!("{name}.alertmanager.yml"));
        std::fs::write(&path, text).expect("write");
        configs.push(path);
    }
    assert!(
        configs.len() >= 4,
        "compose + dev, staging, prod expected: {configs:?}"
    );
    for cfg in configs {
        let out = Command::new(&amtool)
            .arg("check-config")
            .arg(&cfg)
            .output()
            .expect("amtool");
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            cfg.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
    assert!(
        files.len() >= 6,
        "one test file per SLO expected, got {files:?}"
    );
    let out = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .args(&files)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alertmanager_routes_pages_to_oncall_and_tickets_to_ticket() {
    let amtool = require_tool("amtool");
    let dir = generated();
    let cfg = dir.path().join("alerts/alertmanager.yml");
    for (labels, want) in [
        (
            ["severity=page", "tier=1", "slo=command-api-availability"],
            "oncall",
        ),
        (
            ["severity=ticket", "tier=3", "slo=command-api-availability"],
            "ticket",
        ),
        (
            ["severity=ticket", "tier=no-data", "slo=query-consumer-lag"],
            "ticket",
        ),
    ] {
        let out = Command::new(&amtool)
            .args([
                "config",
                "routes",
                "test",
                &format!("--config.file={}", cfg.display()),
            ])
            .args(labels)
            .output()
            .expect("amtool");
        let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && got == want,
            "{labels:?}: got `{got}` {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&cfg).expect("config");
    assert!(
        text.contains("tier=\"1\"") && text.contains("tier=~\"2|3|4\""),
        "inhibition of lower tiers missing:\n{text}"
    );
}
