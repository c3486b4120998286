//! The canary controller: every analysis interval it reads the canary's and
//! stable's counters from Prometheus, runs `canary::analyze` on the
//! difference since the last interval, moves traffic through a
//! [`RolloutDriver`], and appends the decision to Postgres (with a trace span
//! and metrics). Operators act through [`Controller::act`] (HTTP API,
//! `todoctl canary …`), which takes effect at once, not at the next interval.
//!
//! - A rollout is keyed by (canary name, `canary_version`): deploying a new
//!   build means a new version in the spec, which starts a new rollout and
//!   supersedes an unfinished one.
//! - Counts are the exact difference of cumulative counters between two
//!   queries (no `rate()` extrapolation). While Prometheus is down the
//!   baseline stays, so the first interval after it returns covers the outage.
//! - A monitoring outage pauses (the analysis says so); it never rolls back,
//!   and paused time does not count against `max_duration_secs`.
//! - The in-memory state is the truth while running; every decision is
//!   persisted, and a restarted observer continues a rollout from Postgres.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary::{CanarySpec, ConsumerObservation, DriverSpec, Interval, Observation, State, Verdict};
use chrono::{DateTime, Utc};
use contracts::metrics as m;
use rollout::RolloutDriver;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{PgPool, Row as _};
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::LagState;
use crate::prom::{PromClient, PromError};

/// Who the controller's own decisions are attributed to.
pub const CONTROLLER_ACTOR: &str = "observer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Analysis runs each interval and moves through the steps.
    Progressing,
    /// Paused by an operator: weights held, no analysis until resumed.
    Paused,
    /// Passed the last step: the canary takes all traffic.
    Succeeded,
    /// The analysis rolled back: all traffic on stable.
    RolledBack,
    /// An operator aborted (`todoctl rollback`): all traffic on stable.
    Aborted,
    /// A newer canary version replaced this rollout before it finished.
    Superseded,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Progressing,
        Phase::Paused,
        Phase::Succeeded,
        Phase::RolledBack,
        Phase::Aborted,
        Phase::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Succeeded => "succeeded",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
            Phase::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .unwrap_or(Phase::Aborted)
    }

    pub fn finished(self) -> bool {
        !matches!(self, Phase::Progressing | Phase::Paused)
    }
}

/// One rollout as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    pub id: i64,
    pub canary: String,
    pub canary_version: String,
    pub stable_version: String,
    pub phase: Phase,
    /// Canary traffic percentage the driver was last told.
    pub weight: u32,
    /// Whether the driver accepted that weight (false: it is retried).
    pub weight_applied: bool,
    pub analysis: State,
    /// Time spent analysing (paused intervals excluded).
    pub analysed_secs: u64,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One entry of the decision log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub id: i64,
    pub rollout_id: i64,
    pub canary: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub verdict: String,
    pub reason: String,
    pub step_percent: i32,
    pub weight_after: i32,
    pub inputs: Value,
    pub observed: Value,
    pub statistic: Value,
    pub trace_id: Option<String>,
}

/// Cumulative counters of one side, as queried.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    requests: f64,
    errors: f64,
    fast: f64,
    consumed: f64,
    dead_lettered: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sample {
    stable: Counters,
    canary: Counters,
}

/// Increase of a counter; a decrease means the process restarted, and the
/// new value is what it counted since.
fn delta(cur: f64, prev: f64) -> u64 {
    let d = if cur < prev { cur } else { cur - prev };
    d.max(0.0).round() as u64
}

struct Loaded {
    spec: CanarySpec,
    file: PathBuf,
    driver: Arc<dyn RolloutDriver>,
}

struct Entry {
    rollout: Rollout,
    generation: u64,
    baseline: Option<Sample>,
    last_tick: Option<Instant>,
    last_decision: Option<DecisionRecord>,
    last_analysis: Option<DecisionRecord>,
}

#[derive(Default)]
struct Inner {
    specs: BTreeMap<String, Arc<Loaded>>,
    entries: BTreeMap<String, Entry>,
    spec_errors: Vec<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct RolloutMetrics {
    pub decisions: BTreeMap<(String, &'static str), u64>,
}

pub struct Controller {
    dir: PathBuf,
    pool: PgPool,
    prom: PromClient,
    lag: Arc<RwLock<LagState>>,
    inner: Mutex<Inner>,
    metrics: std::sync::Mutex<RolloutMetrics>,
    driver_breaker: Option<Arc<telemetry::retry::CircuitBreaker>>,
}

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("no canary named '{0}' (see GET /api/v1/canaries)")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the rollout driver failed: {0}")]
    Driver(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Promote,
    Pause,
    Resume,
    Abort,
    /// Abort and return all traffic to stable (the same thing, by its
    /// everyday name).
    Rollback,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "promote" => Some(Action::Promote),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "abort" => Some(Action::Abort),
            "rollback" => Some(Action::Rollback),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::Rollback => "rollback",
        }
    }
}

/// What the API shows for one canary.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryView {
    pub name: String,
    pub file: String,
    pub target: String,
    pub stable: String,
    pub canary: String,
    pub stable_version: String,
    pub canary_version: String,
    pub steps: Vec<u32>,
    pub interval_secs: u64,
    pub max_duration_secs: u64,
    pub analysis: canary::spec::AnalysisSpec,
    pub rollout: Option<Rollout>,
    /// The latest entry of the decision log (analysis or operator).
    pub last_decision: Option<DecisionRecord>,
    /// The latest analysis decision, with its values and statistic.
    pub last_analysis: Option<DecisionRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CanaryList {
    pub canaries: Vec<CanaryView>,
    /// Specs that failed to load (file, line and field), not acted on.
    pub spec_errors: Vec<String>,
}

fn driver_for(spec: &CanarySpec) -> anyhow::Result<Arc<dyn RolloutDriver>> {
    match &spec.driver {
        None => anyhow::bail!(
            "field 'driver': missing; the observer needs to know how to move traffic (haproxy or gateway_api)"
        ),
        Some(DriverSpec::Haproxy { runtime_api }) => {
            let (backend, stable) = spec.stable.split_once('/').unwrap_or_default();
            let canary = spec
                .canary
                .split_once('/')
                .map(|(_, s)| s)
                .unwrap_or_default();
            Ok(Arc::new(rollout::HaproxyDriver::new(
                runtime_api.clone(),
                backend,
                stable,
                canary,
            )))
        }
        Some(DriverSpec::GatewayApi {
            namespace,
            http_route,
            canary_deployment,
            canary_replicas,
            api_server,
        }) => {
            let rollout::gateway::ApiAccess {
                api_server,
                token,
                ca_pem,
            } = match api_server {
                Some(url) => rollout::gateway::ApiAccess {
                    api_server: url.clone(),
                    token: None,
                    ca_pem: None,
                },
                None => rollout::GatewayApiConfig::in_cluster_api()?,
            };
            Ok(Arc::new(rollout::GatewayApiDriver::new(
                rollout::GatewayApiConfig {
                    api_server,
                    token,
                    ca_pem,
                    namespace: namespace.clone(),
                    http_route: http_route.clone(),
                    stable_service: spec.stable.clone(),
                    canary_service: spec.canary.clone(),
                    canary_deployment: canary_deployment.clone(),
                    canary_replicas: *canary_replicas,
                    timeout: Duration::from_secs(5),
                },
            )?))
        }
    }
}

/// Load every `*.yaml` / `*.yml` in `dir`: good specs by name, and errors.
pub fn load_specs(dir: &Path) -> (Vec<(PathBuf, CanarySpec)>, Vec<String>) {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return (specs, errors);
        }
    };
    files.sort();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for f in files {
        let shown = f.display().to_string();
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{shown}: {e}"));
                continue;
            }
        };
        match CanarySpec::from_yaml(&shown, &text) {
            Ok(spec) => {
                if spec.driver.is_none() {
                    errors.push(format!(
                        "{shown}: field 'driver': missing (fix: add driver: {{haproxy: {{runtime_api: host:port}}}} or driver: {{gateway_api: …}})"
                    ));
                } else if let Some(other) = names.get(&spec.name) {
                    errors.push(format!(
                        "{shown}: field 'name': '{}' is also defined in {} (fix: give each canary its own name)",
                        spec.name,
                        other.display()
                    ));
                } else {
                    names.insert(spec.name.clone(), f.clone());
                    specs.push((f, spec));
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (specs, errors)
}

/// PromQL string literal content (inside double quotes).
fn promql_str(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A regex matching exactly `s` (RE2 metacharacters escaped).
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The queries one interval runs, shown in the decision log's inputs.
fn queries(spec: &CanarySpec) -> Vec<(&'static str, String)> {
    let versions = format!(
        "{}|{}",
        regex_literal(&spec.stable_version),
        regex_literal(&spec.canary_version)
    );
    let sel = format!(
        "{}=\"{}\",{}=~\"{}\",{}!~\"/healthz|/readyz|/metrics\"",
        m::labels::SERVICE,
        promql_str(&spec.target),
        m::labels::VERSION,
        promql_str(&versions),
        m::labels::ROUTE,
    );
    let mut q = vec![
        (
            "latency_buckets",
            format!(
                "sum by ({}, le) ({}{{{sel}}})",
                m::labels::VERSION,
                m::HTTP_SERVER_REQUEST_DURATION.bucket()
            ),
        ),
        (
            "errors",
            format!(
                "sum by ({}) ({}{{{sel},{}=\"5xx\"}})",
                m::labels::VERSION,
                m::HTTP_SERVER_REQUEST_DURATION.count(),
                m::labels::STATUS_CLASS
            ),
        ),
    ];
    if spec.analysis.consumer.is_some() {
        let csel = format!(
            "{}=\"{}\",{}=~\"{}\"",
            m::labels::SERVICE,
            promql_str(&spec.target),
            m::labels::VERSION,
            promql_str(&versions),
        );
        q.push((
            "consumed",
            format!(
                "sum by ({}) ({}{{{csel}}})",
                m::labels::VERSION,
                m::KAFKA_MESSAGES_CONSUMED.series()
            ),
        ));
        q.push((
            "dead_lettered",
            format!(
                "sum by ({}) ({}{{{csel}}})",
                m::labels::VERSION,
                m::DLQ_MESSAGES.series()
            ),
        ));
    }
    q
}

fn parse_le(s: &str) -> Option<f64> {
    if s == "+Inf" {
        Some(f64::INFINITY)
    } else {
        s.parse().ok()
    }
}

impl Controller {
    /// Connect, migrate, and load the rollouts in progress.
    pub async fn new(
        dir: PathBuf,
        database_url: &str,
        prom: PromClient,
        lag: Arc<RwLock<LagState>>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(database_url)
            .await
            .context("connecting to database_url (the canary decision log)")?;
        todo_store::migrate::run(&pool, todo_store::migrate::Component::Observer)
            .await
            .context("migrating the canary tables")?;
        Ok(Self {
            dir,
            pool,
            prom,
            lag,
            inner: Mutex::new(Inner::default()),
            metrics: std::sync::Mutex::new(RolloutMetrics::default()),
            driver_breaker: None,
        })
    }

    /// Guard driver calls with `b`: while it is open, weights are not sent
    /// (they are retried every tick, and an operator action answers 503).
    pub fn with_driver_breaker(mut self, b: Arc<telemetry::retry::CircuitBreaker>) -> Self {
        self.driver_breaker = Some(b);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn metrics(&self) -> RolloutMetrics {
        self.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Every 500 ms: reload the specs, start new rollouts, analyse those whose
    /// interval has passed, retry weights a driver refused.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let names = self.reload().await;
            for name in names {
                if let Err(e) = self.step(&name).await {
                    tracing::warn!(canary = %name, error = %format!("{e:#}"), "canary step failed");
                }
            }
        }
    }

    /// Re-read the spec directory; returns the names of the loaded canaries.
    async fn reload(&self) -> Vec<String> {
        let dir = self.dir.clone();
        let (specs, errors) = tokio::task::spawn_blocking(move || load_specs(&dir))
            .await
            .unwrap_or_else(|e| (Vec::new(), vec![e.to_string()]));
        let mut inner = self.inner.lock().await;
        let mut errors = errors;
        let mut loaded = BTreeMap::new();
        for (file, spec) in specs {
            if let Some(prev) = inner.specs.get(&spec.name)
                && prev.spec == spec
            {
                loaded.insert(spec.name.clone(), prev.clone());
                continue;
            }
            match driver_for(&spec) {
                Ok(driver) => {
                    loaded.insert(spec.name.clone(), Arc::new(Loaded { spec, file, driver }));
                }
                Err(e) => errors.push(format!("{}: {e:#}", file.display())),
            }
        }
        if errors != inner.spec_errors {
            for e in &errors {
                tracing::error!(error = %e, "canary spec not loaded");
            }
        }
        inner.spec_errors = errors;
        inner.specs = loaded;
        inner.specs.keys().cloned().collect()
    }

    async fn step(&self, name: &str) -> anyhow::Result<()> {
        let (generation, loaded) = {
            let mut inner = self.inner.lock().await;
            let Some(loaded) = inner.specs.get(name).cloned() else {
                return Ok(());
            };
            self.ensure_rollout(&mut inner, &loaded).await?;
            let Some(e) = inner.entries.get_mut(name) else {
                return Ok(());
            };
            if !e.rollout.weight_applied {
                let _ = apply_weight(&loaded, e, self.driver_breaker.as_deref()).await; // logged; retried while weight_applied is false
            }
            if e.rollout.phase != Phase::Progressing {
                return Ok(());
            }
            let interval = Duration::from_secs(loaded.spec.interval_secs);
            if e.last_tick.is_some_and(|t| t.elapsed() < interval) {
                return Ok(());
            }
            e.last_tick = Some(Instant::now());
            (e.generation, loaded)
        };
        let queries = queries(&loaded.spec);
        let sample = self.sample(&loaded.spec, &queries).await;
        let consumer_lag = match &loaded.spec.analysis.consumer {
            Some(c) => self
                .lag
                .read()
                .await
                .snapshot
                .groups
                .iter()
                .find(|g| g.group == c.group)
                .and_then(|g| g.lag_seconds),
            None => None,
        };

        let mut inner = self.inner.lock().await;
        let Some(e) = inner.entries.get_mut(name) else {
            return Ok(());
        };
        if e.generation != generation || e.rollout.phase != Phase::Progressing {
            // An operator acted while we were querying: their action stands.
            return Ok(());
        }
        let spec = &loaded.spec;
        let interval = match sample {
            Err(PromError::Unreachable(why)) => Interval::BackendDown(why),
            Err(PromError::Rejected { query, message }) => {
                Interval::BackendDown(format!("query rejected ({message}): {query}"))
            }
            Ok(s) => {
                let Some(prev) = e.baseline.replace(s) else {
                    // First sample of this rollout (or after a resume): the
                    // baseline the next interval is measured from. Keep the
                    // driver in line with the rollout meanwhile.
                    let _ = apply_weight(&loaded, e, self.driver_breaker.as_deref()).await; // logged; retried while weight_applied is false
                    return Ok(());
                };
                let side = |cur: Counters, prev: Counters| {
                    let requests = delta(cur.requests, prev.requests);
                    Observation {
                        requests,
                        errors: delta(cur.errors, prev.errors).min(requests),
                        slow: requests.saturating_sub(delta(cur.fast, prev.fast)),
                    }
                };
                Interval::Data {
                    stable: side(s.stable, prev.stable),
                    canary: side(s.canary, prev.canary),
                    consumer: spec
                        .analysis
                        .consumer
                        .as_ref()
                        .map(|_| ConsumerObservation {
                            lag_seconds: consumer_lag,
                            consumed: delta(s.canary.consumed, prev.canary.consumed),
                            dead_lettered: delta(s.canary.dead_lettered, prev.canary.dead_lettered),
                        }),
                }
            }
        };
        let mut state = e.rollout.analysis.clone();
        let d = canary::analyze(spec, &mut state, &interval);
        let (mut verdict, mut reason) = (d.verdict, d.reason.clone());
        if verdict != Verdict::Pause {
            e.rollout.analysed_secs += spec.interval_secs;
        }
        if matches!(verdict, Verdict::Hold | Verdict::Promote)
            && e.rollout.analysed_secs > spec.max_duration_secs
        {
            verdict = Verdict::Rollback;
            reason = format!(
                "not finished after {} s of analysis (max_duration_secs {}): {reason}",
                e.rollout.analysed_secs, spec.max_duration_secs
            );
        }
        let (phase, weight) = match verdict {
            Verdict::Promote => (Phase::Progressing, state.percent(spec)),
            Verdict::Complete => (Phase::Succeeded, 100),
            Verdict::Rollback => (Phase::RolledBack, 0),
            Verdict::Hold | Verdict::Pause => (Phase::Progressing, e.rollout.weight),
        };
        e.rollout.analysis = state;
        e.rollout.phase = phase;
        e.rollout.weight = weight;
        let mut applied = apply_weight(&loaded, e, self.driver_breaker.as_deref()).await;
        if let Err(why) = &applied {
            reason = format!("{reason}; driver: {why} (retrying)");
        }
        let inputs = json!({
            "queries": queries.iter().map(|(k, q)| json!({"name": k, "query": q})).collect::<Vec<_>>(),
            "prometheus": self.prom.base(),
            "interval_secs": spec.interval_secs,
            "alpha": spec.analysis.alpha,
            "beta": spec.analysis.beta,
            "ratio": spec.analysis.ratio,
            "alpha_per_test": spec.analysis.alpha / (2.0 * spec.steps.len() as f64),
            "min_requests": spec.analysis.min_requests,
            "latency_threshold_seconds": spec.analysis.latency_threshold_seconds,
            "slo_objective": spec.analysis.slo_objective,
            "max_burn_rate": spec.analysis.max_burn_rate,
            "consumer": spec.analysis.consumer,
        });
        let observed = match &interval {
            Interval::BackendDown(why) => json!({"backend": "down", "error": why}),
            Interval::Data { .. } => json!({
                "stable": d.stable,
                "canary": d.canary,
                "canary_share": d.canary_share,
                "consumer": d.consumer,
            }),
        };
        let statistic = json!({
            "error_llr": d.error_llr,
            "latency_llr": d.latency_llr,
            "boundary": d.boundary,
            "canary_burn_rate": d.canary_burn_rate,
            "canary_dlq_ratio": d.canary_dlq_ratio,
            "canary_requests_in_step": d.canary_requests_in_step,
        });
        let span = tracing::info_span!(
            "canary.analysis",
            canary = %name,
            canary_version = %spec.canary_version,
            verdict = verdict.as_str(),
            step_percent = d.step_percent,
            weight_after = weight,
            error_llr = d.error_llr,
            latency_llr = d.latency_llr,
            boundary = d.boundary,
        );
        let trace_id = trace_id_of(&span);
        {
            let _g = span.enter();
            tracing::info!(canary = %name, verdict = verdict.as_str(), %reason, "canary decision");
        }
        if let Ok(mut mt) = self.metrics.lock() {
            *mt.decisions
                .entry((name.to_string(), verdict.as_str()))
                .or_default() += 1;
        }
        let rec = NewDecision {
            actor: CONTROLLER_ACTOR.into(),
            action: "analysis",
            verdict: verdict.as_str().into(),
            reason,
            step_percent: d.step_percent,
            inputs,
            observed,
            statistic,
            trace_id,
        };
        let stored = self.persist(e, rec).await;
        if let Ok(r) = &stored {
            e.last_analysis = Some(r.clone());
        }
        applied = applied.and(stored.map(drop).map_err(|e| format!("{e:#}")));
        if let Err(e) = applied {
            tracing::warn!(canary = %name, error = %e, "canary decision not fully applied");
        }
        Ok(())
    }

    /// Make sure the spec's canary version has a rollout: continue one from
    /// Postgres, or start it (superseding an unfinished older one).
    async fn ensure_rollout(&self, inner: &mut Inner, loaded: &Loaded) -> anyhow::Result<()> {
        let spec = &loaded.spec;
        if inner
            .entries
            .get(&spec.name)
            .is_some_and(|e| e.rollout.canary_version == spec.canary_version)
        {
            return Ok(());
        }
        if let Some(r) = self.load_rollout(&spec.name, &spec.canary_version).await? {
            let last_decision = self.decisions(&spec.name, 1, None).await?.pop();
            let last_analysis = self.decisions(&spec.name, 1, Some("analysis")).await?.pop();
            inner.entries.insert(
                spec.name.clone(),
                Entry {
                    rollout: r,
                    generation: 0,
                    baseline: None,
                    last_tick: None,
                    last_decision,
                    last_analysis,
                },
            );
            return Ok(());
        }
        // Supersede whatever is unfinished for this canary.
        let unfinished: Vec<Rollout> = self.unfinished_rollouts(&spec.name).await?;
        for old in unfinished {
            let mut e = Entry {
                rollout: old,
                generation: 0,
                baseline: None,
                last_tick: None,
                last_decision: None,
                last_analysis: None,
            };
            e.rollout.phase = Phase::Superseded;
            let rec = NewDecision {
                actor: CONTROLLER_ACTOR.into(),
                action: "supersede",
                verdict: "hold".into(),
                reason: format!(
                    "canary version {} replaces {} before it finished",
                    spec.canary_version, e.rollout.canary_version
                ),
                step_percent: e.rollout.weight,
                inputs: json!({}),
                observed: json!({}),
                statistic: json!({}),
                trace_id: None,
            };
            self.persist(&mut e, rec).await?;
        }
        let state = State::new(spec);
        let weight = state.percent(spec);
        let row = sqlx::query(
            "INSERT INTO canary_rollouts (canary, canary_version, stable_version, phase, weight, analysis)
             VALUES ($1, $2, $3, 'progressing', $4, $5)
             RETURNING id, started_at",
        )
        .bind(&spec.name)
        .bind(&spec.canary_version)
        .bind(&spec.stable_version)
        .bind(weight as i32)
        .bind(sqlx::types::Json(&state))
        .fetch_one(&self.pool)
        .await?;
        let started_at: DateTime<Utc> = row.try_get("started_at")?;
        let mut e = Entry {
            rollout: Rollout {
                id: row.try_get("id")?,
                canary: spec.name.clone(),
                canary_version: spec.canary_version.clone(),
                stable_version: spec.stable_version.clone(),
                phase: Phase::Progressing,
                weight,
                weight_applied: false,
                analysis: state,
                analysed_secs: 0,
                started_at,
                updated_at: started_at,
                finished_at: None,
            },
            generation: 0,
            baseline: None,
            last_tick: None,
            last_decision: None,
            last_analysis: None,
        };
        let applied = apply_weight(loaded, &mut e, self.driver_breaker.as_deref()).await;
        let rec = NewDecision {
            actor: CONTROLLER_ACTOR.into(),
            action: "start",
            verdict: "hold".into(),
            reason: match &applied {
                Ok(()) => format!(
                    "canary version {} against stable {}: starting at {weight}% (steps {:?})",
                    spec.canary_version, spec.stable_version, spec.steps
                ),
                Err(why) => format!(
                    "canary version {}: starting at {weight}%; driver: {why} (retrying)",
                    spec.canary_version
                ),
            },
            step_percent: weight,
            inputs: json!({"file": loaded.file.display().to_string(), "steps": spec.steps}),
            observed: json!({}),
            statistic: json!({}),
            trace_id: None,
        };
        self.persist(&mut e, rec).await?;
        tracing::info!(canary = %spec.name, version = %spec.canary_version, weight, "canary rollout started");
        inner.entries.insert(spec.name.clone(), e);
        Ok(())
    }

    /// Query the cumulative counters of both sides at one instant.
    async fn sample(
        &self,
        spec: &CanarySpec,
        queries: &[(&'static str, String)],
    ) -> Result<Sample, PromError> {
        let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let results =
            futures::future::join_all(queries.iter().map(|(_, q)| self.prom.vector(q, at))).await;
        let mut s = Sample::default();
        let thr = spec.analysis.latency_threshold_seconds;
        for ((name, _), res) in queries.iter().zip(results) {
            for series in res? {
                let version = series
                    .labels
                    .get(m::labels::VERSION)
                    .map(String::as_str)
                    .unwrap_or_default();
                let side = if version == spec.canary_version {
                    &mut s.canary
                } else if version == spec.stable_version {
                    &mut s.stable
                } else {
                    continue;
                };
                match *name {
                    "latency_buckets" => match series.labels.get("le").and_then(|l| parse_le(l)) {
                        Some(le) if le.is_infinite() => side.requests += series.value,
                        Some(le) if (le - thr).abs() < 1e-9 => side.fast += series.value,
                        _ => {}
                    },
                    "errors" => side.errors += series.value,
                    "consumed" => side.consumed += series.value,
                    "dead_lettered" => side.dead_lettered += series.value,
                    _ => {}
                }
            }
        }
        Ok(s)
    }

    /// An operator action, effective immediately and recorded with `actor`.
    pub async fn act(
        &self,
        name: &str,
        action: Action,
        actor: &str,
        note: Option<&str>,
    ) -> Result<CanaryView, ActError> {
        let mut inner = self.inner.lock().await;
        let loaded = inner
            .specs
            .get(name)
            .cloned()
            .ok_or_else(|| ActError::NotFound(name.to_string()))?;
        self.ensure_rollout(&mut inner, &loaded)
            .await
            .map_err(|e| ActError::Conflict(format!("cannot load the rollout: {e:#}")))?;
        let Some(e) = inner.entries.get_mut(name) else {
            return Err(ActError::NotFound(name.to_string()));
        };
        let spec = &loaded.spec;
        let phase = e.rollout.phase;
        let refuse = |what: &str| {
            Err(ActError::Conflict(format!(
                "cannot {what}: the rollout of {} is {} (start a new one by deploying a new canary_version)",
                e.rollout.canary_version,
                phase.as_str()
            )))
        };
        let before = e.rollout.weight;
        let reason = match action {
            Action::Promote => {
                if phase.finished() {
                    return refuse("promote");
                }
                e.rollout.analysis.advance(spec);
                e.rollout.weight = e.rollout.analysis.percent(spec);
                if e.rollout.analysis.finished {
                    e.rollout.phase = Phase::Succeeded;
                    format!(
                        "promoted by hand past the last step: canary takes {}%",
                        e.rollout.weight
                    )
                } else {
                    format!("promoted by hand: {before}% → {}%", e.rollout.weight)
                }
            }
            Action::Pause => {
                if phase.finished() {
                    return refuse("pause");
                }
                e.rollout.phase = Phase::Paused;
                format!(
                    "paused by hand at {}%: weights held, no analysis",
                    e.rollout.weight
                )
            }
            Action::Resume => {
                if phase.finished() {
                    return refuse("resume");
                }
                e.rollout.phase = Phase::Progressing;
                e.baseline = None;
                e.last_tick = None;
                format!(
                    "resumed at {}%: analysis restarts from fresh counts",
                    e.rollout.weight
                )
            }
            Action::Abort | Action::Rollback => {
                let already = matches!(phase, Phase::Aborted | Phase::RolledBack);
                if !already {
                    e.rollout.phase = Phase::Aborted;
                }
                e.rollout.weight = 0;
                if already {
                    format!(
                        "already {}: all traffic on stable (re-applied)",
                        phase.as_str()
                    )
                } else {
                    format!("rolled back by hand from {before}%: all traffic on stable")
                }
            }
        };
        let reason = match note {
            Some(n) if !n.trim().is_empty() => format!("{reason} — {}", n.trim()),
            _ => reason,
        };
        e.generation += 1;
        // An operator's explicit request always reaches the driver, open
        // breaker or not.
        let applied = apply_weight(&loaded, e, None).await;
        let span = tracing::info_span!(
            "canary.action",
            canary = %name,
            action = action.as_str(),
            actor = %actor,
            weight_after = e.rollout.weight
        );
        let trace_id = trace_id_of(&span);
        {
            let _g = span.enter();
            tracing::info!(canary = %name, action = action.as_str(), %actor, %reason, "canary operator action");
        }
        let rec = NewDecision {
            actor: actor.to_string(),
            action: action.as_str(),
            verdict: match action {
                Action::Promote if e.rollout.phase == Phase::Succeeded => "complete",
                Action::Promote => "promote",
                Action::Pause => "pause",
                Action::Resume => "hold",
                Action::Abort | Action::Rollback => "rollback",
            }
            .into(),
            reason: match &applied {
                Ok(()) => reason,
                Err(why) => format!("{reason}; driver: {why} (retrying)"),
            },
            step_percent: before,
            inputs: json!({"note": note}),
            observed: json!({}),
            statistic: json!({}),
            trace_id,
        };
        self.persist(e, rec)
            .await
            .map_err(|err| ActError::Conflict(format!("recording the action failed: {err:#}")))?;
        if let Err(why) = applied {
            return Err(ActError::Driver(why));
        }
        Ok(view(&loaded, Some(e)))
    }

    pub async fn list(&self) -> CanaryList {
        let inner = self.inner.lock().await;
        CanaryList {
            canaries: inner
                .specs
                .values()
                .map(|l| view(l, inner.entries.get(&l.spec.name)))
                .collect(),
            spec_errors: inner.spec_errors.clone(),
        }
    }

    pub async fn get(&self, name: &str) -> Option<CanaryView> {
        let inner = self.inner.lock().await;
        inner
            .specs
            .get(name)
            .map(|l| view(l, inner.entries.get(name)))
    }

    /// Newest first; `action` filters (e.g. `analysis`).
    pub async fn decisions(
        &self,
        canary: &str,
        limit: i64,
        action: Option<&str>,
    ) -> anyhow::Result<Vec<DecisionRecord>> {
        let rows = sqlx::query(
            "SELECT id, rollout_id, canary, at, actor, action, verdict, reason, step_percent,
                    weight_after, inputs, observed, statistic, trace_id
             FROM canary_decisions
             WHERE canary = $1 AND ($2::text IS NULL OR action = $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(canary)
        .bind(action)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_from_row).collect()
    }

    async fn load_rollout(&self, canary: &str, version: &str) -> anyhow::Result<Option<Rollout>> {
        let row = sqlx::query(
            "SELECT id, canary, canary_version, stable_version, phase, weight, analysis,
                    analysed_secs, started_at, updated_at, finished_at
             FROM canary_rollouts WHERE canary = $1 AND canary_version = $2",
        )
        .bind(canary)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    async fn unfinished_rollouts(&self, canary: &str) -> anyhow::Result<Vec<Rollout>> {
        let rows = sqlx::query(
            "SELECT id, canary, canary_version, stable_version, phase, weight, analysis,
                    analysed_secs, started_at, updated_at, finished_at
             FROM canary_rollouts WHERE canary = $1 AND phase IN ('progressing', 'paused')
             ORDER BY id",
        )
        .bind(canary)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// Append the decision and save the rollout, in one transaction.
    async fn persist(&self, e: &mut Entry, rec: NewDecision) -> anyhow::Result<DecisionRecord> {
        let r = &mut e.rollout;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE canary_rollouts
             SET phase = $2, weight = $3, analysis = $4, analysed_secs = $5, updated_at = now(),
                 finished_at = CASE WHEN $6 THEN coalesce(finished_at, now()) ELSE NULL END
             WHERE id = $1
             RETURNING updated_at, finished_at",
        )
        .bind(r.id)
        .bind(r.phase.as_str())
        .bind(r.weight as i32)
        .bind(sqlx::types::Json(&r.analysis))
        .bind(r.analysed_secs as i64)
        .bind(r.phase.finished())
        .fetch_one(&mut *tx)
        .await?;
        r.updated_at = row.try_get("updated_at")?;
        r.finished_at = row.try_get("finished_at")?;
        let row = sqlx::query(
            "INSERT INTO canary_decisions
               (rollout_id, canary, actor, action, verdict, reason, step_percent, weight_after,
                inputs, observed, statistic, trace_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING id, rollout_id, canary, at, actor, action, verdict, reason, step_percent,
                       weight_after, inputs, observed, statistic, trace_id",
        )
        .bind(r.id)
        .bind(&r.canary)
        .bind(&rec.actor)
        .bind(rec.action)
        .bind(&rec.verdict)
        .bind(&rec.reason)
        .bind(rec.step_percent as i32)
        .bind(r.weight as i32)
        .bind(sqlx::types::Json(&rec.inputs))
        .bind(sqlx::types::Json(&rec.observed))
        .bind(sqlx::types::Json(&rec.statistic))
        .bind(&rec.trace_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let d = decision_from_row(&row)?;
        e.last_decision = Some(d.clone());
        Ok(d)
    }

    /// Snapshot for `/metrics`: weight, phase and statistics per canary.
    pub async fn gauges(&self) -> Vec<CanaryGauges> {
        let inner = self.inner.lock().await;
        inner
            .entries
            .values()
            .map(|e| CanaryGauges {
                canary: e.rollout.canary.clone(),
                weight: e.rollout.weight,
                phase: e.rollout.phase,
                error_llr: e.rollout.analysis.errors.llr,
                latency_llr: e.rollout.analysis.latency.llr,
                boundary: e.rollout.analysis.errors.upper(),
            })
            .collect()
    }
}

/// Per-canary gauges for `/metrics`.
#[derive(Debug, Clone)]
pub struct CanaryGauges {
    pub canary: String,
    pub weight: u32,
    pub phase: Phase,
    pub error_llr: f64,
    pub latency_llr: f64,
    pub boundary: f64,
}

struct NewDecision {
    actor: String,
    action: &'static str,
    verdict: String,
    reason: String,
    step_percent: u32,
    inputs: Value,
    observed: Value,
    statistic: Value,
    trace_id: Option<String>,
}

fn rollout_from_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<Rollout> {
    let analysis: sqlx::types::Json<State> = row.try_get("analysis")?;
    Ok(Rollout {
        id: row.try_get("id")?,
        canary: row.try_get("canary")?,
        canary_version: row.try_get("canary_version")?,
        stable_version: row.try_get("stable_version")?,
        phase: Phase::parse(row.try_get::<String, _>("phase")?.as_str()),
        weight: row.try_get::<i32, _>("weight")?.clamp(0, 100) as u32,
        // Re-assert the recorded weight once after a restart.
        weight_applied: false,
        analysis: analysis.0,
        analysed_secs: row.try_get::<i64, _>("analysed_secs")?.max(0) as u64,
        started_at: row.try_get("started_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn decision_from_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<DecisionRecord> {
    let json =
        |c: &str| -> anyhow::Result<Value> { Ok(row.try_get::<sqlx::types::Json<Value>, _>(c)?.0) };
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        rollout_id: row.try_get("rollout_id")?,
        canary: row.try_get("canary")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        verdict: row.try_get("verdict")?,
        reason: row.try_get("reason")?,
        step_percent: row.try_get("step_percent")?,
        weight_after: row.try_get("weight_after")?,
        inputs: json("inputs")?,
        observed: json("observed")?,
        statistic: json("statistic")?,
        trace_id: row.try_get("trace_id")?,
    })
}

/// Tell the driver the rollout's weight; remembers whether it took.
async fn apply_weight(
    loaded: &Loaded,
    e: &mut Entry,
    breaker: Option<&telemetry::retry::CircuitBreaker>,
) -> Result<(), String> {
    let res = match breaker.map(|b| b.check()).transpose() {
        Err(open) => Err(open.to_string()),
        Ok(permit) => {
            let r = loaded
                .driver
                .set_canary_percent(e.rollout.weight)
                .await
                .map_err(|err| err.to_string());
            if let Some(p) = permit {
                p.record(r.is_ok());
            }
            r
        }
    };
    if let Err(why) = &res {
        tracing::warn!(canary = %loaded.spec.name, weight = e.rollout.weight, error = %why, "rollout driver refused the weight");
    }
    e.rollout.weight_applied = res.is_ok();
    res
}

fn trace_id_of(span: &tracing::Span) -> Option<String> {
    telemetry::trace::context_of(span, None)?
        .trace_id()
        .map(str::to_string)
}

fn view(l: &Loaded, e: Option<&Entry>) -> CanaryView {
    let s = &l.spec;
    CanaryView {
        name: s.name.clone(),
        file: l.file.display().to_string(),
        target: s.target.clone(),
        stable: s.stable.clone(),
        canary: s.canary.clone(),
        stable_version: s.stable_version.clone(),
        canary_version: s.canary_version.clone(),
        steps: s.steps.clone(),
        interval_secs: s.interval_secs,
        max_duration_secs: s.max_duration_secs,
        analysis: s.analysis.clone(),
        rollout: e
            .filter(|e| e.rollout.canary_version == s.canary_version)
            .map(|e| e.rollout.clone()),
        last_decision: e.and_then(|e| e.last_decision.clone()),
        last_analysis: e.and_then(|e| e.last_analysis.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_handle_resets_and_regex_escapes_versions() {
        assert_eq!(delta(15.0, 10.0), 5);
        assert_eq!(delta(3.0, 10.0), 3, "a restarted process counts from zero");
        assert_eq!(regex_literal("1.2.3+b"), "1\\.2\\.3\\+b");
        let spec = CanarySpec::from_yaml(
            "c.yaml",
            "name: c\ntarget: command-service\nstable: command/stable\ncanary: command/canary\nstable_version: '1.0'\ncanary_version: '1.1'\n",
        )
        .expect("valid");
        let q = queries(&spec);
        assert!(
            q[0].1.contains("version=~\"1\\\\.0|1\\\\.1\""),
            "{}",
            q[0].1
        );
        assert!(q[1].1.contains("status_class=\"5xx\""));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn shipped_specs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for dir in ["canary", "k8s/base/canary"] {
            let (specs, errors) = load_specs(&root.join(dir));
            assert!(errors.is_empty(), "{dir}: {errors:?}");
            assert!(!specs.is_empty(), "{dir}: no specs");
        }
    }

    #[test]
    fn spec_dir_errors_name_file_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "name: c\ntarget: command-service\nstable: command/stable\ncanary: command/canary\nstable_version: a\ncanary_version: b\ndriver:\n  haproxy:\n    runtime_api: 127.0.0.1:1\n";
        std::fs::write(dir.path().join("a.yaml"), good).expect("write");
        std::fs::write(dir.path().join("b.yaml"), good).expect("write");
        std::fs::write(
            dir.path().join("c.yaml"),
            good.replace("name: c", "name: d") + "analysis:\n  latency_threshold_seconds: 0.3\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("d.yaml"),
            good.replace("name: c", "name: e")
                .replace("driver:\n  haproxy:\n    runtime_api: 127.0.0.1:1\n", ""),
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let (specs, errors) = load_specs(dir.path());
        assert_eq!(specs.len(), 1);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[2].contains("d.yaml") && errors[2].contains("'driver'"),
            "{errors:?}"
        );
        assert!(
            errors[0].contains("b.yaml") && errors[0].contains("'name'"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("c.yaml") && errors[1].contains("latency_threshold_seconds"),
            "{errors:?}"
        );
    }
}
