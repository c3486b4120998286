use serde::Deserialize;
use service_kit::common::{ListenConfig, PlatformConfig};

/// Event processor configuration: defaults → `--config` TOML file →
/// `PROCESSOR_*` environment variables (e.g. `PROCESSOR_DATABASE_URL`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Health, readiness and metrics only: `listen_addr`, `tls_cert_file`,
    /// `tls_key_file`.
    #[serde(flatten)]
    pub listen: ListenConfig<Defaults>,
    /// `database_url`, `db_max_connections`, `kafka_brokers`, `version`.
    #[serde(flatten)]
    pub platform: PlatformConfig<Defaults>,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    /// A todo due within this many hours gets a `notification.email`.
    #[serde(default = "defaults::due_soon_hours")]
    pub due_soon_hours: i64,
    /// Cron expression (with seconds) of the due-soon sweep.
    #[serde(default = "defaults::sweep_schedule")]
    pub sweep_schedule: String,
    /// Attempts before a failing record goes to the DLQ.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "defaults::session_timeout_ms")]
    pub kafka_session_timeout_ms: u32,
    /// Fault injection for tests and demos: handling fails for todos whose
    /// title contains this marker. Off by default.
    #[serde(default)]
    pub fault_fail_title_marker: Option<String>,
}

/// The processor's defaults of the shared keys.
#[derive(Debug, Clone)]
pub struct Defaults;

impl service_kit::common::Defaults for Defaults {
    const LISTEN_ADDR: &'static str = "127.0.0.1:8083";
    const DB_MAX_CONNECTIONS: u32 = 4;
}

mod defaults {
    pub fn group_id() -> String {
        "event-processor".into()
    }
    pub fn due_soon_hours() -> i64 {
        24
    }
    pub fn sweep_schedule() -> String {
        "0 */5 * * * *".into()
    }
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn backoff_base_ms() -> u64 {
        100
    }
    pub fn session_timeout_ms() -> u32 {
        6_000
    }
}

impl Config {
    pub fn schedule(&self) -> anyhow::Result<cron::Schedule> {
        self.sweep_schedule.parse().map_err(|e| {
            anyhow::anyhow!(
                "'{}' is not a cron expression with seconds (e.g. \"0 */5 * * * *\"): {e}",
                self.sweep_schedule
            )
        })
    }
}

impl service_kit::check::Checked for Config {
    const PREFIX: &'static str = "PROCESSOR";

    fn problems(&self, p: &mut service_kit::check::Problems) {
        self.listen.problems(p);
        self.platform.problems(p);
        if let Err(e) = self.schedule() {
            p.add("sweep_schedule", format!("{e:#}"));
        }
        if self.max_attempts == 0 {
            p.add("max_attempts", "must be at least 1");
        }
        if self.group_id.trim().is_empty() {
            p.add("group_id", "must not be empty");
        }
    }

    fn summary(&self) -> String {
        format!(
            "{}, database, brokers {}, group {}, sweep '{}'",
            self.listen.summary(),
            self.platform.kafka_brokers,
            self.group_id,
            self.sweep_schedule
        )
    }
}
