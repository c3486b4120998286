//! One analysis interval: counts in, decision out.

use serde::{Deserialize, Serialize};

use crate::sprt::RateSprt;
use crate::{CanarySpec, Sprt, Strategy};

/// What one side served during an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub requests: u64,
    /// 5xx responses.
    pub errors: u64,
    /// Responses slower than the latency threshold.
    pub slow: u64,
}

/// What the canary's own consumer group did during an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerObservation {
    /// Lag of the canary's group in seconds (`None`: the lag tailer has no
    /// figure for it, which is not evidence either way).
    pub lag_seconds: Option<f64>,
    /// Records the canary consumed during the interval.
    pub consumed: u64,
    /// Records the canary sent to the dead-letter topic during the interval.
    pub dead_lettered: u64,
}

/// What the metrics backend said about an interval.
#[derive(Debug, Clone, PartialEq)]
pub enum Interval {
    Data {
        stable: Observation,
        canary: Observation,
        /// Present when the spec has `analysis.consumer`.
        consumer: Option<ConsumerObservation>,
    },
    /// Prometheus did not answer (or answered with an error).
    BackendDown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Promote => "promote",
            Verdict::Complete => "complete",
            Verdict::Hold => "hold",
            Verdict::Rollback => "rollback",
            Verdict::Pause => "pause",
        }
    }
    pub const ALL: [Verdict; 5] = [
        Verdict::Promote,
        Verdict::Complete,
        Verdict::Hold,
        Verdict::Rollback,
        Verdict::Pause,
    ];
}

/// Everything behind a decision, for the decision log and `canary explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Rollback boundary of the tests: `ln((1 − β) / α_test)`.
    pub boundary: f64,
    /// Log-likelihood ratio of the sequential burn test (same boundary).
    #[serde(default)]
    pub burn_llr: f64,
    /// The canary's error ratio over the error budget, this interval.
    pub canary_burn_rate: Option<f64>,
    pub canary_requests_in_step: u64,
    /// The consumer guards' inputs, when the spec has them.
    #[serde(default)]
    pub consumer: Option<ConsumerObservation>,
    /// Dead-lettered share of the canary's records in this step, if it consumes.
    #[serde(default)]
    pub canary_dlq_ratio: Option<f64>,
}

/// The rollout's analysis state between intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub step: usize,
    /// Relative tests, pooled over the whole rollout.
    pub errors: Sprt,
    pub latency: Sprt,
    /// The sequential burn test's log-likelihood ratio, pooled over the
    /// whole rollout (a state stored before it existed reads as 0).
    #[serde(default)]
    pub burn_llr: f64,
    pub canary_requests_in_step: u64,
    pub canary_errors_in_step: u64,
    #[serde(default)]
    pub consumed_in_step: u64,
    #[serde(default)]
    pub dead_lettered_in_step: u64,
    /// Canary requests of this step served in intervals when the stable side
    /// served none: counted by the absolute guards, not toward
    /// `min_requests` (nothing was compared).
    #[serde(default)]
    pub uncompared_requests_in_step: u64,
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
            burn_llr: 0.0,
            canary_requests_in_step: 0,
            canary_errors_in_step: 0,
            consumed_in_step: 0,
            dead_lettered_in_step: 0,
            uncompared_requests_in_step: 0,
            finished: false,
        }
    }

    /// Move to the next step (after a promotion, automatic or by an
    /// operator), keeping the sequential tests' evidence and starting the
    /// step's counts afresh. Past the last step the rollout is finished.
    pub fn advance(&mut self, spec: &CanarySpec) {
        if self.step + 1 >= spec.steps.len() {
            self.finished = true;
            return;
        }
        *self = Self {
            step: self.step + 1,
            errors: self.errors,
            latency: self.latency,
            burn_llr: self.burn_llr,
            ..Self::new(spec)
        };
    }

    /// Canary traffic percentage of the current step (100 once finished).
    pub fn percent(&self, spec: &CanarySpec) -> u32 {
        if self.finished {
            100
        } else {
            spec.steps.get(self.step).copied().unwrap_or(100)
        }
    }
}

/// The sequential tests that share α: relative errors, relative latency and
/// the burn test. Each runs once over the whole rollout (evidence is pooled
/// across steps), so α is split between them only (union bound), not over
/// steps.
pub const SEQUENTIAL_TESTS: f64 = 3.0;

/// α of each sequential test.
pub fn alpha_per_test(spec: &CanarySpec) -> f64 {
    spec.analysis.alpha / SEQUENTIAL_TESTS
}

/// The burn test of `spec`: H0 the canary burns its budget at most 1×,
/// H1 it burns `sequential_burn_rate`×.
pub fn burn_test(spec: &CanarySpec) -> RateSprt {
    let a = &spec.analysis;
    let budget = 1.0 - a.slo_objective;
    RateSprt {
        p0: budget,
        // Capped halfway to 1 so that H1 stays a proper error ratio above p0.
        p1: (a.sequential_burn_rate * budget).min(0.5 + budget / 2.0),
        alpha: alpha_per_test(spec),
        beta: a.beta,
    }
}

fn fresh_tests(spec: &CanarySpec) -> (Sprt, Sprt) {
    let a = &spec.analysis;
    let alpha = alpha_per_test(spec);
    (
        Sprt::new(alpha, a.beta, a.ratio),
        Sprt::new(alpha, a.beta, a.ratio),
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
        burn_llr: state.burn_llr,
        canary_burn_rate: None,
        canary_requests_in_step: state.canary_requests_in_step,
        consumer: None,
        canary_dlq_ratio: None,
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
        Interval::Data {
            stable,
            canary,
            consumer,
        } => {
            d.consumer = *consumer;
            (*stable, *canary)
        }
    };
    d.stable = stable;
    d.canary = canary;
    if canary.requests == 0 {
        d.verdict = Verdict::Pause;
        d.reason = "no canary traffic this interval: paused, weights unchanged".into();
        return d;
    }
    // An interval in which stable served nothing holds no comparison (all
    // the traffic is the canary's): it cannot pass a step, only the absolute
    // guards below can act on it. The canary strategy's last step (100%)
    // has no stable traffic by design and is judged on those guards alone.
    let uncompared =
        stable.requests == 0 && (spec.strategy == Strategy::BlueGreen || step_percent < 100);
    let share = canary.requests as f64 / (canary.requests + stable.requests) as f64;
    d.canary_share = share;
    if uncompared {
        state.uncompared_requests_in_step += canary.requests;
    } else {
        state.errors.update(share, canary.errors, stable.errors);
        state.latency.update(share, canary.slow, stable.slow);
    }
    let burn_test = burn_test(spec);
    state.burn_llr = burn_test.update(state.burn_llr, canary.requests, canary.errors);
    d.burn_llr = state.burn_llr;
    state.canary_requests_in_step += canary.requests;
    state.canary_errors_in_step += canary.errors;
    let compared = state.canary_requests_in_step - state.uncompared_requests_in_step;
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
    // Consumer guards: the canary's own group must keep up and must not
    // dead-letter more than its bound (lower confidence bound, like the burn
    // guard, so a single poison record among a few cannot roll back).
    let mut consumer_failure = None;
    if let (Some(check), Some(c)) = (&spec.analysis.consumer, d.consumer) {
        state.consumed_in_step += c.consumed;
        state.dead_lettered_in_step += c.dead_lettered;
        if state.consumed_in_step > 0 {
            let ratio = state.dead_lettered_in_step as f64 / state.consumed_in_step as f64;
            d.canary_dlq_ratio = Some(ratio);
            let lower = wilson_lower(
                state.dead_lettered_in_step,
                state.consumed_in_step,
                BURN_GUARD_Z,
            );
            if lower >= check.max_dlq_ratio {
                consumer_failure = Some(format!(
                    "consumer: group {} dead-letters {:.2}% of its records (at least {:.2}% with 99.95% confidence; bound {:.2}%)",
                    check.group,
                    100.0 * ratio,
                    100.0 * lower,
                    100.0 * check.max_dlq_ratio
                ));
            }
        }
        if let Some(lag) = c.lag_seconds
            && lag > check.max_lag_seconds
        {
            consumer_failure = Some(format!(
                "consumer: group {} lags {lag:.1} s behind (bound {:.1} s)",
                check.group, check.max_lag_seconds
            ));
        }
    }

    if let Some(why) = consumer_failure {
        d.verdict = Verdict::Rollback;
        d.reason = why;
    } else if burn_lower >= spec.analysis.max_burn_rate {
        d.verdict = Verdict::Rollback;
        d.reason = format!(
            "canary burns its error budget at {burn:.1}× (at least {burn_lower:.1}× with 99.95% confidence; guard {:.1}×): {} of {} requests failed in this step",
            spec.analysis.max_burn_rate, state.canary_errors_in_step, state.canary_requests_in_step
        );
    } else if state.burn_llr >= burn_test.upper() {
        d.verdict = Verdict::Rollback;
        d.reason = format!(
            "errors: the canary burns its error budget (sequential burn test: log-likelihood ratio {:.2} ≥ boundary {:.2} for {:.0}× against 1×); {} of {} requests failed in this step",
            state.burn_llr,
            burn_test.upper(),
            spec.analysis.sequential_burn_rate,
            state.canary_errors_in_step,
            state.canary_requests_in_step
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
    } else if uncompared {
        d.verdict = Verdict::Hold;
        d.reason = format!(
            "no stable traffic this interval to compare the canary with: holding at {step_percent}% ({compared} of {} compared canary requests)",
            spec.analysis.min_requests
        );
    } else if compared < spec.analysis.min_requests {
        d.verdict = Verdict::Hold;
        d.reason = format!(
            "collecting evidence at {step_percent}%: {compared} of {} canary requests",
            spec.analysis.min_requests
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
        state.advance(spec);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CanarySpec {
        CanarySpec::from_yaml(
            "t.yaml",
            "name: c\ntarget: command-service\nstable: s\ncanary: c\nstable_version: a\ncanary_version: b\n",
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
                    consumer: None,
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

    fn slow(requests: u64) -> Observation {
        Observation {
            requests,
            errors: 0,
            slow: requests,
        }
    }

    fn data(stable: Observation, canary: Observation) -> Interval {
        Interval::Data {
            stable,
            canary,
            consumer: None,
        }
    }

    /// A slow canary with no stable traffic to compare it with is held, never
    /// passed; once stable serves again, the latency test rolls it back.
    fn no_baseline_holds_then_latency_rolls_back(s: &CanarySpec) {
        let mut st = State::new(s);
        for _ in 0..40 {
            let d = analyze(s, &mut st, &data(obs(0, 0), slow(120)));
            assert_eq!(d.verdict, Verdict::Hold, "{}", d.reason);
            assert!(d.reason.starts_with("no stable traffic"), "{}", d.reason);
        }
        let verdict = (0..40)
            .map(|_| analyze(s, &mut st, &data(obs(1000, 0), slow(120))))
            .find(|d| d.verdict != Verdict::Hold)
            .expect("a verdict");
        assert_eq!(verdict.verdict, Verdict::Rollback, "{}", verdict.reason);
        assert!(verdict.reason.starts_with("latency"), "{}", verdict.reason);
    }

    #[test]
    fn a_canary_step_without_stable_traffic_is_held_not_passed() {
        no_baseline_holds_then_latency_rolls_back(&spec());
    }

    #[test]
    fn blue_green_without_blue_traffic_is_held_not_switched() {
        let s = CanarySpec::from_yaml(
            "t.yaml",
            "name: c\ntarget: command-service\nstable: command/stable\ncanary: command/canary\nstable_version: a\ncanary_version: b\n\
             driver:\n  haproxy:\n    runtime_api: 127.0.0.1:9999\n\
             strategy: blue_green\nblue_green:\n  preview: preview/canary\n  load:\n    url: http://127.0.0.1:8090\n",
        )
        .expect("valid");
        assert_eq!(s.steps, [100]);
        no_baseline_holds_then_latency_rolls_back(&s);
    }

    #[test]
    fn the_canary_strategys_last_step_needs_no_stable_traffic() {
        let s = spec();
        let mut st = State::new(&s);
        while st.percent(&s) < 100 {
            analyze(&s, &mut st, &data(obs(1000, 1), obs(120, 0)));
        }
        let d = (0..10)
            .map(|_| analyze(&s, &mut st, &data(obs(0, 0), obs(120, 0))))
            .find(|d| d.verdict != Verdict::Hold)
            .expect("a verdict");
        assert_eq!(d.verdict, Verdict::Complete, "{}", d.reason);
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
                consumer: None,
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
                    canary: obs(0, 0),
                    consumer: None,
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
                    consumer: None,
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
    fn two_early_failures_at_low_traffic_roll_back() {
        // 10 requests/s at a 10% step: 10 canary requests per interval, one
        // failing in each of the first two (5% of requests).
        let s = spec();
        let mut st = State::new(&s);
        let data = Interval::Data {
            stable: obs(90, 0),
            canary: obs(10, 1),
            consumer: None,
        };
        let first = analyze(&s, &mut st, &data);
        assert_ne!(first.verdict, Verdict::Rollback, "{}", first.reason);
        let d = analyze(&s, &mut st, &data);
        assert_eq!(d.verdict, Verdict::Rollback, "{}", d.reason);
        assert!(d.reason.contains("sequential burn test"), "{}", d.reason);
    }

    #[test]
    fn evidence_carries_over_a_promotion() {
        let s = spec();
        let mut st = State::new(&s);
        analyze(
            &s,
            &mut st,
            &Interval::Data {
                stable: obs(90, 0),
                canary: obs(10, 1),
                consumer: None,
            },
        );
        let (errors, burn) = (st.errors.llr, st.burn_llr);
        assert!(errors > 0.0 && burn > 0.0);
        st.advance(&s);
        assert_eq!(st.step, 1);
        assert_eq!((st.errors.llr, st.burn_llr), (errors, burn));
        assert_eq!(st.canary_requests_in_step, 0, "the step's counts restart");
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
                consumer: None,
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
                consumer: None,
            },
        );
        assert_eq!(d.verdict, Verdict::Rollback, "{}", d.reason);
        assert!(d.reason.contains("burns"));
    }

    #[test]
    fn consumer_guards_roll_back_on_lag_and_dead_letters() {
        let mut s = spec();
        s.analysis.consumer = Some(crate::ConsumerCheck {
            group: "query-service-canary".into(),
            max_lag_seconds: 30.0,
            max_dlq_ratio: 0.01,
        });
        let data = |c: ConsumerObservation| Interval::Data {
            stable: obs(200, 0),
            canary: obs(20, 0),
            consumer: Some(c),
        };
        let mut st = State::new(&s);
        let ok = ConsumerObservation {
            lag_seconds: Some(2.0),
            consumed: 100,
            dead_lettered: 0,
        };
        assert_ne!(analyze(&s, &mut st, &data(ok)).verdict, Verdict::Rollback);
        let lagging = ConsumerObservation {
            lag_seconds: Some(45.0),
            ..ok
        };
        let d = analyze(&s, &mut st, &data(lagging));
        assert_eq!(d.verdict, Verdict::Rollback, "{}", d.reason);
        assert!(d.reason.contains("lags"), "{}", d.reason);

        let mut st = State::new(&s);
        let poisoned = ConsumerObservation {
            lag_seconds: None,
            consumed: 200,
            dead_lettered: 40,
        };
        let d = analyze(&s, &mut st, &data(poisoned));
        assert_eq!(d.verdict, Verdict::Rollback, "{}", d.reason);
        assert!(d.reason.contains("dead-letters"), "{}", d.reason);
        // One poison record among a few is not enough.
        let mut st = State::new(&s);
        let one = ConsumerObservation {
            lag_seconds: None,
            consumed: 20,
            dead_lettered: 1,
        };
        assert_ne!(analyze(&s, &mut st, &data(one)).verdict, Verdict::Rollback);
    }

    #[test]
    fn state_round_trips_through_json_and_advance_finishes() {
        let s = spec();
        let mut st = State::new(&s);
        st.errors.llr = 1.5;
        let back: State =
            serde_json::from_str(&serde_json::to_string(&st).expect("json")).expect("parse");
        assert_eq!(back, st);
        for _ in 0..s.steps.len() {
            st.advance(&s);
        }
        assert!(st.finished);
        assert_eq!(st.percent(&s), 100);
    }
}
