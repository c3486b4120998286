//! `/api/v1/canaries…`: the canary controller's rollouts, decision log and
//! operator actions.

use canary::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Held by the error-budget gate (`budget:` in the spec): no canary
    /// traffic until the target's budget recovers or, with
    /// `require_override`, an operator starts it (`todoctl canary start`).
    Blocked,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Progressing,
        Phase::Paused,
        Phase::Succeeded,
        Phase::RolledBack,
        Phase::Aborted,
        Phase::Superseded,
        Phase::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Succeeded => "succeeded",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
            Phase::Superseded => "superseded",
            Phase::Blocked => "blocked",
        }
    }

    /// The phase named `s`; an unknown name reads as `Aborted`.
    pub fn parse(s: &str) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .unwrap_or(Phase::Aborted)
    }

    pub fn finished(self) -> bool {
        !matches!(self, Phase::Progressing | Phase::Paused | Phase::Blocked)
    }
}

/// One rollout as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// `canary` or `blue_green` (the spec's strategy when the rollout started).
    #[serde(default)]
    pub strategy: canary::Strategy,
    /// Blue-green only: the switch and the scale-downs so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
}

/// Where a blue-green rollout stands beyond its phase and weight (`weight`
/// is green's share of user traffic: 0 before the switch, 100 after).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlueGreenStatus {
    /// When all user traffic went to green.
    pub switched_at: Option<DateTime<Utc>>,
    /// When blue is scaled down (switch + `scale_down_delay_secs`); until
    /// then `todoctl rollback` switches back at once.
    pub scale_down_at: Option<DateTime<Utc>>,
    /// Which builds are out of service: `stable` (blue) and/or `canary` (green).
    #[serde(default)]
    pub scaled_down: Vec<String>,
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
    /// Start a rollout the error-budget gate holds (policy
    /// `require_override`); the body's `reason` is the override's reason.
    Start,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "promote" => Some(Action::Promote),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "abort" => Some(Action::Abort),
            "rollback" => Some(Action::Rollback),
            "start" => Some(Action::Start),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::Rollback => "rollback",
            Action::Start => "start",
        }
    }
}

/// What the API shows for one canary.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(default)]
    pub strategy: canary::Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<canary::BlueGreenSpec>,
    pub rollout: Option<Rollout>,
    /// The latest entry of the decision log (analysis or operator).
    pub last_decision: Option<DecisionRecord>,
    /// The latest analysis decision, with its values and statistic.
    pub last_analysis: Option<DecisionRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryList {
    pub canaries: Vec<CanaryView>,
    /// Specs that failed to load (file, line and field), not acted on.
    pub spec_errors: Vec<String>,
}

/// The query string of `GET /api/v1/canaries/{name}/decisions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Newest first, at most this many (1–1000, default 50).
    pub limit: Option<i64>,
    /// Only this action (`analysis`, `start`, `promote`, `pause`, `resume`, `abort`, `rollback`, `supersede`, `switch`, `scale_down`).
    pub action: Option<String>,
}

/// The body of `POST /api/v1/canaries/{name}/{action}` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Free text recorded with the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One PromQL query of an analysis interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedQuery {
    pub name: String,
    pub query: String,
}

/// `inputs` of an `analysis` decision: the queries and thresholds it used.
/// (Other actions record other shapes: `{"note": …}` for an operator action,
/// the spec file and steps for `start`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisInputs {
    pub queries: Vec<NamedQuery>,
    /// Base URL of the Prometheus queried.
    pub prometheus: String,
    pub interval_secs: u64,
    pub alpha: f64,
    pub beta: f64,
    pub ratio: f64,
    /// `alpha` split over the sequential tests of the rollout.
    pub alpha_per_test: f64,
    pub min_requests: u64,
    pub latency_threshold_seconds: f64,
    pub slo_objective: f64,
    pub max_burn_rate: f64,
    /// H1 of the sequential burn test (absent in decisions logged before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential_burn_rate: Option<f64>,
    pub consumer: Option<canary::spec::ConsumerCheck>,
}

/// `observed` of an `analysis` decision: counts per side in the interval,
/// or why there were none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnalysisObserved {
    /// Prometheus could not be asked (`backend` is `down`).
    BackendDown { backend: String, error: String },
    Data {
        stable: canary::Observation,
        canary: canary::Observation,
        /// Null when not a number (no requests).
        canary_share: Option<f64>,
        consumer: Option<canary::ConsumerObservation>,
    },
}

/// `statistic` of an `analysis` decision. A value that is not a finite
/// number is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisStatistic {
    pub error_llr: Option<f64>,
    pub latency_llr: Option<f64>,
    /// The log-likelihood ratio at which the canary is rolled back.
    pub boundary: Option<f64>,
    pub canary_burn_rate: Option<f64>,
    /// The sequential burn test's log-likelihood ratio (same boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_llr: Option<f64>,
    pub canary_dlq_ratio: Option<f64>,
    pub canary_requests_in_step: u64,
}

/// An `analysis` entry of the decision log, its JSON columns typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub inputs: AnalysisInputs,
    pub observed: AnalysisObserved,
    pub statistic: AnalysisStatistic,
}

impl DecisionRecord {
    /// The inputs, observations and statistic of an `analysis` decision.
    pub fn analysis(&self) -> Result<Analysis, serde_json::Error> {
        Ok(Analysis {
            inputs: serde_json::from_value(self.inputs.clone())?,
            observed: serde_json::from_value(self.observed.clone())?,
            statistic: serde_json::from_value(self.statistic.clone())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(observed: Value, statistic: Value) -> DecisionRecord {
        let inputs = AnalysisInputs {
            queries: vec![NamedQuery {
                name: "errors".into(),
                query: "sum(x)".into(),
            }],
            prometheus: "http://prom".into(),
            interval_secs: 10,
            alpha: 0.05,
            beta: 0.2,
            ratio: 2.0,
            alpha_per_test: 0.00625,
            min_requests: 100,
            latency_threshold_seconds: 0.3,
            slo_objective: 0.999,
            max_burn_rate: 10.0,
            sequential_burn_rate: None,
            consumer: None,
        };
        let v: Value = serde_json::from_str(
            r#"{"id":7,"rollout_id":1,"canary":"c","at":"2026-11-30T13:00:00.123456Z",
                "actor":"observer","action":"analysis","verdict":"hold","reason":"r",
                "step_percent":10,"weight_after":10,"inputs":{},"observed":{},"statistic":{},
                "trace_id":null}"#,
        )
        .expect("valid JSON");
        let mut d: DecisionRecord = serde_json::from_value(v).expect("a decision");
        d.inputs = serde_json::to_value(inputs).expect("serializable");
        d.observed = observed;
        d.statistic = statistic;
        d
    }

    #[test]
    fn analysis_columns_read_back_as_the_types_the_controller_writes() {
        let stat = serde_json::json!({
            "error_llr": 0.5, "latency_llr": null, "boundary": 2.9,
            "canary_burn_rate": null, "canary_dlq_ratio": null, "canary_requests_in_step": 40
        });
        let data = serde_json::json!({
            "stable": {"requests": 90, "errors": 1, "slow": 2},
            "canary": {"requests": 10, "errors": 0, "slow": 1},
            "canary_share": 0.1, "consumer": null
        });
        let a = record(data, stat.clone()).analysis().expect("an analysis");
        assert!(matches!(
            a.observed,
            AnalysisObserved::Data { canary_share: Some(s), .. } if s == 0.1
        ));
        assert_eq!(a.statistic.latency_llr, None);
        assert_eq!(a.inputs.min_requests, 100);
        let down = serde_json::json!({"backend": "down", "error": "refused"});
        let a = record(down, stat).analysis().expect("an analysis");
        assert_eq!(
            a.observed,
            AnalysisObserved::BackendDown {
                backend: "down".into(),
                error: "refused".into()
            }
        );
    }
}
