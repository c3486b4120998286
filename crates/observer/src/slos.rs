//! Native SLO evaluation: the same specs (`slo/*.yaml`) and the same maths as
//! the generated recording and alerting rules (`slo::compile`), computed by
//! the observer from counter increases it asks Prometheus for. Every window's
//! error ratio equals the recording rule `slo:sli_error:ratio_rate<w>` at the
//! same evaluation time; a system test proves it to 1e-6.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use slo::model::{Budgeting, CalendarUnit, Severity, Sli, Slo, Window};

use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::prom::{PromClient, PromError};

pub use observer_api::slos::{Backend, FiringTier, SloSnapshot, SloState, SloView, WindowValue};

/// Days of the budget period at `at`, as the rules compute it: the real month
/// length (UTC, `days_in_month()`) for calendar months, else the nominal length.
pub fn period_days(slo: &Slo, at: f64) -> f64 {
    match &slo.window {
        Window::Calendar {
            unit: CalendarUnit::Month,
            ..
        } => {
            let t = Utc
                .timestamp_opt(at.floor() as i64, 0)
                .single()
                .unwrap_or_else(Utc::now);
            let (y, m) = (t.year(), t.month());
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            match (
                chrono::NaiveDate::from_ymd_opt(y, m, 1),
                chrono::NaiveDate::from_ymd_opt(ny, nm, 1),
            ) {
                (Some(a), Some(b)) => (b - a).num_days() as f64,
                _ => 30.0,
            }
        }
        w => w.nominal().as_secs_f64() / 86_400.0,
    }
}

fn empty_view(slo: &Slo, state: SloState, error: Option<String>) -> SloView {
    SloView {
        name: slo.name.clone(),
        service: slo.service.clone(),
        objective: slo.objective,
        period: slo.window.words(),
        sli_kind: slo.sli.kind_name().into(),
        state,
        sli: None,
        period_error_ratio: None,
        budget_remaining: None,
        time_to_exhaustion_seconds: None,
        windows: Vec::new(),
        firing: Vec::new(),
        error,
    }
}

/// Error ratio and event count over one window, mirroring `compile::error_ratio_expr`.
async fn window_value(
    client: &PromClient,
    slo: &Slo,
    w: slo::duration::Dur,
    at: f64,
) -> Result<(f64, Option<f64>), PromError> {
    let wp = w.prom();
    match (&slo.sli, &slo.budgeting) {
        (
            Sli::Events {
                numerator,
                numerator_is_good,
                total,
                ..
            },
            Budgeting::Occurrences,
        ) => {
            let (n, t) = futures::future::try_join(
                client.instant(&numerator.increase(&wp), at),
                client.instant(&total.increase(&wp), at),
            )
            .await?;
            Ok((
                slo::eval::occurrence_error_ratio(n, t, *numerator_is_good),
                t,
            ))
        }
        _ => {
            // Timeslice budgeting: the share of bad slices, as recorded once per
            // slice by the slice rule (a slice is judged when it ends).
            let q = format!(
                "avg_over_time({}[{wp}])",
                slo::compile::selector(slo::compile::SLICE_BAD, slo)
            );
            let ratio = client.instant(&q, at).await?.unwrap_or(0.0);
            let events = match &slo.sli {
                Sli::Events { total, .. } => client.instant(&total.increase(&wp), at).await?,
                _ => None,
            };
            Ok((ratio, events))
        }
    }
}

/// Evaluate one SLO at `at` (Unix seconds).
pub async fn evaluate(client: &PromClient, slo: &Slo, at: f64) -> Result<SloView, PromError> {
    let mut windows = slo.alert_windows();
    let period = slo.window.nominal();
    let results = futures::future::try_join_all(
        windows
            .iter()
            .chain(std::iter::once(&period))
            .map(|w| window_value(client, slo, *w, at)),
    )
    .await?;
    let budget = slo.error_budget();
    let mut by_window: BTreeMap<u64, (f64, Option<f64>)> = BTreeMap::new();
    let mut views = Vec::new();
    for (w, (ratio, events)) in windows.iter().zip(results.iter()) {
        by_window.insert(w.as_secs(), (*ratio, *events));
        views.push(WindowValue {
            window: w.prom(),
            record: slo::compile::ratio_metric(*w),
            error_ratio: *ratio,
            burn_rate: slo::eval::burn_rate(slo, *ratio),
            events: *events,
        });
    }
    let (period_ratio, period_events) = results[windows.len()];
    views.push(WindowValue {
        window: period.prom(),
        record: slo::compile::PERIOD_ERROR_RATIO.to_string(),
        error_ratio: period_ratio,
        burn_rate: slo::eval::burn_rate(slo, period_ratio),
        events: period_events,
    });
    windows.clear();

    let days = period_days(slo, at);
    let mut firing = Vec::new();
    for tier in &slo.alerting.tiers {
        let (Some(long), Some(short)) = (
            by_window.get(&tier.long.as_secs()),
            by_window.get(&tier.short.as_secs()),
        ) else {
            continue;
        };
        if slo::eval::tier_fires(slo, tier, long.0, short.0, short.1, days) {
            firing.push(FiringTier {
                tier: tier.number,
                severity: tier.severity.as_str().into(),
                alertname: slo::compile::burn_alert_name(slo, tier.severity),
            });
        }
    }
    let remaining = slo::eval::budget_remaining(slo, period_ratio);
    let first_long = slo.alerting.tiers.first().map(|t| t.long.as_secs());
    let first_long_value = first_long.and_then(|w| by_window.get(&w)).copied();
    let burn_now = first_long_value.map_or(0.0, |(r, _)| r / budget);
    let tte = if remaining <= 0.0 {
        Some(0.0)
    } else if burn_now > 0.0 {
        Some(remaining * days * 86_400.0 / burn_now)
    } else {
        None
    };
    let no_traffic = slo.has_traffic()
        && first_long_value
            .map(|(_, e)| e.unwrap_or(0.0) <= 0.0)
            .unwrap_or(true);
    let state = if !firing.is_empty() {
        SloState::Burning
    } else if no_traffic {
        SloState::NoTraffic
    } else {
        SloState::Ok
    };
    Ok(SloView {
        sli: Some(1.0 - period_ratio),
        period_error_ratio: Some(period_ratio),
        budget_remaining: Some(remaining),
        time_to_exhaustion_seconds: tte,
        windows: views,
        firing,
        error: None,
        state,
        ..empty_view(slo, state, None)
    })
}

/// Evaluate every SLO at `at`. An unreachable backend marks every SLO
/// `backend_down` (and the snapshot's backend `down`); a rejected query marks
/// only its SLO `error`.
pub async fn evaluate_all(client: &PromClient, slos: &[Slo], at: f64) -> SloSnapshot {
    let mut views = Vec::with_capacity(slos.len());
    let mut down: Option<String> = match client.settle_breaker(at).await {
        Err(PromError::Unreachable(e)) => Some(e),
        _ => None,
    };
    for slo in slos {
        if down.is_some() {
            views.push(empty_view(slo, SloState::BackendDown, None));
            continue;
        }
        match evaluate(client, slo, at).await {
            Ok(v) => views.push(v),
            Err(PromError::Unreachable(e)) => {
                down = Some(e);
                views.push(empty_view(slo, SloState::BackendDown, None));
            }
            Err(e @ PromError::Rejected { .. }) => {
                views.push(empty_view(slo, SloState::Error, Some(e.to_string())));
            }
        }
    }
    if down.is_some() {
        for v in &mut views {
            *v = SloView {
                state: SloState::BackendDown,
                ..empty_view_like(v)
            };
        }
    }
    SloSnapshot {
        evaluated_at: at,
        backend: Backend {
            status: if down.is_some() { "down" } else { "up" }.into(),
            url: client.base().to_string(),
            error: down,
        },
        slos: views,
    }
}

fn empty_view_like(v: &SloView) -> SloView {
    SloView {
        name: v.name.clone(),
        service: v.service.clone(),
        objective: v.objective,
        period: v.period.clone(),
        sli_kind: v.sli_kind.clone(),
        state: v.state,
        sli: None,
        period_error_ratio: None,
        budget_remaining: None,
        time_to_exhaustion_seconds: None,
        windows: Vec::new(),
        firing: Vec::new(),
        error: None,
    }
}

/// Severity of a tier as the `severity` label value.
pub fn severity_label(s: Severity) -> &'static str {
    s.as_str()
}

/// Now, in Unix seconds (the evaluation time of a periodic evaluation).
pub fn now_secs() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

/// The periodic SLO evaluation and what it feeds: the pager, the latest
/// snapshot, and the per-group event-time freshness.
pub struct Evaluator {
    pub client: PromClient,
    pub slos: Arc<Vec<Slo>>,
    pub pager: Arc<tokio::sync::Mutex<crate::alerts::Pager>>,
    pub snapshot: Arc<RwLock<Option<SloSnapshot>>>,
    /// p99 event-time freshness (event → read model) per consumer group.
    pub freshness: Arc<RwLock<HashMap<String, f64>>>,
    /// Which consumer groups exist (for the freshness queries).
    pub lag: crate::tailer::SharedLag,
}

impl Evaluator {
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
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
            let snap = evaluate_all(&self.client, &self.slos, now_secs()).await;
            if snap.backend.status != "up" {
                tracing::warn!(error = ?snap.backend.error, "Prometheus unreachable; SLO evaluation paused");
            }
            self.pager
                .lock()
                .await
                .reconcile(&snap, &self.slos, valid_for)
                .await;
            let up = snap.backend.status == "up";
            *self.snapshot.write().await = Some(snap);
            if up {
                self.refresh_freshness().await;
            }
        }
    }

    /// Event-time freshness per group: p99 over 5 minutes of the projection's
    /// freshness histogram, for groups named like the service that reports it.
    async fn refresh_freshness(&self) {
        let mut out = HashMap::new();
        for g in self.lag.groups().await {
            let q = format!(
                "histogram_quantile(0.99, sum by (le) (rate({}{{{}=\"{}\"}}[5m])))",
                contracts::metrics::PROJECTION_FRESHNESS.bucket(),
                contracts::metrics::labels::SERVICE,
                g.replace('\\', "\\\\").replace('"', "\\\"")
            );
            if let Ok(Some(v)) = self.client.instant(&q, now_secs()).await
                && v.is_finite()
            {
                out.insert(g, v);
            }
        }
        *self.freshness.write().await = out;
    }
}
