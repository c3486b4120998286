//! The analysis loop: reload the specs, start or continue each canary's
//! rollout, and every interval turn Prometheus' counters into a decision.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary::{ConsumerObservation, Interval, Observation, State, Strategy, Verdict};
use observer_api::canaries::BlueGreenStatus;
use rollout::Side;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::load::{self, LoadHookGuard};
use super::queries::{Counters, Sample, delta, queries, sample};
use super::spec::{Loaded, driver_for, load_specs};
use super::store::{NewDecision, Store};
use super::{CanaryList, CanaryView, ConsumerLag, DecisionRecord, Phase, Rollout};
use crate::prom::{PromClient, PromError};
use observer_api::canaries::{AnalysisInputs, AnalysisObserved, AnalysisStatistic, NamedQuery};

/// Who the controller's own decisions are attributed to.
pub const CONTROLLER_ACTOR: &str = "observer";

/// Action and verdict of a blue-green scale-down in the decision log and
/// `canary_decisions_total`.
pub const SCALE_DOWN: &str = "scale_down";

/// One rollout in memory: the truth while the observer runs.
pub(super) struct Entry {
    pub(super) rollout: Rollout,
    /// Bumped by every operator action: an analysis that started before it
    /// is dropped.
    pub(super) generation: u64,
    pub(super) baseline: Option<Sample>,
    pub(super) last_tick: Option<Instant>,
    pub(super) last_decision: Option<DecisionRecord>,
    pub(super) last_analysis: Option<DecisionRecord>,
    /// Blue-green: the preview traffic while green is analysed.
    load: Option<LoadHookGuard>,
}

impl Entry {
    fn new(rollout: Rollout) -> Self {
        Self {
            rollout,
            generation: 0,
            baseline: None,
            last_tick: None,
            last_decision: None,
            last_analysis: None,
            load: None,
        }
    }

    /// Blue-green: once green has all user traffic, when it got it and when
    /// blue goes. Returns the line the decision's reason gets.
    pub(super) fn note_switch(&mut self, spec: &canary::CanarySpec) -> Option<String> {
        if self.rollout.strategy != Strategy::BlueGreen || self.rollout.weight != 100 {
            return None;
        }
        let delay = spec
            .blue_green
            .as_ref()
            .map_or(0, |b| b.scale_down_delay_secs);
        let s = self.rollout.blue_green.get_or_insert_default();
        if s.switched_at.is_some() {
            return None;
        }
        let now = chrono::Utc::now();
        let at = now + chrono::Duration::seconds(i64::try_from(delay).unwrap_or(i64::MAX / 2));
        s.switched_at = Some(now);
        s.scale_down_at = Some(at);
        Some(format!(
            "switched: all user traffic on green ({}); blue ({}) stays up for rollback until {} (scale_down_delay_secs {delay})",
            spec.canary_version,
            spec.stable_version,
            at.format("%H:%M:%S")
        ))
    }
}

/// Blue-green: the build to take out of service now, if any. Blue goes
/// `scale_down_delay_secs` after the switch; green goes once a failed or
/// aborted rollout has its traffic (none) back on blue.
fn pending_scale_down(r: &Rollout, now: chrono::DateTime<chrono::Utc>) -> Option<Side> {
    let s = r.blue_green.as_ref()?;
    let done = |side: Side| s.scaled_down.iter().any(|d| d == side.as_str());
    match r.phase {
        Phase::Succeeded
            if r.weight == 100
                && s.scale_down_at.is_some_and(|t| t <= now)
                && !done(Side::Stable) =>
        {
            Some(Side::Stable)
        }
        Phase::RolledBack | Phase::Aborted if r.weight == 0 && !done(Side::Canary) => {
            Some(Side::Canary)
        }
        _ => None,
    }
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) specs: BTreeMap<String, Arc<Loaded>>,
    pub(super) entries: BTreeMap<String, Entry>,
    spec_errors: Vec<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct RolloutMetrics {
    pub decisions: BTreeMap<(String, &'static str), u64>,
}

pub struct Controller {
    dir: PathBuf,
    store: Store,
    pub(super) prom: PromClient,
    lag: Arc<dyn ConsumerLag>,
    /// The SLOs the error-budget gate reads (`budget.rs`).
    pub(super) slos: Arc<Vec<slo::Slo>>,
    pub(super) inner: Mutex<Inner>,
    metrics: std::sync::Mutex<RolloutMetrics>,
    driver_breaker: Option<Arc<telemetry::retry::CircuitBreaker>>,
}

impl Controller {
    /// Migrate the decision log's tables in `pool`.
    pub async fn new(
        dir: PathBuf,
        pool: PgPool,
        prom: PromClient,
        lag: Arc<dyn ConsumerLag>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            dir,
            store: Store::migrate(pool).await?,
            prom,
            lag,
            slos: Arc::default(),
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

    /// The SLO specs whose budgets gate rollouts (`budget:` in a spec).
    pub fn with_slos(mut self, slos: Arc<Vec<slo::Slo>>) -> Self {
        self.slos = slos;
        self
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
            self.blue_green_upkeep(&loaded, e).await;
            if e.rollout.phase == Phase::Blocked {
                return self.recheck_gate(&loaded, e).await;
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
        let sample = sample(&self.prom, &loaded.spec, &queries).await;
        let consumer_lag = match &loaded.spec.analysis.consumer {
            Some(c) => self.lag.lag_seconds(&c.group).await,
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
        let mut d = canary::analyze(spec, &mut state, &interval);
        if e.rollout.strategy == Strategy::BlueGreen {
            // Green's one analysis phase runs on preview traffic: it has no
            // share of user traffic (its "step" is the 100% it gets on pass).
            d.step_percent = e.rollout.weight;
            d.reason = d.reason.replace(" at 100%", " on the preview");
        }
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
        if let Some(switched) = e.note_switch(spec) {
            reason = format!("{reason}; {switched}");
        }
        let mut applied = apply_weight(&loaded, e, self.driver_breaker.as_deref()).await;
        if let Err(why) = &applied {
            reason = format!("{reason}; driver: {why} (retrying)");
        }
        let inputs = AnalysisInputs {
            queries: queries
                .iter()
                .map(|(k, q)| NamedQuery {
                    name: (*k).into(),
                    query: q.clone(),
                })
                .collect(),
            prometheus: self.prom.base().into(),
            interval_secs: spec.interval_secs,
            alpha: spec.analysis.alpha,
            beta: spec.analysis.beta,
            ratio: spec.analysis.ratio,
            alpha_per_test: canary::analysis::alpha_per_test(spec),
            min_requests: spec.analysis.min_requests,
            latency_threshold_seconds: spec.analysis.latency_threshold_seconds,
            slo_objective: spec.analysis.slo_objective,
            max_burn_rate: spec.analysis.max_burn_rate,
            sequential_burn_rate: Some(spec.analysis.sequential_burn_rate),
            consumer: spec.analysis.consumer.clone(),
        };
        let observed = match &interval {
            Interval::BackendDown(why) => AnalysisObserved::BackendDown {
                backend: "down".into(),
                error: why.clone(),
            },
            Interval::Data { .. } => AnalysisObserved::Data {
                stable: d.stable,
                canary: d.canary,
                canary_share: Some(d.canary_share),
                consumer: d.consumer,
            },
        };
        let statistic = AnalysisStatistic {
            error_llr: Some(d.error_llr),
            latency_llr: Some(d.latency_llr),
            boundary: Some(d.boundary),
            canary_burn_rate: d.canary_burn_rate,
            burn_llr: Some(d.burn_llr),
            canary_dlq_ratio: d.canary_dlq_ratio,
            canary_requests_in_step: d.canary_requests_in_step,
        };
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
            inputs: to_json(&inputs),
            observed: to_json(&observed),
            statistic: to_json(&statistic),
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

    /// Blue-green, every tick: the load hook runs while green is analysed,
    /// and a build due to go out of service is scaled down (once its
    /// traffic is elsewhere), recorded as a `scale_down` decision. A driver
    /// failure is retried at the next tick; the calls are idempotent, so a
    /// restart between the call and the record repeats it harmlessly.
    async fn blue_green_upkeep(&self, loaded: &Loaded, e: &mut Entry) {
        let spec = &loaded.spec;
        if e.rollout.strategy != Strategy::BlueGreen {
            return;
        }
        // No preview load while finished, or while the budget gate holds it.
        if e.rollout.phase.finished() || e.rollout.phase == Phase::Blocked {
            e.load = None;
        } else if e.load.is_none()
            && let Some(bg) = &spec.blue_green
        {
            e.load = Some(load::start(&spec.name, &bg.load));
        }
        if !e.rollout.weight_applied {
            return; // traffic moves away first
        }
        let Some(side) = pending_scale_down(&e.rollout, chrono::Utc::now()) else {
            return;
        };
        if let Err(why) = loaded.driver.scale_down(side).await {
            tracing::warn!(canary = %spec.name, side = side.as_str(), error = %why, "blue-green scale-down failed (retrying)");
            return;
        }
        let (build, version) = match side {
            Side::Stable => ("blue", &spec.stable_version),
            Side::Canary => ("green", &spec.canary_version),
        };
        e.rollout
            .blue_green
            .get_or_insert_default()
            .scaled_down
            .push(side.as_str().to_string());
        let rec = NewDecision {
            actor: CONTROLLER_ACTOR.into(),
            action: SCALE_DOWN,
            verdict: SCALE_DOWN.into(),
            reason: match side {
                Side::Stable => format!(
                    "blue ({version}) scaled down: scale_down_delay_secs {} passed since the switch",
                    spec.blue_green
                        .as_ref()
                        .map_or(0, |b| b.scale_down_delay_secs)
                ),
                Side::Canary => format!(
                    "green ({version}) scaled down: the rollout is {} and user traffic is on blue",
                    e.rollout.phase.as_str()
                ),
            },
            step_percent: e.rollout.weight,
            inputs: json!({"side": side.as_str(), "build": build, "version": version}),
            observed: json!({}),
            statistic: json!({}),
            trace_id: None,
        };
        tracing::info!(canary = %spec.name, build, %version, "blue-green scale-down");
        if let Ok(mut mt) = self.metrics.lock() {
            *mt.decisions
                .entry((spec.name.clone(), SCALE_DOWN))
                .or_default() += 1;
        }
        if let Err(err) = self.persist(e, rec).await {
            tracing::warn!(canary = %spec.name, error = %format!("{err:#}"), "recording the scale-down failed");
        }
    }

    /// Make sure the spec's canary version has a rollout: continue one from
    /// Postgres, or start it (superseding an unfinished older one).
    pub(super) async fn ensure_rollout(
        &self,
        inner: &mut Inner,
        loaded: &Loaded,
    ) -> anyhow::Result<()> {
        let spec = &loaded.spec;
        if inner
            .entries
            .get(&spec.name)
            .is_some_and(|e| e.rollout.canary_version == spec.canary_version)
        {
            return Ok(());
        }
        if let Some(r) = self
            .store
            .load_rollout(&spec.name, &spec.canary_version)
            .await?
        {
            let mut e = Entry::new(r);
            e.last_decision = self.decisions(&spec.name, 1, None).await?.pop();
            e.last_analysis = self.decisions(&spec.name, 1, Some("analysis")).await?.pop();
            inner.entries.insert(spec.name.clone(), e);
            return Ok(());
        }
        // Supersede whatever is unfinished for this canary.
        let unfinished: Vec<Rollout> = self.store.unfinished_rollouts(&spec.name).await?;
        for old in unfinished {
            let mut e = Entry::new(old);
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
        let blue_green = spec.strategy == Strategy::BlueGreen;
        let gate = self.budget_gate(spec).await;
        let held = gate.as_ref().is_some_and(|g| g.holds());
        // Blue-green: green takes no user traffic until the switch; a
        // rollout held by the budget gate takes none until it starts.
        let (phase, weight) = match held {
            true => (Phase::Blocked, 0),
            false => (Phase::Progressing, first_weight(spec, &state)),
        };
        let (id, started_at) = self
            .store
            .insert_rollout(spec, phase, weight, &state)
            .await?;
        let mut e = Entry::new(Rollout {
            id,
            canary: spec.name.clone(),
            canary_version: spec.canary_version.clone(),
            stable_version: spec.stable_version.clone(),
            phase,
            weight,
            weight_applied: false,
            analysis: state,
            analysed_secs: 0,
            started_at,
            updated_at: started_at,
            finished_at: None,
            strategy: spec.strategy,
            blue_green: blue_green.then(BlueGreenStatus::default),
        });
        // Green in service (a previous rollout may have scaled it down)
        // before the preview traffic starts.
        let green_up = if blue_green {
            loaded
                .driver
                .scale_up(Side::Canary)
                .await
                .map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        let applied = apply_weight(loaded, &mut e, self.driver_breaker.as_deref())
            .await
            .and(green_up);
        let rec = NewDecision {
            actor: CONTROLLER_ACTOR.into(),
            action: if held { "gate" } else { "start" },
            verdict: "hold".into(),
            reason: super::budget::start_reason(
                gate.as_ref(),
                match &applied {
                    Ok(()) if blue_green => format!(
                        "blue-green: green {} on preview {} against blue {}; user traffic stays on blue until the switch",
                        spec.canary_version,
                        spec.blue_green.as_ref().map_or("", |b| b.preview.as_str()),
                        spec.stable_version
                    ),
                    Ok(()) => format!(
                        "canary version {} against stable {}: starting at {weight}% (steps {:?})",
                        spec.canary_version, spec.stable_version, spec.steps
                    ),
                    Err(why) => format!(
                        "canary version {}: starting at {weight}%; driver: {why} (retrying)",
                        spec.canary_version
                    ),
                },
                applied.as_ref().err(),
            ),
            step_percent: weight,
            inputs: json!({
                "file": loaded.file.display().to_string(),
                "steps": spec.steps,
                "strategy": spec.strategy,
                "blue_green": spec.blue_green,
                "budget": gate,
            }),
            observed: json!({}),
            statistic: json!({}),
            trace_id: None,
        };
        self.persist(&mut e, rec).await?;
        tracing::info!(canary = %spec.name, version = %spec.canary_version, weight, "canary rollout started");
        inner.entries.insert(spec.name.clone(), e);
        Ok(())
    }

    /// Newest first; `action` filters (e.g. `analysis`).
    pub async fn decisions(
        &self,
        canary: &str,
        limit: i64,
        action: Option<&str>,
    ) -> anyhow::Result<Vec<DecisionRecord>> {
        self.store.decisions(canary, limit, action).await
    }

    /// Append the decision and save the rollout, in one transaction.
    pub(super) async fn persist(
        &self,
        e: &mut Entry,
        rec: NewDecision,
    ) -> anyhow::Result<DecisionRecord> {
        let d = self.store.persist(&mut e.rollout, rec).await?;
        e.last_decision = Some(d.clone());
        Ok(d)
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

pub(super) async fn apply_weight(
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

pub(super) fn trace_id_of(span: &tracing::Span) -> Option<String> {
    telemetry::trace::context_of(span, None)?
        .trace_id()
        .map(str::to_string)
}

pub(super) fn view(l: &Loaded, e: Option<&Entry>) -> CanaryView {
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
        strategy: s.strategy,
        blue_green: s.blue_green.clone(),
        rollout: e
            .filter(|e| e.rollout.canary_version == s.canary_version)
            .map(|e| e.rollout.clone()),
        last_decision: e.and_then(|e| e.last_decision.clone()),
        last_analysis: e.and_then(|e| e.last_analysis.clone()),
    }
}

/// A decision-log column. These types have string keys and no custom
/// serializer, so this cannot fail; a failure would store `null`.
fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The share of user traffic a rollout takes when it starts (or when the
/// budget gate releases it): the first step, or 0 for blue-green, whose
/// green takes no user traffic until the switch.
pub(super) fn first_weight(spec: &canary::CanarySpec, state: &State) -> u32 {
    match spec.strategy {
        Strategy::BlueGreen => 0,
        Strategy::Canary => state.percent(spec),
    }
}
