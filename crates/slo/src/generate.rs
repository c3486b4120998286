//! Writes every generated artifact from `slo/*.yaml` into a repository root.
//! Output is deterministic (sorted maps, sorted SLOs, no timestamps).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cost::Prices;
use crate::model::Slo;
use crate::receivers::{Receivers, Target};
use crate::{Error, alertmanager, compile, dashboards, k8s, ops, promtest};

/// Generator options that are not per SLO. The committed artifacts use the
/// defaults (the staleness test regenerates with them).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `runbook_url` of every alert is `<runbook_base>/docs/runbook.md#<alert>`.
    pub runbook_base: String,
    pub thresholds: ops::Thresholds,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runbook_base: compile::DEFAULT_RUNBOOK_BASE.into(),
            thresholds: ops::Thresholds::default(),
        }
    }
}

/// Every generated file with the default [`Options`].
pub fn artifacts(
    slos: &[Slo],
    receivers: &Receivers,
    prices: &Prices,
) -> Result<BTreeMap<PathBuf, String>, Error> {
    artifacts_with(slos, receivers, prices, &Options::default())
}

/// Every generated file, path relative to the repository root → content.
/// Receivers come from `slo/receivers.yaml` (`receivers::load`): the compose
/// target is `alerts/alertmanager.yml`, each Kubernetes overlay gets
/// `k8s/monitoring/secret-alertmanager-<overlay>.yaml`. Prices come from
/// `slo/cost.yaml` (`cost::load`) and feed the cost dashboard.
pub fn artifacts_with(
    slos: &[Slo],
    receivers: &Receivers,
    prices: &Prices,
    opts: &Options,
) -> Result<BTreeMap<PathBuf, String>, Error> {
    let mut out = BTreeMap::new();
    for (service, file) in compile::rule_files(slos, &opts.runbook_base) {
        out.insert(
            PathBuf::from(format!("alerts/{service}.rules.yaml")),
            compile::to_yaml(&file)?,
        );
    }
    out.insert(
        PathBuf::from(format!("alerts/{}.rules.yaml", ops::RULE_FILE)),
        compile::to_yaml(&ops::rule_file(&opts.thresholds, &opts.runbook_base))?,
    );
    out.insert(
        PathBuf::from(format!("alerts/tests/{}.test.yaml", ops::RULE_FILE)),
        ops::test_file(&opts.thresholds, &opts.runbook_base)?,
    );
    out.insert(
        PathBuf::from("docs/slo-spec.schema.json"),
        crate::schema::schema_json()?,
    );
    out.insert(
        PathBuf::from("alerts/alertmanager.yml"),
        compile::to_yaml(&alertmanager::config_for(slos, receivers, &Target::Compose))?,
    );
    for (name, text) in promtest::test_files(slos, &opts.runbook_base)? {
        out.insert(PathBuf::from(format!("alerts/tests/{name}")), text);
    }
    for (name, text) in dashboards::all(slos, &opts.thresholds, prices)? {
        out.insert(PathBuf::from(format!("dashboards/{name}")), text);
    }
    for (name, text) in dashboards::provisioning()? {
        out.insert(
            PathBuf::from(format!("dashboards/provisioning/{name}")),
            text,
        );
    }
    for (name, text) in k8s::manifests(slos, opts, &out)? {
        out.insert(PathBuf::from(format!("k8s/monitoring/{name}")), text);
    }
    for target in receivers.targets() {
        let Target::Overlay(overlay) = &target else {
            continue;
        };
        let config = compile::to_yaml(&alertmanager::config_for(slos, receivers, &target))?;
        out.insert(
            PathBuf::from(format!("k8s/monitoring/secret-alertmanager-{overlay}.yaml")),
            k8s::alertmanager_secret(&config)?,
        );
    }
    Ok(out)
}

/// Loads specs from `specs_dir` and writes all artifacts under `root`.
/// Returns the paths whose content changed.
pub fn generate(specs_dir: &Path, root: &Path) -> Result<Vec<PathBuf>, Error> {
    let slos = crate::validate::load_dir(specs_dir)?;
    let receivers = crate::receivers::load(specs_dir)?;
    let prices = crate::cost::load(specs_dir)?;
    write_all(&slos, &receivers, &prices, &Options::default(), root)
}

/// Generated files that no longer correspond to a spec (e.g. a deleted SLO):
/// files in the generated directories whose names follow the generated patterns.
pub fn stale_files(root: &Path, want: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let patterns: [(&str, &str, &str); 6] = [
        ("alerts", "", ".rules.yaml"),
        ("alerts/tests", "", ".test.yaml"),
        ("dashboards", "slo-", ".json"),
        ("k8s/monitoring", "prometheusrule-slo-", ".yaml"),
        ("k8s/monitoring", "configmap-dashboard-", ".yaml"),
        ("k8s/monitoring", "secret-alertmanager", ".yaml"),
    ];
    let mut out = Vec::new();
    for (dir, prefix, suffix) in patterns {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let rel = PathBuf::from(dir).join(&name);
            if name.starts_with(prefix) && name.ends_with(suffix) && !want.contains_key(&rel) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

pub fn write_all(
    slos: &[Slo],
    receivers: &Receivers,
    prices: &Prices,
    opts: &Options,
    root: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let mut changed = Vec::new();
    let all = artifacts_with(slos, receivers, prices, opts)?;
    for rel in stale_files(root, &all) {
        let path = root.join(&rel);
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        changed.push(rel);
    }
    for (rel, text) in all {
        let path = root.join(&rel);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        changed.push(rel);
    }
    Ok(changed)
}
