use serde::Deserialize;
use service_kit::common::{AccessConfig, ListenConfig, PlatformConfig};

/// Query service configuration: defaults → `--config` TOML file → `QUERY_*`
/// environment variables (e.g. `QUERY_DATABASE_URL`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `listen_addr`, `tls_cert_file`, `tls_key_file`.
    #[serde(flatten)]
    pub listen: ListenConfig<Defaults>,
    /// `database_url`, `db_max_connections`, `kafka_brokers`, `version`.
    #[serde(flatten)]
    pub platform: PlatformConfig<Defaults>,
    /// `auth_mode`, `auth_oidc`, `rate_limit` (env `QUERY_AUTH_MODE`,
    /// `QUERY_AUTH_OIDC__ISSUER`, `QUERY_RATE_LIMIT__PER_USER_RPS`, …).
    #[serde(flatten)]
    pub access: AccessConfig,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    /// Run the projector (consumer) in this process.
    #[serde(default = "defaults::yes")]
    pub projector_enabled: bool,
    /// Store consumer offsets after applying (the default). `false` only
    /// simulates a consumer that dies before its offset commit.
    #[serde(default = "defaults::yes")]
    pub store_offsets: bool,
    #[serde(default = "defaults::session_timeout_ms")]
    pub kafka_session_timeout_ms: u32,
    #[serde(default = "defaults::shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// A `/v1` request taking longer is abandoned with 503 + `Retry-After`.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
}

/// The query service's defaults of the shared keys.
#[derive(Debug, Clone)]
pub struct Defaults;

impl service_kit::common::Defaults for Defaults {
    const LISTEN_ADDR: &'static str = "127.0.0.1:8082";
}

mod defaults {
    pub fn group_id() -> String {
        "query-service".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn session_timeout_ms() -> u32 {
        6_000
    }
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
    pub fn shutdown_timeout_secs() -> u64 {
        20
    }
}

impl service_kit::check::Checked for Config {
    const PREFIX: &'static str = "QUERY";

    fn problems(&self, p: &mut service_kit::check::Problems) {
        self.listen.problems(p);
        self.platform.problems(p);
        self.access.problems(p);
        if self.request_timeout_ms == 0 {
            p.add("request_timeout_ms", "must be positive");
        }
        if self.group_id.trim().is_empty() {
            p.add("group_id", "must not be empty");
        }
    }

    fn summary(&self) -> String {
        format!(
            "{}, database, brokers {}, group {}, auth {:?}",
            self.listen.summary(),
            self.platform.kafka_brokers,
            self.group_id,
            self.access.auth_mode
        )
    }
}
