//! Native SLO evaluation: the same specs (`slo/*.yaml`) and the same maths as
//! the generated recording and alerting rules (`slo::compile`), computed by
//! the observer from counter increases it asks Prometheus for. Every window's
//! error ratio equals the recording rule `slo:sli_error:ratio_rate<w>` at the
//! same evaluation time; a system test proves it to 1e-6.

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;
use slo::model::{Budgeting, CalendarUnit, Severity, Sli, Slo, Window};

use crate::prom::{PromClient, PromError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowValue {
    /// Window in PromQL notation (`5m`, `1h`, `30d`).
    pub window: String,
    /// Name of the recording rule that holds the same value.
    pub record: String,
    pub error_ratio: f64,
    pub burn_rate: f64,
    /// Events in the window (`None` for timeslice SLIs or no series).
    pub events: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SloState {
    /// Traffic, and no tier's condition holds.
    Ok,
    /// At least one tier's condition holds (see `firing`).
    Burning,
    /// No events in the first tier's long window: nothing to judge, no burn.
    NoTraffic,
    /// Prometheus could not be queried: state unknown, nothing is paged.
    BackendDown,
    /// Prometheus rejected a query of this SLO (see `error`).
    Error,
}

impl SloState {
    pub fn as_str(self) -> &'static str {
        match self {
            SloState::Ok => "ok",
            SloState::Burning => "burning",
            SloState::NoTraffic => "no_traffic",
            SloState::BackendDown => "backend_down",
            SloState::Error => "error",
        }
    }
    pub const ALL: [SloState; 5] = [
        SloState::Ok,
        SloState::Burning,
        SloState::NoTraffic,
        SloState::BackendDown,
        SloState::Error,
    ];
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FiringTier {
    pub tier: u32,
    pub severity: &'static str,
    pub alertname: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloView {
    pub name: String,
    pub service: String,
    pub objective: f64,
    pub period: String,
    pub sli_kind: &'static str,
    pub state: SloState,
    /// 1 − error ratio over the period.
    pub sli: Option<f64>,
    pub period_error_ratio: Option<f64>,
    /// Share of the period's error budget left (negative when overspent).
    pub budget_remaining: Option<f64>,
    /// Seconds until the budget is gone at the first tier's long-window burn
    /// rate; 0 when already spent; null when nothing burns.
    pub time_to_exhaustion_seconds: Option<f64>,
    pub windows: Vec<WindowValue>,
    pub firing: Vec<FiringTier>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Backend {
    /// `up` or `down`.
    pub status: &'static str,
    pub url: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloSnapshot {
    /// Evaluation time (Unix seconds); every query is pinned to it.
    pub evaluated_at: f64,
    pub backend: Backend,
    pub slos: Vec<SloView>,
}

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
        sli_kind: slo.sli.kind_name(),
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
                severity: tier.severity.as_str(),
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
            status: if down.is_some() { "down" } else { "up" },
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
        sli_kind: v.sli_kind,
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
