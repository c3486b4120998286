//! Configuration checks that need no connection, shared by the four
//! binaries: start-up runs them (and refuses to start on any problem) and
//! `--check-config` prints them all and exits 0 or 1.
//!
//! Every problem names the environment variable an operator would set
//! (`COMMAND_DATABASE_URL: ...`), also when the value came from the TOML
//! file, because that is how every deployment configures the services.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use serde::de::DeserializeOwned;

/// The OTLP port of gRPC; this build exports OTLP/HTTP (4318).
pub const OTLP_GRPC_PORT: u16 = 4317;
/// The one `OTEL_EXPORTER_OTLP_PROTOCOL` the exporter speaks.
pub const OTLP_PROTOCOL: &str = "http/protobuf";
/// The `sslmode`s of a database URL (libpq's, all handled by the driver).
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// A service configuration that can check itself.
pub trait Checked: DeserializeOwned {
    /// The env prefix without `_` (`COMMAND`).
    const PREFIX: &'static str;
    /// Add every problem of this configuration to `p`.
    fn problems(&self, p: &mut Problems);
    /// One line on what was checked, for the OK summary.
    fn summary(&self) -> String;
}

/// "listen ADDR" with " (TLS)" when a certificate is configured: how every
/// service's `--check-config` summary starts.
pub fn listening(listen_addr: &str, tls_cert_file: Option<&Path>) -> String {
    let tls = if tls_cert_file.is_some() {
        " (TLS)"
    } else {
        ""
    };
    format!("listen {listen_addr}{tls}")
}

/// Collected problems, each `VARIABLE: message`.
#[derive(Debug, Default)]
pub struct Problems {
    prefix: String,
    list: Vec<String>,
}

impl Problems {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_ascii_uppercase(),
            list: Vec::new(),
        }
    }

    /// The environment variable of a config key: `rate_limit.per_ip_rps` →
    /// `COMMAND_RATE_LIMIT__PER_IP_RPS`.
    pub fn var(&self, key: &str) -> String {
        format!(
            "{}_{}",
            self.prefix,
            key.replace('.', "__").to_ascii_uppercase()
        )
    }

    /// A problem with config key `key`.
    pub fn add(&mut self, key: &str, message: impl Display) {
        let var = self.var(key);
        self.add_var(&var, message);
    }

    /// A problem with a variable that is not a config key (`OTEL_*`).
    pub fn add_var(&mut self, var: &str, message: impl Display) {
        self.list.push(format!("{var}: {message}"));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn list(&self) -> &[String] {
        &self.list
    }

    /// `Ok` without problems, otherwise an error listing them all, one a line.
    pub fn into_result(self) -> anyhow::Result<()> {
        if self.list.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} configuration problem(s):\n  {}",
            self.list.len(),
            self.list.join("\n  ")
        )
    }

    /// `host:port` to listen on.
    pub fn listen_addr(&mut self, key: &str, value: &str) {
        if let Err(e) = host_port(value, true) {
            self.add(key, format!("'{value}': {e}"));
        }
    }

    /// A comma-separated broker list of `host:port`; empty only if `allow_empty`.
    pub fn brokers(&mut self, key: &str, value: &str, allow_empty: bool) {
        if value.trim().is_empty() {
            if !allow_empty {
                self.add(key, "is empty: want host:port[,host:port…]");
            }
            return;
        }
        for b in value.split(',') {
            if let Err(e) = host_port(b.trim(), false) {
                self.add(key, format!("broker '{}': {e}", b.trim()));
            }
        }
    }

    /// An absolute http(s) URL with a host.
    pub fn http_url(&mut self, key: &str, value: &str) {
        if let Err(e) = http_url(value) {
            self.add(key, e);
        }
    }

    /// A PostgreSQL URL: scheme, host, port, `sslmode` this build supports,
    /// and the TLS files it names (`sslrootcert`, `sslcert`, `sslkey`) readable.
    pub fn database_url(&mut self, key: &str, value: &str) {
        for e in database_url(value) {
            self.add(key, e);
        }
    }

    /// The listener's certificate and key: both or neither, readable, a
    /// usable pair.
    pub fn tls_files(&mut self, cert: Option<&Path>, key: Option<&Path>) {
        let mut readable = true;
        for (k, other, path, other_path) in [
            ("tls_cert_file", "tls_key_file", cert, key),
            ("tls_key_file", "tls_cert_file", key, cert),
        ] {
            match (path, other_path) {
                (Some(p), _) => {
                    if let Err(e) = std::fs::read(p) {
                        self.add(k, format!("cannot read {}: {e}", p.display()));
                        readable = false;
                    }
                }
                (None, Some(_)) => {
                    let var = self.var(other);
                    self.add(k, format!("is required when {var} is set"));
                    readable = false;
                }
                (None, None) => {}
            }
        }
        if readable && let Err(e) = crate::tls::acceptor(&self.prefix, cert, key) {
            self.add("tls_cert_file", format!("{e:#}"));
        }
    }

    /// `auth_mode` and `auth_oidc` (every OIDC problem, the JWKS URL parsed).
    pub fn auth(&mut self, mode: crate::auth::AuthMode, oidc: Option<&crate::auth::OidcConfig>) {
        match (mode, oidc) {
            (crate::auth::AuthMode::Oidc, None) => {
                let (i, a, j) = (
                    self.var("auth_oidc.issuer"),
                    self.var("auth_oidc.audience"),
                    self.var("auth_oidc.jwks_url"),
                );
                self.add(
                    "auth_mode",
                    format!("oidc needs the auth_oidc table: set {i}, {a} and {j}"),
                );
            }
            (_, Some(c)) => {
                for (k, m) in c.problems() {
                    self.add(&format!("auth_oidc.{k}"), m);
                }
            }
            _ => {}
        }
    }

    /// Per-user and per-address rate limits.
    pub fn rate_limit(&mut self, rl: &crate::rate_limit::RateLimitConfig) {
        for (k, m) in rl.problems() {
            self.add(&format!("rate_limit.{k}"), m);
        }
    }

    /// The process-wide variables every service reads: the OTLP exporter's
    /// endpoint and protocol, the sampler, Loki's URL.
    pub fn telemetry_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            let Some(v) = get(var) else { continue };
            match http_url(&v) {
                Err(e) => self.add_var(var, e),
                Ok(url) if url.port_or_known_default() == Some(OTLP_GRPC_PORT) => self.add_var(
                    var,
                    format!(
                        "'{v}' is the OTLP/gRPC port {OTLP_GRPC_PORT}; this build exports OTLP/HTTP (protobuf), which collectors take on 4318"
                    ),
                ),
                Ok(_) => {}
            }
        }
        for var in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Some(v) = get(var)
                && v.trim() != OTLP_PROTOCOL
            {
                self.add_var(
                    var,
                    format!("'{v}': this build exports only {OTLP_PROTOCOL} (OTLP/HTTP)"),
                );
            }
        }
        if let Err(e) = telemetry::subscriber::sampler_from(env) {
            self.list.push(e);
        }
        if let Some(v) = get("LOKI_URL")
            && let Err(e) = http_url(&v)
        {
            self.add_var("LOKI_URL", e);
        }
    }
}

/// `host:port`; port 0 (the system picks) only where we listen.
fn host_port(value: &str, allow_zero: bool) -> Result<(), String> {
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("want host:port".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("no host (want host:port)".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 || allow_zero => Ok(()),
        Ok(_) => Err("port 0".into()),
        Err(_) => Err(format!("port '{port}' is not a number from 1 to 65535")),
    }
}

fn http_url(value: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("'{value}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{value}' is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{value}' has no host"));
    }
    Ok(url)
}

fn database_url(value: &str) -> Vec<String> {
    let url = match reqwest::Url::parse(value) {
        Ok(u) => u,
        // The URL may hold a password: say what is wrong, not what it is.
        Err(e) => return vec![format!("not a URL: {e}")],
    };
    let mut out = Vec::new();
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        out.push(format!(
            "scheme '{}' is not postgres:// or postgresql://",
            url.scheme()
        ));
    }
    let host_param = url.query_pairs().any(|(k, _)| k == "host");
    if url.host_str().is_none_or(str::is_empty) && !host_param {
        out.push("has no host".into());
    }
    if url.path().trim_start_matches('/').is_empty() {
        out.push("names no database (postgres://user:password@host:port/DATABASE)".into());
    }
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" if !SSL_MODES.contains(&v.as_ref()) => out.push(format!(
                "sslmode '{v}' is not one of {}",
                SSL_MODES.join(", ")
            )),
            "sslrootcert" | "sslcert" | "sslkey" => {
                if let Err(e) = std::fs::read(v.as_ref()) {
                    out.push(format!("{k}: cannot read {v}: {e}"));
                }
            }
            _ => {}
        }
    }
    out
}

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Every problem of `C` loaded from `file` and the process environment,
/// exactly as start-up loads it, plus the telemetry variables.
fn collect<C: Checked>(file: Option<&Path>) -> (Option<C>, Problems) {
    let mut p = Problems::new(C::PREFIX);
    let config = match crate::config::load::<C>(C::PREFIX, file) {
        Ok(c) => {
            c.problems(&mut p);
            Some(c)
        }
        Err(e) => {
            p.list.push(e.to_string());
            None
        }
    };
    p.telemetry_env(&process_env);
    (config, p)
}

/// Start-up: the configuration, or an error listing every problem.
pub fn load<C: Checked>(file: Option<&Path>) -> anyhow::Result<C> {
    let (config, problems) = collect::<C>(file);
    problems.into_result()?;
    config.ok_or_else(|| anyhow::anyhow!("configuration did not load"))
}

/// `--check-config`: print every problem (stderr) and exit 1, or a one-line
/// summary (stdout) and exit 0.
pub fn report<C: Checked>(service: &str, file: Option<&Path>) -> ExitCode {
    let (config, problems) = collect::<C>(file);
    match config {
        Some(c) if problems.is_empty() => {
            println!("{service}: configuration OK: {}", c.summary());
            ExitCode::SUCCESS
        }
        _ => {
            for line in problems.list() {
                eprintln!("{service}: {line}");
            }
            eprintln!(
                "{service}: configuration has {} problem(s)",
                problems.list().len()
            );
            ExitCode::FAILURE
        }
    }
}

/// An environment of these pairs, for tests of what reads one.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_env as env;

    fn telemetry(pairs: &[(&str, &str)]) -> Vec<String> {
        let mut p = Problems::new("APP");
        p.telemetry_env(&env(pairs));
        p.list
    }

    #[test]
    fn the_otlp_grpc_port_and_protocol_are_errors_naming_the_variable() {
        assert!(telemetry(&[]).is_empty());
        assert!(telemetry(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4318")]).is_empty());
        let got = telemetry(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4317")]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "OTEL_EXPORTER_OTLP_ENDPOINT: 'http://tempo:4317' is the OTLP/gRPC port"
            ),
            "{got:?}"
        );
        let got = telemetry(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "tempo:4318")]);
        assert!(
            got[0].starts_with("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "),
            "{got:?}"
        );
        assert!(telemetry(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).is_empty());
        let got = telemetry(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert!(
            got[0].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc'"),
            "{got:?}"
        );
        let got = telemetry(&[("LOKI_URL", "loki:3100")]);
        assert!(got[0].starts_with("LOKI_URL: "), "{got:?}");
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let got = telemetry(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ]);
        let vars: Vec<&str> = got.iter().filter_map(|l| l.split(':').next()).collect();
        assert_eq!(
            vars,
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "OTEL_TRACES_SAMPLER"
            ]
        );
        let mut p = Problems::new("app");
        p.add_var("A", "one");
        p.add("rate_limit.per_ip_rps", "two");
        let err = p.into_result().expect_err("two problems").to_string();
        assert_eq!(
            err,
            "2 configuration problem(s):\n  A: one\n  APP_RATE_LIMIT__PER_IP_RPS: two"
        );
    }

    fn db(url: &str) -> Vec<String> {
        let mut p = Problems::new("APP");
        p.database_url("database_url", url);
        p.list
    }

    #[test]
    fn database_urls_scheme_host_database_sslmode_and_files() {
        assert!(db("postgres://todo:pw@db:25060/todo?sslmode=require").is_empty());
        assert!(db("postgresql://todo@127.0.0.1:5432/todo").is_empty());
        for mode in SSL_MODES {
            assert!(
                db(&format!("postgres://h/todo?sslmode={mode}")).is_empty(),
                "{mode}"
            );
        }
        let got = db("postgres://h/todo?sslmode=required");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("APP_DATABASE_URL: sslmode 'required'"),
            "{got:?}"
        );
        let got = db("mysql://h:99999/todo");
        assert!(got[0].starts_with("APP_DATABASE_URL: not a URL"), "{got:?}");
        let got = db("mysql://h/");
        assert_eq!(got.len(), 2, "{got:?}");
        let got = db("postgres://h/todo?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("sslrootcert: cannot read /nonexistent/ca.pem"),
            "{got:?}"
        );
        // A password is never echoed.
        assert!(!db("postgres://u:s3cret@h:x/todo")[0].contains("s3cret"));
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").expect("write");
        assert!(db(&format!("postgres://h/todo?sslrootcert={}", ca.display())).is_empty());
    }

    #[test]
    fn brokers_listen_addresses_and_urls() {
        let mut p = Problems::new("APP");
        p.brokers("kafka_brokers", "k1:9092, k2:9092", false);
        p.listen_addr("listen_addr", "0.0.0.0:8080");
        p.http_url("prometheus_url", "http://prometheus:9090");
        p.brokers("lag_brokers", "", true);
        assert!(p.list.is_empty(), "{:?}", p.list);
        p.brokers("kafka_brokers", "k1:9092,k2,k3:x", false);
        p.brokers("other_brokers", "", false);
        p.listen_addr("listen_addr", "8080");
        p.http_url("prometheus_url", "prometheus:9090");
        p.http_url("alertmanager_url", "ftp://am");
        let vars: Vec<&str> = p.list.iter().filter_map(|l| l.split(':').next()).collect();
        assert_eq!(
            vars,
            [
                "APP_KAFKA_BROKERS",
                "APP_KAFKA_BROKERS",
                "APP_OTHER_BROKERS",
                "APP_LISTEN_ADDR",
                "APP_PROMETHEUS_URL",
                "APP_ALERTMANAGER_URL"
            ],
            "{:?}",
            p.list
        );
    }

    #[test]
    fn tls_files_exclude_each_other_and_must_be_readable() {
        let mut p = Problems::new("APP");
        p.tls_files(None, None);
        assert!(p.list.is_empty());
        p.tls_files(Some(Path::new("/nonexistent/cert.pem")), None);
        assert_eq!(p.list.len(), 2, "{:?}", p.list);
        assert!(p.list[0].starts_with("APP_TLS_CERT_FILE: cannot read /nonexistent/cert.pem"));
        assert!(p.list[1].starts_with("APP_TLS_KEY_FILE: is required when APP_TLS_CERT_FILE"));
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").expect("write");
        let mut p = Problems::new("APP");
        p.tls_files(Some(&junk), Some(&junk));
        assert_eq!(p.list.len(), 1, "{:?}", p.list);
        assert!(p.list[0].starts_with("APP_TLS_CERT_FILE: "), "{:?}", p.list);
    }

    #[test]
    fn oidc_problems_are_all_named() {
        let mut p = Problems::new("APP");
        p.auth(crate::auth::AuthMode::Oidc, None);
        assert!(
            p.list[0].starts_with("APP_AUTH_MODE: oidc needs"),
            "{:?}",
            p.list
        );
        let cfg: crate::auth::OidcConfig = serde_json::from_value(serde_json::json!({
            "issuer": "", "audience": "", "jwks_url": "not a url"
        }))
        .expect("deserialises");
        let mut p = Problems::new("APP");
        p.auth(crate::auth::AuthMode::Oidc, Some(&cfg));
        let vars: Vec<&str> = p.list.iter().filter_map(|l| l.split(':').next()).collect();
        assert_eq!(
            vars,
            [
                "APP_AUTH_OIDC__ISSUER",
                "APP_AUTH_OIDC__AUDIENCE",
                "APP_AUTH_OIDC__JWKS_URL"
            ]
        );
    }
}
