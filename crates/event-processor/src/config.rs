use serde::Deserialize;

/// Event processor configuration: defaults → `--config` TOML file →
/// `PROCESSOR_*` environment variables (e.g. `PROCESSOR_DATABASE_URL`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Health, readiness and metrics only.
    #[serde(default = "defaults::listen_addr")]
    pub listen_addr: String,
    /// HTTPS instead of HTTP on `listen_addr`: a PEM certificate (chain,
    /// leaf first) and its PEM private key; both or neither
    /// (env `PROCESSOR_TLS_CERT_FILE`, `PROCESSOR_TLS_KEY_FILE`).
    #[serde(default)]
    pub tls_cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<std::path::PathBuf>,
    pub database_url: String,
    #[serde(default = "defaults::db_max_connections")]
    pub db_max_connections: u32,
    pub kafka_brokers: String,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    #[serde(default = "defaults::version")]
    pub version: String,
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

mod defaults {
    pub fn listen_addr() -> String {
        "127.0.0.1:8083".into()
    }
    pub fn db_max_connections() -> u32 {
        4
    }
    pub fn group_id() -> String {
        "event-processor".into()
    }
    pub fn version() -> String {
        "stable".into()
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
    /// Load as start-up does; an error lists every problem (see
    /// [`service_kit::check`]).
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        service_kit::check::load(file)
    }

    /// The TLS acceptor when a certificate is configured.
    pub fn tls(&self) -> anyhow::Result<Option<service_kit::tls::TlsAcceptor>> {
        service_kit::tls::acceptor(
            "PROCESSOR",
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
        )
    }

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
        p.listen_addr("listen_addr", &self.listen_addr);
        p.database_url("database_url", &self.database_url);
        p.brokers("kafka_brokers", &self.kafka_brokers, false);
        p.tls_files(self.tls_cert_file.as_deref(), self.tls_key_file.as_deref());
        if let Err(e) = self.schedule() {
            p.add("sweep_schedule", format!("{e:#}"));
        }
        if self.max_attempts == 0 {
            p.add("max_attempts", "must be at least 1");
        }
        if self.db_max_connections == 0 {
            p.add("db_max_connections", "must be at least 1");
        }
        if self.group_id.trim().is_empty() {
            p.add("group_id", "must not be empty");
        }
    }

    fn summary(&self) -> String {
        format!(
            "{}, database, brokers {}, group {}, sweep '{}'",
            service_kit::check::listening(&self.listen_addr, self.tls_cert_file.as_deref()),
            self.kafka_brokers,
            self.group_id,
            self.sweep_schedule
        )
    }
}
