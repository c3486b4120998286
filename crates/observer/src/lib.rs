//! The observer: watches the platform and acts on it.
//!
//! - `lag` + `status`: consumer-group lag from the broker (batched calls),
//!   exact lag in seconds, Burrow-style status with an explicit IDLE, catch-up ETA;
//! - `prom` + `slos`: native SLO evaluation against Prometheus, mirroring the
//!   generated recording rules;
//! - `alerts`: paging through Alertmanager with the rules' labels, and a
//!   separate monitoring alert when Prometheus is unreachable;
//! - `page`, `metrics`, `report`: the status page, `/metrics`, the daily report.
//!
//! Lib + thin `main.rs`: `Application::build(config)` binds (port 0 in
//! tests), `port()`, `run(shutdown)`.

pub mod alerts;
pub mod canary_api;
pub mod config;
pub mod lag;
pub mod metrics;
pub mod page;
pub mod prom;
pub mod report;
pub mod rollouts;
pub mod slos;
pub mod status;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use service_kit::tls::ServiceListener;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = contracts::metrics::services::OBSERVER;

/// What the lag tailer last saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LagState {
    #[serde(flatten)]
    pub snapshot: status::LagSnapshot,
    /// Error of the last attempt, if it failed (the snapshot is then the last good one).
    pub error: Option<String>,
    pub snapshot_duration_seconds: Option<f64>,
    /// False until the first snapshot succeeded (or when no broker is configured).
    pub enabled: bool,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub slos: Arc<Vec<slo::Slo>>,
    pub prom: Option<prom::PromClient>,
    pub lag: Arc<RwLock<LagState>>,
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
    listener: ServiceListener,
    state: AppState,
    collector: Option<lag::Collector>,
    audit: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
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
        let lag = Arc::new(RwLock::new(LagState::default()));
        let rollouts = match (&config.canary_dir, &config.database_url, &prom) {
            (Some(dir), Some(url), Some(p)) => Some(Arc::new(
                rollouts::Controller::new(dir.clone(), url, p.clone(), lag.clone())
                    .await?
                    .with_driver_breaker(breakers.rollout_driver.clone()),
            )),
            _ => None,
        };
        let (auditor, audit) = match &rollouts {
            Some(c) => {
                todo_store::migrate::run(c.pool(), todo_store::migrate::Component::Audit)
                    .await
                    .context("migrating the audit trail")?;
                let stop = CancellationToken::new();
                let (sink, task) = todo_store::audit::spawn(c.pool().clone(), stop.clone());
                (
                    Some(service_kit::audit::Auditor {
                        service: SERVICE.into(),
                        sink: Arc::new(sink),
                    }),
                    Some((stop, task)),
                )
            }
            None => (None, None),
        };
        let listener = ServiceListener::bind(&config.listen.listen_addr, config.tls()?).await?;
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
        Ok(Self {
            listener,
            state,
            collector,
            audit,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let port = self.port();
        let mut tasks = Vec::new();
        if let Some(c) = self.collector {
            tasks.push(tokio::spawn(lag_loop(
                self.state.clone(),
                c,
                shutdown.clone(),
            )));
        }
        if self.state.prom.is_some() && !self.state.slos.is_empty() {
            tasks.push(tokio::spawn(slo_loop(self.state.clone(), shutdown.clone())));
            tasks.push(tokio::spawn(report_loop(
                self.state.clone(),
                shutdown.clone(),
            )));
        }
        if let Some(c) = self.state.rollouts.clone() {
            tasks.push(tokio::spawn(c.run(shutdown.clone())));
        }
        tracing::info!(port, slos = self.state.slos.len(), "observer listening");
        let grace = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        self.listener
            .serve(router(self.state), shutdown.clone())
            .await?;
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

async fn lag_loop(state: AppState, collector: lag::Collector, shutdown: CancellationToken) {
    let cfg = state.config.clone();
    let collector = Arc::new(Mutex::new(collector));
    let mut engine = status::Engine::new(cfg.lag_status_window_ms as i64);
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.lag_poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = collector.clone();
        let started = Instant::now();
        let res = tokio::task::spawn_blocking(move || match c.lock() {
            Ok(mut c) => c.observe(),
            Err(_) => Err(anyhow::anyhow!(
                "lag collector poisoned by an earlier panic"
            )),
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        let mut st = state.lag.write().await;
        st.enabled = true;
        match res {
            Ok(Ok(obs)) => {
                st.snapshot = engine.apply(&obs);
                st.error = None;
                st.snapshot_duration_seconds = Some(elapsed);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "lag snapshot failed");
                st.error = Some(format!("{e:#}"));
            }
            Err(e) => {
                tracing::error!(error = %e, "lag snapshot task failed");
                st.error = Some(e.to_string());
            }
        }
    }
}

fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

async fn slo_loop(state: AppState, shutdown: CancellationToken) {
    let Some(client) = state.prom.clone() else {
        return;
    };
    let interval = Duration::from_millis(state.config.slo_eval_interval_ms);
    // Firing alerts stay valid for four intervals (at least a minute) without a
    // refresh, like Prometheus' own `resend_delay` × 4 rule.
    let valid_for = (interval * 4).max(Duration::from_secs(60));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let snap = slos::evaluate_all(&client, &state.slos, now_secs()).await;
        if snap.backend.status != "up" {
            tracing::warn!(error = ?snap.backend.error, "Prometheus unreachable; SLO evaluation paused");
        }
        state
            .pager
            .lock()
            .await
            .reconcile(&snap, &state.slos, valid_for)
            .await;
        let up = snap.backend.status == "up";
        *state.slo_snapshot.write().await = Some(snap);
        if up {
            refresh_freshness(&state, &client).await;
        }
    }
}

/// Event-time freshness per group: p99 over 5 minutes of the projection's
/// freshness histogram, for groups named like the service that reports it.
async fn refresh_freshness(state: &AppState, client: &prom::PromClient) {
    let groups: Vec<String> = state
        .lag
        .read()
        .await
        .snapshot
        .groups
        .iter()
        .map(|g| g.group.clone())
        .collect();
    let mut out = std::collections::HashMap::new();
    for g in groups {
        let q = format!(
            "histogram_quantile(0.99, sum by (le) (rate({}{{{}=\"{}\"}}[5m])))",
            contracts::metrics::PROJECTION_FRESHNESS.bucket(),
            contracts::metrics::labels::SERVICE,
            g.replace('\\', "\\\\").replace('"', "\\\"")
        );
        if let Ok(Some(v)) = client.instant(&q, now_secs()).await
            && v.is_finite()
        {
            out.insert(g, v);
        }
    }
    *state.freshness.write().await = out;
}

async fn report_loop(state: AppState, shutdown: CancellationToken) {
    let schedule = match report::parse_schedule(&state.config.report_schedule) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "daily report disabled");
            return;
        }
    };
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            return;
        };
        let wait = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let snap = state.slo_snapshot.read().await.clone();
        if let Some(snap) = snap {
            let r = report::build(&snap);
            tracing::info!(
                report = %serde_json::to_string(&r).unwrap_or_default(),
                "daily error-budget report"
            );
            *state.report.write().await = Some(r);
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/api/v1/lag", get(get_lag))
        .route("/api/v1/slos", get(get_slos))
        .route("/api/v1/alerts", get(get_alerts))
        .route("/api/v1/report", get(get_report))
        .route("/metrics", get(get_metrics))
        .merge(canary_api::routes(&state))
        .merge(service_kit::health::routes(
            service_kit::health::Readiness::new(),
        ))
        .method_not_allowed_fallback(service_kit::problem::method_not_allowed)
        .fallback(service_kit::problem::not_found_fallback)
        .layer(axum::Extension(state.guard.authenticator()))
        .with_state(state)
}

async fn status_page(State(s): State<AppState>) -> Html<String> {
    let lag = s.lag.read().await;
    let slo = s.slo_snapshot.read().await;
    let canaries = match &s.rollouts {
        Some(c) => Some(c.list().await),
        None => None,
    };
    Html(page::render(
        lag.enabled.then_some(&lag.snapshot),
        lag.error.as_deref(),
        slo.as_ref(),
        canaries.as_ref(),
    ))
}

async fn get_lag(State(s): State<AppState>) -> Response {
    let lag = s.lag.read().await;
    let mut v = serde_json::to_value(&*lag).unwrap_or_default();
    let fresh = s.freshness.read().await;
    if let Some(groups) = v.get_mut("groups").and_then(|g| g.as_array_mut()) {
        for g in groups {
            let f = g
                .get("group")
                .and_then(|n| n.as_str())
                .and_then(|n| fresh.get(n))
                .copied();
            g["projection_freshness_p99_seconds"] = serde_json::json!(f);
        }
    }
    axum::Json(v).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlosQuery {
    /// Evaluate now at this time (Unix seconds) instead of returning the
    /// latest periodic evaluation. No alert is sent for it.
    at: Option<f64>,
}

fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        })
        .to_string(),
    )
        .into_response()
}

async fn get_slos(
    State(s): State<AppState>,
    q: Result<Query<SlosQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid query string",
                e.body_text(),
            );
        }
    };
    let Some(client) = s.prom.clone() else {
        return problem(
            StatusCode::NOT_FOUND,
            "SLO evaluation is not configured",
            "set slo_dir and prometheus_url".into(),
        );
    };
    match q.at {
        Some(at) if !at.is_finite() || at <= 0.0 => problem(
            StatusCode::BAD_REQUEST,
            "invalid query string",
            "at: must be a positive Unix time in seconds".into(),
        ),
        Some(at) => axum::Json(slos::evaluate_all(&client, &s.slos, at).await).into_response(),
        None => match &*s.slo_snapshot.read().await {
            Some(snap) => axum::Json(snap).into_response(),
            None => {
                axum::Json(slos::evaluate_all(&client, &s.slos, now_secs()).await).into_response()
            }
        },
    }
}

async fn get_alerts(State(s): State<AppState>) -> Response {
    axum::Json(s.pager.lock().await.active()).into_response()
}

async fn get_report(State(s): State<AppState>) -> Response {
    if let Some(r) = &*s.report.read().await {
        return axum::Json(r).into_response();
    }
    match &*s.slo_snapshot.read().await {
        Some(snap) => axum::Json(report::build(snap)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no SLO evaluation yet",
            "the first evaluation has not finished (or SLO evaluation is not configured)".into(),
        ),
    }
}

async fn get_metrics(State(s): State<AppState>) -> Response {
    let lag = s.lag.read().await;
    let slo = s.slo_snapshot.read().await;
    let mut body = metrics::render(
        lag.enabled.then_some(&lag.snapshot),
        lag.snapshot_duration_seconds,
        slo.as_ref(),
    );
    if let Some(c) = &s.rollouts {
        body.push_str(&metrics::render_canaries(&c.gauges().await, &c.metrics()));
    }
    body.push_str(&metrics::render_breakers(&s.breakers.all()));
    body.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
