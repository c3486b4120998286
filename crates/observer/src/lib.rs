//! The observer: watches the platform and acts on it.
//!
//! - `lag` + `status`: consumer-group lag from the broker (batched calls),
//!   exact lag in seconds, Burrow-style status with an explicit IDLE, catch-up ETA;
//! - `prom` + `slos`: native SLO evaluation against Prometheus, mirroring the
//!   generated recording rules;
//! - `alerts`: paging through Alertmanager with the rules' labels, and a
//!   separate monitoring alert when Prometheus is unreachable;
//! - `page`, `metrics`, `report`: the status page, `/metrics`, the daily report;
//! - `rollouts` + `canary_api`: the canary controller and its API;
//! - `api`: the routes, served by service-kit's `ServerBuilder` (its
//!   middleware, problem+json, health, `/metrics` and `/openapi.json`).
//!
//! Each part gets what it reads passed in (`tailer::SharedLag`, the SLO
//! snapshot, the pager), never the whole `AppState`; the request and
//! response types of `/api/v1/*` are the `observer-api` crate's.
//!
//! Lib + thin `main.rs`: `Application::build(config)` binds (port 0 in
//! tests), `port()`, `run(shutdown)`.

pub mod alerts;
pub mod api;
pub mod canary_api;
pub mod config;
pub mod kafka;
pub mod lag;
pub mod metrics;
pub mod page;
pub mod prom;
pub mod report;
pub mod rollouts;
pub mod slos;
pub mod status;
pub mod tailer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use service_kit::check::Checked as _;
use service_kit::health::Readiness;
use service_kit::server::{Server, ServerBuilder};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = contracts::metrics::services::OBSERVER;

/// The `version` label of the observer's HTTP metrics: the observer is
/// not canaried, and its telemetry says `stable` too (`main.rs`).
pub const VERSION: &str = "stable";

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub slos: Arc<Vec<slo::Slo>>,
    pub prom: Option<prom::PromClient>,
    pub lag: tailer::SharedLag,
    pub slo_snapshot: Arc<RwLock<Option<slos::SloSnapshot>>>,
    pub pager: Arc<tokio::sync::Mutex<alerts::Pager>>,
    pub report: Arc<RwLock<Option<report::Report>>>,
    /// p99 event-time freshness (event → read model) per consumer group,
    /// from the projection's `projection_freshness_seconds` histogram where a
    /// service of the group's name reports one.
    pub freshness: Arc<RwLock<std::collections::HashMap<String, f64>>>,
    /// The canary controller, when `canary_dir` is set.
    pub rollouts: Option<Arc<rollouts::Controller>>,
    /// Authenticates callers of the mutating endpoints (no rate limits).
    pub guard: service_kit::rate_limit::AccessGuard,
    /// Canary actions land in the audit trail (with the decision log's Postgres).
    pub auditor: Option<service_kit::audit::Auditor>,
    pub breakers: Breakers,
}

/// Circuit breakers in front of the observer's dependencies (exported on
/// `/metrics`).
#[derive(Clone)]
pub struct Breakers {
    pub prometheus: Arc<telemetry::retry::CircuitBreaker>,
    pub alertmanager: Arc<telemetry::retry::CircuitBreaker>,
    /// HAProxy's runtime API or the Kubernetes API, whichever drives rollouts.
    pub rollout_driver: Arc<telemetry::retry::CircuitBreaker>,
}

impl Breakers {
    fn new() -> Self {
        let b = |d: &str| {
            Arc::new(telemetry::retry::CircuitBreaker::new(
                d,
                5,
                Duration::from_secs(5),
            ))
        };
        Self {
            prometheus: b("prometheus"),
            alertmanager: b("alertmanager"),
            rollout_driver: b("rollout_driver"),
        }
    }

    pub fn all(&self) -> [&telemetry::retry::CircuitBreaker; 3] {
        [&self.prometheus, &self.alertmanager, &self.rollout_driver]
    }
}

pub struct Application {
    server: Server,
    state: AppState,
    collector: Option<lag::Collector>,
    audit: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Application {
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }
}

impl service_kit::launcher::Service for Application {
    const NAME: &'static str = SERVICE;
    type Config = Config;

    fn version(_: &Config) -> String {
        "stable".to_string()
    }

    async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let slos = match &config.slo_dir {
            Some(dir) => slo::validate::load_dir(dir)
                .map_err(|e| anyhow::anyhow!("loading SLO specs from {}: {e}", dir.display()))?,
            None => Vec::new(),
        };
        let breakers = Breakers::new();
        let prom = match &config.prometheus_url {
            Some(u) => Some(
                prom::PromClient::new(
                    u,
                    Duration::from_millis(config.prometheus_timeout_ms),
                    config.prometheus_retries,
                )?
                .with_breaker(breakers.prometheus.clone()),
            ),
            None => None,
        };
        let collector = if config.kafka_brokers.is_empty() {
            None
        } else {
            Some(lag::Collector::new(&config).context("creating Kafka clients (kafka_brokers)")?)
        };
        let mut pager = alerts::Pager::new(
            config.alertmanager_url.clone(),
            config.external_url.clone(),
            config.monitoring_alert_severity.clone(),
        )?;
        pager.breaker = Some(breakers.alertmanager.clone());
        let guard = service_kit::rate_limit::AccessGuard::new(
            service_kit::auth::authenticator(config.auth_mode, config.auth_oidc.as_ref())?,
            &service_kit::rate_limit::RateLimitConfig::default(),
        )?;
        let lag = tailer::SharedLag::default();
        // The decision log's Postgres, shared by the audit trail: only with
        // the canary controller.
        let (rollouts, auditor, audit) = match (&config.canary_dir, &config.database_url, &prom) {
            (Some(dir), Some(url), Some(p)) => {
                let pool = todo_store::connect_and_migrate(
                    url,
                    4,
                    &[todo_store::migrate::Component::Audit],
                )
                .await?;
                let controller = rollouts::Controller::new(
                    dir.clone(),
                    pool.clone(),
                    p.clone(),
                    Arc::new(lag.clone()),
                )
                .await?
                .with_driver_breaker(breakers.rollout_driver.clone())
                .with_slos(Arc::new(slos.clone()));
                let stop = CancellationToken::new();
                let (sink, task) = todo_store::audit::spawn(pool, stop.clone());
                let auditor = service_kit::audit::Auditor {
                    service: SERVICE.into(),
                    sink: Arc::new(sink),
                };
                (
                    Some(Arc::new(controller)),
                    Some(auditor),
                    Some((stop, task)),
                )
            }
            _ => (None, None, None),
        };
        let mut server =
            ServerBuilder::bind(SERVICE, VERSION, Config::PREFIX, &config.listen).await?;
        let state = AppState {
            config: Arc::new(config),
            slos: Arc::new(slos),
            prom,
            lag,
            slo_snapshot: Arc::new(RwLock::new(None)),
            pager: Arc::new(tokio::sync::Mutex::new(pager)),
            report: Arc::new(RwLock::new(None)),
            freshness: Arc::new(RwLock::new(std::collections::HashMap::new())),
            rollouts,
            guard,
            auditor,
            breakers,
        };
        let live = metrics::Live {
            lag: state.lag.clone(),
            slo_snapshot: state.slo_snapshot.clone(),
            rollouts: state.rollouts.clone(),
            breakers: state.breakers.clone(),
        };
        server.live_metrics(move || {
            let live = live.clone();
            async move { live.render().await }
        });
        let server = server.build(
            api::router(state.clone()),
            Readiness::new(),
            Some(api::OPENAPI),
        );
        Ok(Self {
            server,
            state,
            collector,
            audit,
        })
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let port = self.port();
        let mut tasks = Vec::new();
        if let Some(c) = self.collector {
            let cfg = &self.state.config;
            tasks.push(tokio::spawn(tailer::run(
                self.state.lag.clone(),
                c,
                Duration::from_millis(cfg.lag_poll_interval_ms),
                cfg.lag_status_window_ms as i64,
                shutdown.clone(),
            )));
        }
        if let Some(client) = self.state.prom.clone()
            && !self.state.slos.is_empty()
        {
            let s = &self.state;
            let evaluator = slos::Evaluator {
                client,
                slos: s.slos.clone(),
                pager: s.pager.clone(),
                snapshot: s.slo_snapshot.clone(),
                freshness: s.freshness.clone(),
                lag: s.lag.clone(),
            };
            tasks.push(tokio::spawn(evaluator.run(
                Duration::from_millis(s.config.slo_eval_interval_ms),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(report::run(
                s.config.report_schedule.clone(),
                s.slo_snapshot.clone(),
                s.report.clone(),
                shutdown.clone(),
            )));
        }
        if let Some(c) = self.state.rollouts.clone() {
            tasks.push(tokio::spawn(c.run(shutdown.clone())));
        }
        tracing::info!(port, slos = self.state.slos.len(), "observer listening");
        let grace = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        self.server.serve(shutdown.clone()).await?;
        if let Some((stop, task)) = self.audit {
            stop.cancel();
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("audit writer did not flush within the shutdown timeout");
            }
        }
        for t in tasks {
            if tokio::time::timeout(grace, t).await.is_err() {
                tracing::warn!("a background task did not stop within the shutdown timeout");
            }
        }
        Ok(())
    }
}
