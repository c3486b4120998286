//! The spec directory: every `*.yaml` / `*.yml` a canary, and the driver
//! each one moves traffic with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use canary::{CanarySpec, DriverSpec, Strategy};
use rollout::RolloutDriver;

/// A spec that loaded, with its file and driver.
pub(super) struct Loaded {
    pub(super) spec: CanarySpec,
    pub(super) file: PathBuf,
    pub(super) driver: Arc<dyn RolloutDriver>,
}

pub(super) fn driver_for(spec: &CanarySpec) -> anyhow::Result<Arc<dyn RolloutDriver>> {
    match &spec.driver {
        None => anyhow::bail!(
            "field 'driver': missing; the observer needs to know how to move traffic (haproxy or gateway_api)"
        ),
        Some(DriverSpec::Haproxy { runtime_api }) => {
            let (backend, stable) = spec.stable.split_once('/').unwrap_or_default();
            let canary = spec
                .canary
                .split_once('/')
                .map(|(_, s)| s)
                .unwrap_or_default();
            let driver = rollout::HaproxyDriver::new(runtime_api.clone(), backend, stable, canary);
            Ok(Arc::new(match &spec.blue_green {
                Some(bg) if spec.strategy == Strategy::BlueGreen => {
                    driver.with_preview(bg.preview.clone())
                }
                _ => driver,
            }))
        }
        Some(DriverSpec::GatewayApi {
            namespace,
            http_route,
            canary_deployment,
            canary_replicas,
            api_server,
            stable_deployment,
            stable_replicas,
        }) => {
            let rollout::gateway::ApiAccess {
                api_server,
                token,
                ca_pem,
            } = match api_server {
                Some(url) => rollout::gateway::ApiAccess {
                    api_server: url.clone(),
                    token: None,
                    ca_pem: None,
                },
                None => rollout::GatewayApiConfig::in_cluster_api()?,
            };
            Ok(Arc::new(rollout::GatewayApiDriver::new(
                rollout::GatewayApiConfig {
                    api_server,
                    token,
                    ca_pem,
                    namespace: namespace.clone(),
                    http_route: http_route.clone(),
                    stable_service: spec.stable.clone(),
                    canary_service: spec.canary.clone(),
                    canary_deployment: canary_deployment.clone(),
                    canary_replicas: *canary_replicas,
                    stable_deployment: stable_deployment.clone(),
                    stable_replicas: *stable_replicas,
                    scale_with_weight: spec.strategy == Strategy::Canary,
                    timeout: Duration::from_secs(5),
                },
            )?))
        }
    }
}

/// Load every `*.yaml` / `*.yml` in `dir`: good specs by name, and errors.
pub fn load_specs(dir: &Path) -> (Vec<(PathBuf, CanarySpec)>, Vec<String>) {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return (specs, errors);
        }
    };
    files.sort();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for f in files {
        let shown = f.display().to_string();
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{shown}: {e}"));
                continue;
            }
        };
        match CanarySpec::from_yaml(&shown, &text) {
            Ok(spec) => {
                if spec.driver.is_none() {
                    errors.push(format!(
                        "{shown}: field 'driver': missing (fix: add driver: {{haproxy: {{runtime_api: host:port}}}} or driver: {{gateway_api: …}})"
                    ));
                } else if let Some(other) = names.get(&spec.name) {
                    errors.push(format!(
                        "{shown}: field 'name': '{}' is also defined in {} (fix: give each canary its own name)",
                        spec.name,
                        other.display()
                    ));
                } else {
                    names.insert(spec.name.clone(), f.clone());
                    specs.push((f, spec));
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (specs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_specs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for dir in [
            "canary",
            "k8s/base/canary",
            "canary/examples",
            "k8s/base/canary/examples",
        ] {
            let (specs, errors) = load_specs(&root.join(dir));
            assert!(errors.is_empty(), "{dir}: {errors:?}");
            assert!(!specs.is_empty(), "{dir}: no specs");
        }
    }

    #[test]
    fn spec_dir_errors_name_file_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "name: c\ntarget: command-service\nstable: command/stable\ncanary: command/canary\nstable_version: a\ncanary_version: b\ndriver:\n  haproxy:\n    runtime_api: 127.0.0.1:1\n";
        std::fs::write(dir.path().join("a.yaml"), good).expect("write");
        std::fs::write(dir.path().join("b.yaml"), good).expect("write");
        std::fs::write(
            dir.path().join("c.yaml"),
            good.replace("name: c", "name: d") + "analysis:\n  latency_threshold_seconds: 0.3\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("d.yaml"),
            good.replace("name: c", "name: e")
                .replace("driver:\n  haproxy:\n    runtime_api: 127.0.0.1:1\n", ""),
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let (specs, errors) = load_specs(dir.path());
        assert_eq!(specs.len(), 1);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[2].contains("d.yaml") && errors[2].contains("'driver'"),
            "{errors:?}"
        );
        assert!(
            errors[0].contains("b.yaml") && errors[0].contains("'name'"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("c.yaml") && errors[1].contains("latency_threshold_seconds"),
            "{errors:?}"
        );
    }
}
