use serde::Deserialize;
use service_kit::common::{AccessConfig, ListenConfig, PlatformConfig};

/// Command service configuration: defaults → `--config` TOML file → `COMMAND_*`
/// environment variables (e.g. `COMMAND_DATABASE_URL`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `listen_addr`, `tls_cert_file`, `tls_key_file` (env
    /// `COMMAND_LISTEN_ADDR`, …).
    #[serde(flatten)]
    pub listen: ListenConfig<Defaults>,
    /// `database_url`, `db_max_connections`, `kafka_brokers`, `version`.
    #[serde(flatten)]
    pub platform: PlatformConfig<Defaults>,
    /// `auth_mode`, `auth_oidc`, `rate_limit` (env `COMMAND_AUTH_MODE`,
    /// `COMMAND_AUTH_OIDC__ISSUER`, `COMMAND_RATE_LIMIT__PER_USER_RPS`, …).
    #[serde(flatten)]
    pub access: AccessConfig,
    /// Run the outbox relay in this process (one replica wins a Postgres
    /// advisory lock and publishes; the others stand by).
    #[serde(default = "defaults::yes")]
    pub relay_enabled: bool,
    #[serde(default = "defaults::relay_batch_size")]
    pub relay_batch_size: i64,
    #[serde(default = "defaults::linger_ms")]
    pub kafka_linger_ms: u32,
    #[serde(default = "defaults::delivery_timeout_ms")]
    pub kafka_delivery_timeout_ms: u32,
    /// Fault injection for demos and canary tests: share of `/v1` requests
    /// answered with 500 (0.0–1.0). Off by default.
    #[serde(default)]
    pub fault_error_rate: f64,
    /// Fault injection: extra latency added to every `/v1` request.
    #[serde(default)]
    pub fault_latency_ms: u64,
    /// Fault injection: share of `/v1` requests whose handler panics (0.0–1.0),
    /// to prove panics become a 500 and reach error reporting.
    #[serde(default)]
    pub fault_panic_rate: f64,
    /// How long a graceful shutdown may take before in-flight work is dropped.
    #[serde(default = "defaults::shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// A `/v1` request taking longer is abandoned with 503 + `Retry-After`.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Load shedding: once this many outbox rows wait for the broker, writes
    /// get 503 with `Retry-After` until the relay catches up (checked every
    /// second). 0 disables shedding.
    #[serde(default = "defaults::shed_outbox_backlog")]
    pub shed_outbox_backlog: i64,
    /// Circuit breakers (Postgres for requests, the broker for the relay):
    /// consecutive failures that open one, and how long it stays open before
    /// a probe.
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    #[serde(default = "defaults::breaker_open_ms")]
    pub breaker_open_ms: u64,
    /// Group commit: tasks appending batches of concurrent writes (one
    /// statement per batch); 0 appends each request on its own. One (the
    /// default) makes the largest batches: writes that arrive during a
    /// commit wait for it and go in the next one, like a log writer. Two
    /// committed smaller batches side by side and cost more CPU per write
    /// (docs/PERFORMANCE.md, "One group-commit worker").
    #[serde(default = "defaults::group_commit_workers")]
    pub group_commit_workers: usize,
    /// Most writes in one group-commit batch.
    #[serde(default = "defaults::group_commit_max_batch")]
    pub group_commit_max_batch: usize,
}

/// The command service's defaults of the shared keys.
#[derive(Debug, Clone)]
pub struct Defaults;

impl service_kit::common::Defaults for Defaults {
    const LISTEN_ADDR: &'static str = "127.0.0.1:8081";
}

mod defaults {
    pub fn yes() -> bool {
        true
    }
    pub fn relay_batch_size() -> i64 {
        500
    }
    pub fn linger_ms() -> u32 {
        // The relay hands the broker a whole outbox batch at once and waits
        // for its acknowledgements, so the batch is already formed: a longer
        // linger mostly delays it (201 → applied p50 14 → 6 ms at 200
        // writes/s going from 5 to 1). It did batch the relay's cycles at
        // saturation: the broker's CPU per event is about a third higher
        // at 1 (docs/PERFORMANCE.md).
        1
    }
    pub fn delivery_timeout_ms() -> u32 {
        30_000
    }
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
    pub fn shutdown_timeout_secs() -> u64 {
        20
    }
    pub fn shed_outbox_backlog() -> i64 {
        50_000
    }
    pub fn group_commit_workers() -> usize {
        1
    }
    pub fn group_commit_max_batch() -> usize {
        64
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_open_ms() -> u64 {
        2_000
    }
}

impl service_kit::check::Checked for Config {
    const PREFIX: &'static str = "COMMAND";

    fn problems(&self, p: &mut service_kit::check::Problems) {
        self.listen.problems(p);
        self.platform.problems(p);
        self.access.problems(p);
        for (key, v) in [
            ("fault_error_rate", self.fault_error_rate),
            ("fault_panic_rate", self.fault_panic_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.add(key, format!("must be between 0.0 and 1.0, got {v}"));
            }
        }
        if self.shed_outbox_backlog < 0 {
            p.add("shed_outbox_backlog", "must be 0 (off) or positive");
        }
        if self.breaker_failures == 0 {
            p.add("breaker_failures", "must be at least 1");
        }
        if self.relay_batch_size < 1 {
            p.add("relay_batch_size", "must be at least 1");
        }
        if self.request_timeout_ms == 0 {
            p.add("request_timeout_ms", "must be positive");
        }
    }

    fn summary(&self) -> String {
        format!(
            "{}, database, brokers {}, auth {:?}, version {}",
            self.listen.summary(),
            self.platform.kafka_brokers,
            self.access.auth_mode,
            self.platform.version
        )
    }
}
