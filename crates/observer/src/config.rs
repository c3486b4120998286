//! Observer configuration: defaults → `--config` TOML file → `OBSERVER_*`
//! environment variables (e.g. `OBSERVER_KAFKA_BROKERS`,
//! `OBSERVER_PROMETHEUS_URL`). Unknown keys are errors.

use std::path::PathBuf;

use serde::Deserialize;
use service_kit::common::ListenConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `listen_addr`, `tls_cert_file`, `tls_key_file` (env
    /// `OBSERVER_LISTEN_ADDR`, `OBSERVER_TLS_CERT_FILE`, …).
    #[serde(flatten)]
    pub listen: ListenConfig<Defaults>,
    /// `bootstrap.servers`; empty disables the lag tailer.
    pub kafka_brokers: String,
    /// Time between two lag snapshots.
    pub lag_poll_interval_ms: u64,
    /// Sliding window the partition status is evaluated over (Burrow's
    /// "window"); also the time an offset may stand still before STOP/STALL.
    pub lag_status_window_ms: u64,
    /// Timeout of each broker call (metadata, group list, offsets, fetch).
    pub kafka_timeout_ms: u64,
    /// Consumer groups to watch: glob patterns (`*` matches any run of
    /// characters). Empty means every group the broker lists.
    pub groups_allow: Vec<String>,
    /// Groups never watched, applied after `groups_allow`.
    pub groups_deny: Vec<String>,
    /// Topics whose partitions are checked for committed offsets. Empty means
    /// every topic in the cluster metadata except internal ones (`__*`).
    pub topics: Vec<String>,
    /// Directory of SLO specs (`slo/*.yaml`); unset disables SLO evaluation.
    pub slo_dir: Option<PathBuf>,
    /// Prometheus base URL, e.g. `http://127.0.0.1:9090`.
    pub prometheus_url: Option<String>,
    pub prometheus_timeout_ms: u64,
    /// Extra attempts per query after the first fails.
    pub prometheus_retries: u32,
    pub slo_eval_interval_ms: u64,
    /// Alertmanager base URL; unset means alerts are computed and shown but not sent.
    pub alertmanager_url: Option<String>,
    /// `severity` label of the monitoring alert raised when Prometheus is
    /// unreachable (routed like a ticket by default, never as an SLO page).
    pub monitoring_alert_severity: String,
    /// Link put in `generatorURL` of posted alerts (the status page).
    pub external_url: String,
    /// Six-field cron expression (sec min hour day month weekday, UTC) of the
    /// daily error-budget report.
    pub report_schedule: String,
    pub shutdown_timeout_secs: u64,
    /// Directory of canary specs (`canary/*.yaml`); unset disables the
    /// canary controller. Needs `database_url` and `prometheus_url`.
    pub canary_dir: Option<PathBuf>,
    /// Postgres for the canary decision log.
    pub database_url: Option<String>,
    /// Who may call the mutating endpoints (canary actions, which need the
    /// `operator` role): `disabled` refuses them, `dev` trusts unsigned
    /// tokens (local use only), `oidc` verifies bearer tokens (`auth_oidc`).
    pub auth_mode: service_kit::auth::AuthMode,
    pub auth_oidc: Option<service_kit::auth::OidcConfig>,
}

/// The observer's defaults of the shared keys.
#[derive(Debug, Clone)]
pub struct Defaults;

impl service_kit::common::Defaults for Defaults {
    const LISTEN_ADDR: &'static str = "127.0.0.1:8084";
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ListenConfig::default(),
            kafka_brokers: String::new(),
            lag_poll_interval_ms: 5_000,
            lag_status_window_ms: 300_000,
            kafka_timeout_ms: 5_000,
            groups_allow: Vec::new(),
            groups_deny: Vec::new(),
            topics: Vec::new(),
            slo_dir: None,
            prometheus_url: None,
            prometheus_timeout_ms: 2_000,
            prometheus_retries: 2,
            slo_eval_interval_ms: 30_000,
            alertmanager_url: None,
            monitoring_alert_severity: "ticket".into(),
            external_url: "http://127.0.0.1:8084/".into(),
            report_schedule: "0 0 8 * * *".into(),
            shutdown_timeout_secs: 10,
            canary_dir: None,
            database_url: None,
            auth_mode: service_kit::auth::AuthMode::Disabled,
            auth_oidc: None,
        }
    }
}

impl Config {
    /// `Ok` or an error listing every problem of this configuration.
    pub fn validate(&self) -> anyhow::Result<()> {
        use service_kit::check::Checked as _;
        let mut p = service_kit::check::Problems::new(Self::PREFIX);
        self.problems(&mut p);
        p.into_result()
    }
}

impl service_kit::check::Checked for Config {
    const PREFIX: &'static str = "OBSERVER";

    fn problems(&self, p: &mut service_kit::check::Problems) {
        self.listen.problems(p);
        p.brokers("kafka_brokers", &self.kafka_brokers, true);
        p.auth(self.auth_mode, self.auth_oidc.as_ref());
        if let Some(url) = &self.database_url {
            p.database_url("database_url", url);
        }
        for (key, url) in [
            ("prometheus_url", &self.prometheus_url),
            ("alertmanager_url", &self.alertmanager_url),
        ] {
            if let Some(url) = url {
                p.http_url(key, url);
            }
        }
        p.http_url("external_url", &self.external_url);
        if self.lag_poll_interval_ms == 0 {
            p.add("lag_poll_interval_ms", "must be > 0");
        }
        if self.lag_status_window_ms < self.lag_poll_interval_ms {
            p.add(
                "lag_status_window_ms",
                format!(
                    "({}) must be at least lag_poll_interval_ms ({})",
                    self.lag_status_window_ms, self.lag_poll_interval_ms
                ),
            );
        }
        if self.slo_eval_interval_ms == 0 {
            p.add("slo_eval_interval_ms", "must be > 0");
        }
        if let Err(e) = crate::report::parse_schedule(&self.report_schedule) {
            p.add("report_schedule", e);
        }
        if self.canary_dir.is_some() {
            if self.database_url.is_none() {
                p.add(
                    "database_url",
                    "is required when OBSERVER_CANARY_DIR is set (the decision log lives in Postgres)",
                );
            }
            if self.prometheus_url.is_none() {
                p.add(
                    "prometheus_url",
                    "is required when OBSERVER_CANARY_DIR is set",
                );
            }
        }
        if self.slo_dir.is_some() && self.prometheus_url.is_none() {
            p.add("prometheus_url", "is required when OBSERVER_SLO_DIR is set");
        }
    }

    fn summary(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "{}, lag tailer {}, SLO evaluation {}, paging {}, canary controller {}, auth {:?}",
            self.listen.summary(),
            on(!self.kafka_brokers.is_empty()),
            on(self.slo_dir.is_some()),
            on(self.alertmanager_url.is_some()),
            on(self.canary_dir.is_some()),
            self.auth_mode
        )
    }
}

/// `*` glob: matches any run of characters (including none).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(idx) => rest = &rest[idx + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether a group passes the allow list (empty = all) and not the deny list.
pub fn group_selected(cfg: &Config, group: &str) -> bool {
    (cfg.groups_allow.is_empty() || cfg.groups_allow.iter().any(|p| glob_match(p, group)))
        && !cfg.groups_deny.iter().any(|p| glob_match(p, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("query-*", "query-service"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        let cfg = Config {
            groups_allow: vec!["svc-*".into()],
            groups_deny: vec!["svc-test*".into()],
            ..Config::default()
        };
        assert!(group_selected(&cfg, "svc-a"));
        assert!(!group_selected(&cfg, "svc-test1"));
        assert!(!group_selected(&cfg, "other"));
    }
}
