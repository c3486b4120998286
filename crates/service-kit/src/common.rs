//! The configuration block the services share, flattened into each
//! service's `Config` (`#[serde(flatten)]`), so its keys and environment
//! variables stay top-level: `COMMAND_LISTEN_ADDR`, `QUERY_DATABASE_URL`,
//! `PROCESSOR_TLS_CERT_FILE`, `OBSERVER_LISTEN_ADDR`, …
//!
//! Defaults that differ between services (the port, the pool size) come from
//! the service's [`Defaults`]; unknown keys stay errors because the
//! service's own struct denies them.

use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Deserialize;

use crate::auth::{AuthMode, OidcConfig};
use crate::check::Problems;
use crate::rate_limit::RateLimitConfig;

/// The defaults one service gives the shared keys.
pub trait Defaults: std::fmt::Debug + Clone + Send + Sync + 'static {
    /// `host:port` the service listens on when `listen_addr` is not set.
    const LISTEN_ADDR: &'static str;
    /// Postgres pool size when `db_max_connections` is not set.
    const DB_MAX_CONNECTIONS: u32 = 16;
}

fn listen_addr<D: Defaults>() -> String {
    D::LISTEN_ADDR.to_string()
}

fn db_max_connections<D: Defaults>() -> u32 {
    D::DB_MAX_CONNECTIONS
}

fn stable() -> String {
    "stable".into()
}

fn fetch_wait_max_ms() -> u32 {
    bus::settings::DEFAULT_FETCH_WAIT_MAX_MS
}

/// Where a service listens: every service, the observer included.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "D: Defaults")]
pub struct ListenConfig<D> {
    #[serde(default = "listen_addr::<D>")]
    pub listen_addr: String,
    /// HTTPS instead of HTTP on `listen_addr`: a PEM certificate (chain,
    /// leaf first) and its PEM private key; both or neither
    /// (env `<PREFIX>_TLS_CERT_FILE`, `<PREFIX>_TLS_KEY_FILE`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    #[serde(skip)]
    defaults: PhantomData<D>,
}

impl<D: Defaults> Default for ListenConfig<D> {
    fn default() -> Self {
        Self {
            listen_addr: listen_addr::<D>(),
            tls_cert_file: None,
            tls_key_file: None,
            defaults: PhantomData,
        }
    }
}

impl<D> ListenConfig<D> {
    /// The TLS acceptor when a certificate is configured; `prefix` names the
    /// environment variables in errors.
    pub fn tls(&self, prefix: &str) -> anyhow::Result<Option<crate::tls::TlsAcceptor>> {
        crate::tls::acceptor(
            prefix,
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
        )
    }

    pub fn problems(&self, p: &mut Problems) {
        p.listen_addr("listen_addr", &self.listen_addr);
        p.tls_files(self.tls_cert_file.as_deref(), self.tls_key_file.as_deref());
    }

    /// `listening on …` for `--check-config`.
    pub fn summary(&self) -> String {
        crate::check::listening(&self.listen_addr, self.tls_cert_file.as_deref())
    }
}

/// What the three platform services (command, query, event processor)
/// share beside the listener: Postgres, the brokers and the `version` label.
///
/// A sibling of [`ListenConfig`] in the service's `Config`, not a field of
/// it: serde takes a flattened struct's keys out of the map only when that
/// struct has no flattened field itself, and the service's
/// `deny_unknown_fields` relies on every key being taken.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "D: Defaults")]
pub struct PlatformConfig<D> {
    pub database_url: String,
    #[serde(default = "db_max_connections::<D>")]
    pub db_max_connections: u32,
    pub kafka_brokers: String,
    /// The consumers' `fetch.wait.max.ms` (see
    /// [`bus::KafkaSettings::fetch_wait_max_ms`]): short (the default, 10)
    /// on tansu, where the wait shows in every record's delivery; 500 on
    /// Apache Kafka (compose, Kubernetes), where it costs no latency and
    /// saves idle fetches.
    #[serde(default = "fetch_wait_max_ms")]
    pub kafka_fetch_wait_max_ms: u32,
    /// `stable` or `canary`: the `version` label on every metric.
    #[serde(default = "stable")]
    pub version: String,
    #[serde(skip)]
    defaults: PhantomData<D>,
}

impl<D> PlatformConfig<D> {
    pub fn problems(&self, p: &mut Problems) {
        p.database_url("database_url", &self.database_url);
        p.brokers("kafka_brokers", &self.kafka_brokers, false);
        if self.db_max_connections == 0 {
            p.add("db_max_connections", "must be at least 1");
        }
        if !(1..=60_000).contains(&self.kafka_fetch_wait_max_ms) {
            p.add(
                "kafka_fetch_wait_max_ms",
                "must be between 1 and 60000 (milliseconds)",
            );
        }
    }
}

/// Who may call a service's `/v1` API and how often: command and query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AccessConfig {
    /// `disabled` (refuse every request), `dev` (trust `X-User-Id`; local
    /// only, warns at start) or `oidc` (verify bearer tokens; needs `auth_oidc`).
    #[serde(default)]
    pub auth_mode: AuthMode,
    /// Issuer, audience and JWKS URL for `auth_mode = "oidc"`
    /// (env `<PREFIX>_AUTH_OIDC__ISSUER`, `…__AUDIENCE`, `…__JWKS_URL`).
    #[serde(default)]
    pub auth_oidc: Option<OidcConfig>,
    /// Per-user and per-address limits on `/v1` (env
    /// `<PREFIX>_RATE_LIMIT__PER_USER_RPS`, …); off unless set.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

impl AccessConfig {
    pub fn problems(&self, p: &mut Problems) {
        p.auth(self.auth_mode, self.auth_oidc.as_ref());
        p.rate_limit(&self.rate_limit);
    }

    /// The access guard these settings describe.
    pub fn guard(&self) -> anyhow::Result<crate::rate_limit::AccessGuard> {
        crate::rate_limit::AccessGuard::new(
            crate::auth::authenticator(self.auth_mode, self.auth_oidc.as_ref())?,
            &self.rate_limit,
        )
    }
}

/// The key and message of an invalid value in one of the shared blocks.
///
/// serde deserializes a flattened struct from a buffered copy of the map, so
/// an error inside it is reported at the root (`.`); deserializing each block
/// on its own finds the key again. Missing keys are not looked for here: the
/// root error already names them.
pub(crate) fn locate(root: &toml::Value) -> Option<(String, String)> {
    #[derive(Debug, Clone)]
    struct Any;
    impl Defaults for Any {
        const LISTEN_ADDR: &'static str = "";
    }
    fn try_block<T: serde::de::DeserializeOwned>(root: &toml::Value) -> Option<(String, String)> {
        let e = serde_path_to_error::deserialize::<_, T>(root.clone()).err()?;
        let key = e.path().to_string();
        (key != ".").then(|| (key, e.into_inner().to_string()))
    }
    try_block::<ListenConfig<Any>>(root)
        .or_else(|| try_block::<PlatformConfig<Any>>(root))
        .or_else(|| try_block::<AccessConfig>(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct Svc;
    impl Defaults for Svc {
        const LISTEN_ADDR: &'static str = "127.0.0.1:9999";
        const DB_MAX_CONNECTIONS: u32 = 4;
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(flatten)]
        listen: ListenConfig<Svc>,
        #[serde(flatten)]
        platform: PlatformConfig<Svc>,
        #[serde(flatten)]
        access: AccessConfig,
        #[serde(default)]
        own: u32,
    }

    /// `Cfg` from the two required keys and `extra`.
    fn load(extra: &[(&str, &str)]) -> Result<Cfg, crate::config::ConfigError> {
        let required = [
            ("SVC_DATABASE_URL", "postgres://h/db"),
            ("SVC_KAFKA_BROKERS", "k:9092"),
        ];
        crate::config::load_from(
            "SVC",
            None,
            required
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    /// The message of loading `extra`, which must fail.
    fn error(extra: &[(&str, &str)]) -> String {
        match load(extra) {
            Ok(c) => panic!("{extra:?} loaded: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn flattened_keys_keep_their_env_names_and_the_service_defaults() -> anyhow::Result<()> {
        let c = load(&[
            ("SVC_OWN", "3"),
            ("SVC_AUTH_MODE", "dev"),
            ("SVC_RATE_LIMIT__PER_USER_RPS", "5"),
        ])?;
        assert_eq!(c.listen.listen_addr, "127.0.0.1:9999");
        assert_eq!(c.platform.db_max_connections, 4);
        assert_eq!(c.platform.version, "stable");
        assert_eq!(c.platform.database_url, "postgres://h/db");
        assert_eq!(c.access.auth_mode, AuthMode::Dev);
        assert_eq!(c.access.rate_limit.per_user_rps, 5.0);
        assert_eq!(c.own, 3);
        let c = load(&[
            ("SVC_LISTEN_ADDR", "0.0.0.0:1"),
            ("SVC_DB_MAX_CONNECTIONS", "7"),
            ("SVC_TLS_CERT_FILE", "/c.pem"),
        ])?;
        assert_eq!(c.listen.listen_addr, "0.0.0.0:1");
        assert_eq!(c.platform.db_max_connections, 7);
        assert_eq!(
            c.listen.tls_cert_file.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        Ok(())
    }

    #[test]
    fn fetch_wait_defaults_to_the_bus_default_and_a_zero_wait_is_a_problem() -> anyhow::Result<()> {
        let c = load(&[])?;
        assert_eq!(
            c.platform.kafka_fetch_wait_max_ms,
            bus::settings::DEFAULT_FETCH_WAIT_MAX_MS
        );
        let c = load(&[("SVC_KAFKA_FETCH_WAIT_MAX_MS", "500")])?;
        assert_eq!(c.platform.kafka_fetch_wait_max_ms, 500);
        let mut p = Problems::new("svc");
        c.platform.problems(&mut p);
        assert!(p.is_empty());
        let c = load(&[("SVC_KAFKA_FETCH_WAIT_MAX_MS", "0")])?;
        let mut p = Problems::new("svc");
        c.platform.problems(&mut p);
        let e = p.into_result().expect_err("0 ms").to_string();
        assert!(
            e.contains("SVC_KAFKA_FETCH_WAIT_MAX_MS: must be between 1"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn unknown_and_missing_keys_are_still_errors_naming_the_key() {
        let e = error(&[("SVC_NOPE", "1")]);
        assert!(e.starts_with("config key 'nope'"), "{e}");
        let missing: Result<Cfg, _> = crate::config::load_from(
            "SVC",
            None,
            [("SVC_KAFKA_BROKERS".to_string(), "k:9092".to_string())],
        );
        let e = missing.map(|_| ()).expect_err("missing key").to_string();
        assert!(e.contains("SVC_DATABASE_URL"), "{e}");
        // A bad value is named by its key whether it is in a flattened
        // block, nested in one, or the service's own.
        for (var, key) in [
            ("SVC_DB_MAX_CONNECTIONS", "db_max_connections"),
            ("SVC_OWN", "own"),
            ("SVC_RATE_LIMIT__PER_USER_RPS", "rate_limit.per_user_rps"),
        ] {
            let e = error(&[(var, "lots")]);
            assert!(e.starts_with(&format!("config key '{key}'")), "{e}");
        }
    }
}
