use serde::Deserialize;
use service_kit::auth::{AuthMode, OidcConfig};
use service_kit::rate_limit::RateLimitConfig;

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
    /// HTTPS instead of HTTP on `listen_addr`: a PEM certificate (chain,
    /// leaf first) and its PEM private key; both or neither
    /// (env `QUERY_TLS_CERT_FILE`, `QUERY_TLS_KEY_FILE`).
    #[serde(default)]
    pub tls_cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<std::path::PathBuf>,
    pub kafka_brokers: String,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    #[serde(default = "defaults::version")]
    pub version: String,
    /// `disabled` (refuse every request), `dev` (trust `X-User-Id`; local
    /// only, warns at start) or `oidc` (verify bearer tokens; needs `auth_oidc`).
    #[serde(default)]
    pub auth_mode: AuthMode,
    /// Issuer, audience and JWKS URL for `auth_mode = "oidc"`
    /// (env `QUERY_AUTH_OIDC__ISSUER`, `…__AUDIENCE`, `…__JWKS_URL`).
    #[serde(default)]
    pub auth_oidc: Option<OidcConfig>,
    /// Per-user and per-address limits on `/v1` (env
    /// `QUERY_RATE_LIMIT__PER_USER_RPS`, …); off unless set.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
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
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
    pub fn shutdown_timeout_secs() -> u64 {
        20
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
            "QUERY",
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
        )
    }
}

impl service_kit::check::Checked for Config {
    const PREFIX: &'static str = "QUERY";

    fn problems(&self, p: &mut service_kit::check::Problems) {
        p.listen_addr("listen_addr", &self.listen_addr);
        p.database_url("database_url", &self.database_url);
        p.brokers("kafka_brokers", &self.kafka_brokers, false);
        p.tls_files(self.tls_cert_file.as_deref(), self.tls_key_file.as_deref());
        p.auth(self.auth_mode, self.auth_oidc.as_ref());
        p.rate_limit(&self.rate_limit);
        if self.request_timeout_ms == 0 {
            p.add("request_timeout_ms", "must be positive");
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
            "{}, database, brokers {}, group {}, auth {:?}",
            service_kit::check::listening(&self.listen_addr, self.tls_cert_file.as_deref()),
            self.kafka_brokers,
            self.group_id,
            self.auth_mode
        )
    }
}
