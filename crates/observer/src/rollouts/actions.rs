//! Operator actions (`promote`, `pause`, `resume`, `abort`, `rollback`,
//! and `start` for a rollout the error-budget gate holds):
//! effective at once, under the controller's lock, and they bump the
//! rollout's generation so an analysis in flight is dropped.

use rollout::Side;
use serde_json::json;

use super::controller::{Controller, apply_weight, trace_id_of, view};
use super::store::NewDecision;
use super::{Action, CanaryView, Phase};

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

impl Controller {
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
        if phase == Phase::Blocked
            && matches!(action, Action::Promote | Action::Resume | Action::Pause)
        {
            return Err(ActError::Conflict(format!(
                "cannot {}: the rollout of {} is held by the error-budget gate (see `todoctl canary explain`); with policy require_override run `todoctl canary start {name} --override \"reason\"`, or abort it",
                action.as_str(),
                e.rollout.canary_version
            )));
        }
        let before = e.rollout.weight;
        let mut inputs = json!({"note": note});
        let reason = match action {
            Action::Start => {
                if phase != Phase::Blocked {
                    return refuse("start");
                }
                let gate = self.budget_gate(spec).await;
                let why = note.map(str::trim).filter(|n| !n.is_empty());
                match (spec.budget.as_ref().map(|b| b.policy), why) {
                    (Some(canary::BudgetPolicy::Block), _) => {
                        return Err(ActError::Conflict(format!(
                            "cannot start {}: the spec's budget policy is block, which no override lifts; it starts by itself when the error budget recovers (or set policy: require_override)",
                            e.rollout.canary_version
                        )));
                    }
                    (Some(_), None) => {
                        // 409, not 400: the same body starts a rollout that
                        // is not held by a require_override policy.
                        return Err(ActError::Conflict(
                            "field 'reason': an override of the error-budget gate needs a reason (todoctl canary start NAME --override \"reason\")".into(),
                        ));
                    }
                    _ => {}
                }
                inputs = json!({"note": note, "override": true, "budget": gate});
                let detail = gate
                    .as_ref()
                    .map_or("no budget policy".into(), |g| g.detail.clone());
                e.rollout.phase = Phase::Progressing;
                e.rollout.weight = super::controller::first_weight(spec, &e.rollout.analysis);
                e.baseline = None;
                e.last_tick = None;
                format!(
                    "started by override while the error-budget gate held it ({detail}): canary takes {}%",
                    e.rollout.weight
                )
            }
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
                // Blue-green after blue's scale-down: blue back in service
                // before it gets the traffic (not instant then: within
                // scale_down_delay_secs blue never left).
                let blue_down = e
                    .rollout
                    .blue_green
                    .as_ref()
                    .is_some_and(|s| s.scaled_down.iter().any(|d| d == Side::Stable.as_str()));
                if blue_down {
                    loaded
                        .driver
                        .scale_up(Side::Stable)
                        .await
                        .map_err(|why| ActError::Driver(why.to_string()))?;
                    if let Some(s) = e.rollout.blue_green.as_mut() {
                        s.scaled_down.retain(|d| d != Side::Stable.as_str());
                    }
                }
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
        let reason = match e.note_switch(spec) {
            Some(switched) => format!("{reason}; {switched}"),
            None => reason,
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
                Action::Start => "hold",
            }
            .into(),
            reason: match &applied {
                Ok(()) => reason,
                Err(why) => format!("{reason}; driver: {why} (retrying)"),
            },
            step_percent: before,
            inputs,
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
}
