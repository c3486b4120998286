//! `GET /api/v1/slos`: native SLO evaluation against Prometheus.

use serde::{Deserialize, Serialize};

/// The query string of `GET /api/v1/slos`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlosQuery {
    /// Evaluate now at this time (Unix seconds) instead of returning the
    /// latest periodic evaluation. No alert is sent for it.
    pub at: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FiringTier {
    pub tier: u32,
    pub severity: String,
    pub alertname: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloView {
    pub name: String,
    pub service: String,
    pub objective: f64,
    pub period: String,
    pub sli_kind: String,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Backend {
    /// `up` or `down`.
    pub status: String,
    pub url: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloSnapshot {
    /// Evaluation time (Unix seconds); every query is pinned to it.
    pub evaluated_at: f64,
    pub backend: Backend,
    pub slos: Vec<SloView>,
}
