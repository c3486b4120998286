//! One analysis interval: counts in, decision out.

use serde::Serialize;

use crate::{CanarySpec, Sprt};

/// What one side served during an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Observation {
    pub requests: u64,
    /// 5xx responses.
    pub errors: u64,
    /// Responses slower than the latency threshold.
    pub slow: u64,
}

/// What the metrics backend said about an interval.
#[derive(Debug, Clone, PartialEq)]
pub enum Interval {
    Data {
        stable: Observation,
        canary: Observation,
    },
    /// Prometheus did not answer (or answered with an error).
    BackendDown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Move to the next step.
    Promote,
    /// The last step passed: the canary is the new stable.
    Complete,
    /// Not enough evidence yet: keep the current weights.
    Hold,
    Rollback,
    /// No data or no metrics backend: keep weights, never roll back for it.
    Pause,
}

/// Everything behind a decision, for the decision log and `canary explain`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: String,
    /// Canary traffic percentage during the interval.
    pub step_percent: u32,
    pub canary_share: f64,
    pub stable: Observation,
    pub canary: Observation,
    pub error_llr: f64,
    pub latency_llr: f64,
    /// Rollback boundary of both tests in this step: `ln((1 − β) / α_step)`.
    pub boundary: f64,
    /// The canary's error ratio over the error budget, this interval.
    pub canary_burn_rate: Option<f64>,
    pub canary_requests_in_step: u64,
}

/// The rollout's analysis state between intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct State {
    pub step: usize,
    pub errors: Sprt,
    pub latency: Sprt,
    pub canary_requests_in_step: u64,
    pub canary_errors_in_step: u64,
    pub finished: bool,
}

/// z of the one-sided lower confidence bound used by the burn-rate guard
/// (99.95%): the guard fires when even the optimistic error ratio burns too
/// fast, so one unlucky failure among a few requests cannot roll back.
pub const BURN_GUARD_Z: f64 = 3.29;

/// Wilson score lower bound of a binomial proportion.
pub fn wilson_lower(successes: u64, n: u64, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

impl State {
    pub fn new(spec: &CanarySpec) -> Self {
        let (errors, latency) = fresh_tests(spec);
        Self {
            step: 0,
            errors,
            latency,
            canary_requests_in_step: 0,
            canary_errors_in_step: 0,
            finished: false,
        }
    }
}

fn fresh_tests(spec: &CanarySpec) -> (Sprt, Sprt) {
    let a = &spec.analysis;
    // Two tests per step, each gets its share of α (union bound over steps and tests).
    let alpha_step = a.alpha / (2.0 * spec.steps.len() as f64);
    (
        Sprt::new(alpha_step, a.beta, a.ratio),
        Sprt::new(alpha_step, a.beta, a.ratio),
    )
}

/// Analyse one interval and advance `state`.
pub fn analyze(spec: &CanarySpec, state: &mut State, interval: &Interval) -> Decision {
    let step_percent = spec.steps.get(state.step).copied().unwrap_or(100);
    let mut d = Decision {
        verdict: Verdict::Hold,
        reason: String::new(),
        step_percent,
        canary_share: 0.0,
        stable: Observation::default(),
        canary: Observation::default(),
        error_llr: state.errors.llr,
        latency_llr: state.latency.llr,
        boundary: state.errors.upper(),
        canary_burn_rate: None,
        canary_requests_in_step: state.canary_requests_in_step,
    };
    if state.finished {
        d.verdict = Verdict::Complete;
        d.reason = "the rollout already finished".into();
        return d;
    }
    let (stable, canary) = match interval {
        Interval::BackendDown(why) => {
            d.verdict = Verdict::Pause;
            d.reason = format!("metrics backend unavailable ({why}): paused, weights unchanged");
            return d;
        }
        Interval::Data { stable, canary } => (*stable, *canary),
    };
    d.stable = stable;
    d.canary = canary;
    if canary.requests == 0 {
        d.verdict = Verdict::Pause;
        d.reason = "no canary traffic this interval: paused, weights unchanged".into();
        return d;
    }
    let share = canary.requests as f64 / (canary.requests + stable.requests) as f64;
    d.canary_share = share;
    state.errors.update(share, canary.errors, stable.errors);
    state.latency.update(share, canary.slow, stable.slow);
    state.canary_requests_in_step += canary.requests;
    state.canary_errors_in_step += canary.errors;
    d.error_llr = state.errors.llr;
    d.latency_llr = state.latency.llr;
    d.canary_requests_in_step = state.canary_requests_in_step;
    let budget = 1.0 - spec.analysis.slo_objective;
    let burn = (state.canary_errors_in_step as f64 / state.canary_requests_in_step as f64) / budget;
    let burn_lower = wilson_lower(
        state.canary_errors_in_step,
        state.canary_requests_in_step,
        BURN_GUARD_Z,
    ) / budget;
    d.canary_burn_rate = Some(burn);

    if burn_lower >= spec.analysis.max_burn_rate {
        d.verdict = Verdict::Rollback;
        d.reason = format!(
            "canary burns its error budget at {burn:.1}× (at least {burn_lower:.1}× with 99.95% confidence; guard {:.1}×): {} of {} requests failed in this step",
            spec.analysis.max_burn_rate, state.canary_errors_in_step, state.canary_requests_in_step
        );
    } else if state.errors.rejects() {
        d.verdict = Verdict::Rollback;
        d.reason = format!(
            "errors: canary worse than stable (log-likelihood ratio {:.2} ≥ boundary {:.2})",
            state.errors.llr,
            state.errors.upper()
        );
    } else if state.latency.rejects() {
        d.verdict = Verdict::Rollback;
        d.reason = format!(
            "latency: canary slower than stable above {} s (log-likelihood ratio {:.2} ≥ boundary {:.2})",
            spec.analysis.latency_threshold_seconds,
            state.latency.llr,
            state.latency.upper()
        );
    } else if state.canary_requests_in_step < spec.analysis.min_requests {
        d.verdict = Verdict::Hold;
        d.reason = format!(
            "collecting evidence at {step_percent}%: {} of {} canary requests",
            state.canary_requests_in_step, spec.analysis.min_requests
        );
    } else if state.step + 1 >= spec.steps.len() {
        state.finished = true;
        d.verdict = Verdict::Complete;
        d.reason = format!(
            "passed the last step ({step_percent}%) with {} canary requests",
            state.canary_requests_in_step
        );
    } else {
        d.verdict = Verdict::Promote;
        d.reason = format!(
            "no evidence the canary is worse after {} canary requests at {step_percent}%; next step {}%",
            state.canary_requests_in_step,
            spec.steps[state.step + 1]
        );
        state.step += 1;
        let (e, l) = fresh_tests(spec);
        state.errors = e;
        state.latency = l;
        state.canary_requests_in_step = 0;
        state.canary_errors_in_step = 0;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CanarySpec {
        CanarySpec::from_yaml(
            "t.yaml",
            "name: c\ntarget: command-service\nstable: s\ncanary: c\n",
        )
        .expect("valid")
    }

    fn obs(requests: u64, errors: u64) -> Observation {
        Observation {
            requests,
            errors,
            slow: 0,
        }
    }

    #[test]
    fn healthy_canary_walks_every_step_to_complete() {
        let s = spec();
        let mut st = State::new(&s);
        let mut verdicts = vec![];
        for _ in 0..40 {
            let d = analyze(
                &s,
                &mut st,
                &Interval::Data {
                    stable: obs(1000, 1),
                    canary: obs(120, 0),
                },
            );
            verdicts.push(d.verdict);
            if d.verdict == Verdict::Complete {
                break;
            }
        }
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Promote).count(),
            4,
            "{verdicts:?}"
        );
        assert_eq!(verdicts.last(), Some(&Verdict::Complete));
    }

    #[test]
    fn low_traffic_holds_instead_of_failing() {
        let s = spec();
        let mut st = State::new(&s);
        let d = analyze(
            &s,
            &mut st,
            &Interval::Data {
                stable: obs(100, 0),
                canary: obs(5, 0),
            },
        );
        assert_eq!(d.verdict, Verdict::Hold, "{}", d.reason);
    }

    #[test]
    fn monitoring_outage_and_no_data_pause_never_roll_back() {
        let s = spec();
        let mut st = State::new(&s);
        let before = st.clone();
        assert_eq!(
            analyze(
                &s,
                &mut st,
                &Interval::BackendDown("connection refused".into())
            )
            .verdict,
            Verdict::Pause
        );
        assert_eq!(
            analyze(
                &s,
                &mut st,
                &Interval::Data {
                    stable: obs(0, 0),
                    canary: obs(0, 0)
                }
            )
            .verdict,
            Verdict::Pause
        );
        assert_eq!(st, before, "pauses change nothing");
    }

    #[test]
    fn ten_percent_errors_roll_back() {
        let s = spec();
        let mut st = State::new(&s);
        let mut last = None;
        for _ in 0..20 {
            let d = analyze(
                &s,
                &mut st,
                &Interval::Data {
                    stable: obs(190, 0),
                    canary: obs(10, 1),
                },
            );
            if d.verdict == Verdict::Rollback {
                last = Some(d);
                break;
            }
        }
        let d = last.expect("rolled back");
        assert!(
            d.reason.starts_with("errors") || d.reason.contains("burns"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn one_unlucky_failure_among_few_requests_does_not_trip_the_guard() {
        let s = spec();
        let mut st = State::new(&s);
        let d = analyze(
            &s,
            &mut st,
            &Interval::Data {
                stable: obs(150, 0),
                canary: obs(50, 1),
            },
        );
        assert_ne!(d.verdict, Verdict::Rollback, "{}", d.reason);
    }

    #[test]
    fn wilson_bound_is_below_the_ratio_and_tightens() {
        assert_eq!(wilson_lower(0, 100, BURN_GUARD_Z), 0.0);
        let loose = wilson_lower(1, 10, BURN_GUARD_Z);
        let tight = wilson_lower(100, 1000, BURN_GUARD_Z);
        assert!(
            loose < 0.1 && tight < 0.1 && tight > loose,
            "{loose} {tight}"
        );
    }

    #[test]
    fn absolute_guard_catches_a_canary_when_stable_fails_too() {
        let s = spec();
        let mut st = State::new(&s);
        // Both sides fail alike (no relative difference), but the canary alone
        // burns the budget far faster than the page threshold.
        let d = analyze(
            &s,
            &mut st,
            &Interval::Data {
                stable: obs(1000, 100),
                canary: obs(80, 8),
            },
        );
        assert_eq!(d.verdict, Verdict::Rollback, "{}", d.reason);
        assert!(d.reason.contains("burns"));
    }
}
