use serde::Deserialize;
use service_kit::auth::AuthMode;

/// Query service configuration: defaults → `--config` TOML file → `QUERY_*`
/// environment variables (e.g. `QUERY_DATABASE_URL`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "defaults::listen_addr")]
    pub listen_addr: String,
    pub database_url: String,
    #[serde(default = "defaults::db_max_connections")]
    pub db_max_connections: u32,
    pub kafka_brokers: String,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    #[serde(default = "defaults::version")]
    pub version: String,
    #[serde(default)]
    pub auth_mode: AuthMode,
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
}

mod defaults {
    pub fn listen_addr() -> String {
        "127.0.0.1:8082".into()
    }
    pub fn db_max_connections() -> u32 {
        16
    }
    pub fn group_id() -> String {
        "query-service".into()
    }
    pub fn version() -> String {
        "stable".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn session_timeout_ms() -> u32 {
        6_000
    }
    pub fn shutdown_timeout_secs() -> u64 {
        20
    }
}

impl Config {
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Ok(service_kit::config::load("QUERY", file)?)
    }
}
