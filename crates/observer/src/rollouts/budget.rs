//! The error-budget policy gate: a rollout of any strategy does not start
//! while the target's SLO error budget is below the spec's `budget:`
//! threshold.
//!
//! - The budget is the observer's native SLO evaluation
//!   ([`crate::slos::evaluate`], the same maths as the generated rules),
//!   computed fresh at the moment of the decision for every SLO whose
//!   `service` is the spec's `target`; the lowest remaining share decides.
//! - `block` and `require_override` hold the rollout in phase `blocked`
//!   with the canary at 0%. The controller re-evaluates every interval and
//!   starts it once the budget is back above the threshold;
//!   `require_override` also lets an operator start it at once
//!   (`POST …/start` with a reason, `todoctl canary start --override`),
//!   recorded with their subject. `warn` starts and records the low budget.
//! - A budget that cannot be evaluated (no SLO for the target, Prometheus
//!   down or refusing a query) holds under `block` and `require_override`
//!   (the gate fails closed: the policy was asked for) and warns under `warn`.
//! - Every gate decision (hold, start, override) is appended to the decision
//!   log with the figures below in `inputs.budget`.

use canary::{BudgetPolicy, CanarySpec};
use serde::Serialize;
use serde_json::json;

use super::Phase;
use super::controller::{CONTROLLER_ACTOR, Controller, Entry, apply_weight};
use super::spec::Loaded;
use super::store::NewDecision;
use crate::slos::{SloState, evaluate, now_secs};

/// One SLO's budget as the gate saw it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SloBudget {
    pub slo: String,
    pub objective: f64,
    pub period: String,
    pub period_error_ratio: Option<f64>,
    /// Share of the period's error budget left (negative when overspent).
    pub budget_remaining: Option<f64>,
    pub state: SloState,
}

/// What the gate decided, with its figures (stored in the decision log).
#[derive(Debug, Clone, Serialize)]
pub(super) struct GateEvaluation {
    pub policy: BudgetPolicy,
    pub min_remaining: f64,
    /// Unix seconds; every query is pinned to it.
    pub evaluated_at: f64,
    pub slos: Vec<SloBudget>,
    /// The lowest remaining share over the target's SLOs (`None`: unknown).
    pub lowest_remaining: Option<f64>,
    /// `pass`, `below` or `unknown`.
    pub outcome: &'static str,
    /// Why, in words.
    pub detail: String,
}

impl GateEvaluation {
    /// Whether the rollout must wait (no canary traffic).
    pub fn holds(&self) -> bool {
        self.outcome != "pass" && self.policy != BudgetPolicy::Warn
    }

    /// The decision-log reason for a rollout that the gate holds or warns about.
    fn words(&self) -> String {
        match (self.outcome, self.policy) {
            ("pass", _) => format!("error budget ok: {}", self.detail),
            (_, BudgetPolicy::Warn) => {
                format!(
                    "error budget warning (policy warn, starting anyway): {}",
                    self.detail
                )
            }
            (_, BudgetPolicy::Block) => format!(
                "held by the error-budget gate (policy block): {}; it starts when the budget is back above {:.0}%",
                self.detail,
                100.0 * self.min_remaining
            ),
            (_, BudgetPolicy::RequireOverride) => format!(
                "held by the error-budget gate (policy require_override): {}; start it with `todoctl canary start NAME --override \"reason\"` or wait for the budget to recover above {:.0}%",
                self.detail,
                100.0 * self.min_remaining
            ),
        }
    }
}

/// Evaluate the gate of `spec` now; `None` when the spec has no `budget:`.
pub(super) async fn evaluate_gate(
    prom: &crate::prom::PromClient,
    slos: &[slo::Slo],
    spec: &CanarySpec,
) -> Option<GateEvaluation> {
    let gate = spec.budget.as_ref()?;
    let at = now_secs();
    let mut out = GateEvaluation {
        policy: gate.policy,
        min_remaining: gate.min_remaining,
        evaluated_at: at,
        slos: Vec::new(),
        lowest_remaining: None,
        outcome: "unknown",
        detail: String::new(),
    };
    let targets: Vec<&slo::Slo> = slos.iter().filter(|s| s.service == spec.target).collect();
    if targets.is_empty() {
        out.detail = format!(
            "no SLO of service '{}' is loaded (the observer's slo_dir), so its budget is unknown",
            spec.target
        );
        return Some(out);
    }
    let mut unknown = Vec::new();
    for s in targets {
        match evaluate(prom, s, at).await {
            Ok(v) => {
                if v.budget_remaining.is_none() {
                    unknown.push(format!("{}: no figure", s.name));
                }
                out.slos.push(SloBudget {
                    slo: v.name,
                    objective: v.objective,
                    period: v.period,
                    period_error_ratio: v.period_error_ratio,
                    budget_remaining: v.budget_remaining,
                    state: v.state,
                });
            }
            Err(e) => {
                unknown.push(format!("{}: {e}", s.name));
                out.slos.push(SloBudget {
                    slo: s.name.clone(),
                    objective: s.objective,
                    period: s.window.words(),
                    period_error_ratio: None,
                    budget_remaining: None,
                    state: SloState::BackendDown,
                });
            }
        }
    }
    let lowest = out
        .slos
        .iter()
        .filter_map(|b| b.budget_remaining.map(|r| (r, b.slo.as_str())))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    out.lowest_remaining = lowest.map(|(r, _)| r);
    match lowest {
        Some((r, name)) if r < gate.min_remaining => {
            out.outcome = "below";
            out.detail = format!(
                "SLO {name} has {:.1}% of its error budget left, below the policy's {:.0}%",
                100.0 * r,
                100.0 * gate.min_remaining
            );
        }
        _ if !unknown.is_empty() => {
            out.detail = format!("budget unknown ({})", unknown.join("; "));
        }
        Some((r, name)) => {
            out.outcome = "pass";
            out.detail = format!(
                "lowest is SLO {name} with {:.1}% left (policy needs {:.0}%)",
                100.0 * r,
                100.0 * gate.min_remaining
            );
        }
        None => out.detail = "budget unknown".into(),
    }
    Some(out)
}

/// The reason of a new rollout's first decision: `reason` (the start, with
/// any driver error) with the gate's words, or, when the gate holds it, the
/// gate's words and any driver error (`driver`).
pub(super) fn start_reason(
    gate: Option<&GateEvaluation>,
    reason: String,
    driver: Option<&String>,
) -> String {
    match gate {
        Some(g) if g.holds() => match driver {
            Some(why) => format!("{}; driver: {why} (retrying)", g.words()),
            None => g.words(),
        },
        Some(g) => format!("{reason}; {}", g.words()),
        None => reason,
    }
}

impl Controller {
    /// The gate of `spec` now (`None` without a `budget:` block).
    pub(super) async fn budget_gate(&self, spec: &CanarySpec) -> Option<GateEvaluation> {
        evaluate_gate(&self.prom, &self.slos, spec).await
    }

    /// A blocked rollout: once per interval, evaluate the gate again and
    /// start the rollout when it passes (or the spec lost its `budget:`).
    /// A still-blocked rollout adds nothing to the log.
    pub(super) async fn recheck_gate(&self, loaded: &Loaded, e: &mut Entry) -> anyhow::Result<()> {
        let spec = &loaded.spec;
        let interval = std::time::Duration::from_secs(spec.interval_secs);
        if e.last_tick.is_some_and(|t| t.elapsed() < interval) {
            return Ok(());
        }
        e.last_tick = Some(std::time::Instant::now());
        let gate = self.budget_gate(spec).await;
        if gate.as_ref().is_some_and(GateEvaluation::holds) {
            return Ok(());
        }
        let reason = match &gate {
            Some(g) => format!("the error budget allows the rollout now: {}", g.words()),
            None => "the spec no longer has a budget policy".to_string(),
        };
        self.start_blocked(loaded, e, CONTROLLER_ACTOR, reason, json!({"budget": gate}))
            .await
    }

    /// Move a blocked rollout to its first step and record why.
    pub(super) async fn start_blocked(
        &self,
        loaded: &Loaded,
        e: &mut Entry,
        actor: &str,
        reason: String,
        inputs: serde_json::Value,
    ) -> anyhow::Result<()> {
        let spec = &loaded.spec;
        e.rollout.phase = Phase::Progressing;
        e.rollout.weight = super::controller::first_weight(spec, &e.rollout.analysis);
        e.baseline = None;
        e.last_tick = None;
        e.generation += 1;
        let applied = apply_weight(loaded, e, None).await;
        let rec = NewDecision {
            actor: actor.to_string(),
            action: "start",
            verdict: "hold".into(),
            reason: match &applied {
                Ok(()) => format!("{reason}; starting at {}%", e.rollout.weight),
                Err(why) => format!(
                    "{reason}; starting at {}%; driver: {why} (retrying)",
                    e.rollout.weight
                ),
            },
            step_percent: 0,
            inputs,
            observed: json!({}),
            statistic: json!({}),
            trace_id: None,
        };
        self.persist(e, rec).await?;
        tracing::info!(canary = %spec.name, version = %spec.canary_version, %actor, "blocked rollout started");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(outcome: &'static str, policy: BudgetPolicy) -> GateEvaluation {
        GateEvaluation {
            policy,
            min_remaining: 0.25,
            evaluated_at: 0.0,
            slos: Vec::new(),
            lowest_remaining: Some(0.1),
            outcome,
            detail: "d".into(),
        }
    }

    #[test]
    fn warn_never_holds_and_pass_never_holds() {
        for outcome in ["pass", "below", "unknown"] {
            assert!(!eval(outcome, BudgetPolicy::Warn).holds());
        }
        for p in [BudgetPolicy::Block, BudgetPolicy::RequireOverride] {
            assert!(!eval("pass", p).holds());
            assert!(eval("below", p).holds());
            assert!(eval("unknown", p).holds(), "fails closed");
        }
        let r = start_reason(
            Some(&eval("below", BudgetPolicy::Warn)),
            "start".into(),
            None,
        );
        assert!(r.starts_with("start; error budget warning"), "{r}");
        let refused = "connection refused".to_string();
        let r = start_reason(
            Some(&eval("below", BudgetPolicy::RequireOverride)),
            "x".into(),
            Some(&refused),
        );
        assert!(r.contains("--override") && r.contains("refused"), "{r}");
    }

    /// A rollout the gate held (or an override started) takes the first
    /// step's share, except blue-green, whose green takes no user traffic
    /// before the switch.
    #[test]
    fn a_released_blue_green_rollout_takes_no_user_traffic() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canary/");
        for (file, want) in [
            ("command-service.yaml", None),
            ("examples/command-service-blue-green.yaml", Some(0)),
        ] {
            let path = format!("{root}{file}");
            let text = std::fs::read_to_string(&path).expect("example spec");
            let spec = CanarySpec::from_yaml(&path, &text).expect("valid example");
            let state = canary::State::new(&spec);
            let first = super::super::controller::first_weight(&spec, &state);
            match want {
                Some(w) => assert_eq!(first, w, "{file}"),
                None => assert_eq!(first, state.percent(&spec), "{file}"),
            }
            assert!(first < 100, "{file}: a start never sends all traffic");
        }
    }
}
