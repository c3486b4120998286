#![allow(dead_code)]
use std::path::PathBuf;
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The repository's receivers (`slo/receivers.yaml`).
pub fn receivers() -> slo::Receivers {
    slo::receivers::load(&repo_root().join("slo")).unwrap_or_else(|e| panic!("{e}"))
}

/// The repository's price table (`slo/cost.yaml`).
pub fn prices() -> slo::cost::Prices {
    slo::cost::load(&repo_root().join("slo")).unwrap_or_else(|e| panic!("{e}"))
}

/// Path of a required external tool; fails loudly instead of skipping.
pub fn require_tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .expect("sh");
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !p.is_empty(),
        "`{name}` is required by this test but not installed; install it with \
         `apt-get update && apt-get install -y prometheus prometheus-alertmanager` (Debian)"
    );
    PathBuf::from(p)
}

/// (file stem, Alertmanager config) of every generated
/// `k8s/monitoring/secret-alertmanager-*.yaml` under `root`.
pub fn alertmanager_secrets(root: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(root.join("k8s/monitoring"))
        .expect("k8s/monitoring")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("secret-alertmanager-"))
        })
        .collect();
    paths.sort();
    for p in paths {
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&p).expect("read")).expect("yaml");
        let cfg = doc["stringData"]["alertmanager.yaml"]
            .as_str()
            .expect("stringData.alertmanager.yaml")
            .to_string();
        let stem = p.file_stem().expect("stem").to_string_lossy().to_string();
        out.push((stem, cfg));
    }
    out
}
