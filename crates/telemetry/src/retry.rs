//! Retries with jittered exponential backoff, and circuit breakers whose
//! state is exported as metrics.
//!
//! A [`CircuitBreaker`] guards calls to one dependency (Postgres, the broker,
//! Prometheus, Alertmanager, HAProxy). After `failure_threshold` failures in
//! a row it opens: calls fail at once (callers answer 503 with `Retry-After`
//! or pause) instead of each waiting for a timeout. After `open_for` one
//! probe call is let through (half-open); its success closes the breaker,
//! its failure opens it again.
//!
//! Why here and not in `service-kit`: neither needs HTTP, and the IO crates
//! below the services need them (`todo_store::audit` paces its retries with
//! [`backoff`]), while a breaker is defined by the signals it exports
//! ([`BreakerMetrics`]: `circuit_breaker_state`, `dependency_calls_total`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::{
    Counter, DependencyLabels, DependencyOutcomeLabels, Family, Gauge, MetricsRegistry,
};
use contracts::metrics as m;

/// `base · 2^attempt`, capped at `max`, with full jitter in `[d/2, d]`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let d = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = d / 2;
    half + half.mul_f64(rand_unit())
}

fn rand_unit() -> f64 {
    // A cheap, good-enough jitter source without another dependency: the
    // sub-microsecond part of the clock, scrambled.
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// Calls so far, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerCounts {
    pub ok: u64,
    pub failed: u64,
    /// Refused without calling because the breaker was open.
    pub rejected: u64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    counts: BreakerCounts,
}

/// Called on every change, e.g. to set a gauge.
pub type OnChange = Box<dyn Fn(BreakerState, BreakerCounts) + Send + Sync>;

pub struct CircuitBreaker {
    pub dependency: String,
    failure_threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
    on_change: Option<OnChange>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("dependency", &self.dependency)
            .field("state", &self.state())
            .finish()
    }
}

/// The breaker refused the call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{dependency} is failing: circuit open, retry in {retry_after:?}")]
pub struct Open {
    pub dependency: String,
    pub retry_after: Duration,
}

impl CircuitBreaker {
    pub fn new(dependency: &str, failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            dependency: dependency.to_string(),
            failure_threshold: failure_threshold.max(1),
            open_for,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                probe_in_flight: false,
                counts: BreakerCounts::default(),
            }),
            on_change: None,
        }
    }

    pub fn on_change(mut self, f: OnChange) -> Self {
        self.on_change = Some(f);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, i: &Inner) {
        if let Some(f) = &self.on_change {
            f(i.state, i.counts);
        }
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    pub fn counts(&self) -> BreakerCounts {
        self.lock().counts
    }

    /// May a call go ahead now? `Err` says when to try again. The permit
    /// records the call's outcome: [`Permit::record`] says how it went, and a
    /// permit dropped without an outcome (the caller's future was dropped at
    /// an `await`: client gone, request timeout) counts as a failure, so a
    /// half-open probe is never left in flight.
    pub fn check(&self) -> Result<Permit<'_>, Open> {
        let mut i = self.lock();
        let res = match i.state {
            BreakerState::Closed => Ok(false),
            BreakerState::Open => {
                let since = i.opened_at.map(|t| t.elapsed()).unwrap_or(self.open_for);
                if since >= self.open_for {
                    i.state = BreakerState::HalfOpen;
                    i.probe_in_flight = true;
                    Ok(true)
                } else {
                    Err(self.open_for - since)
                }
            }
            BreakerState::HalfOpen if !i.probe_in_flight => {
                i.probe_in_flight = true;
                Ok(true)
            }
            BreakerState::HalfOpen => Err(Duration::from_secs(1)),
        };
        let res = res
            .map(|probe| Permit {
                breaker: self,
                probe,
                done: false,
            })
            .map_err(|wait| {
                i.counts.rejected += 1;
                Open {
                    dependency: self.dependency.clone(),
                    retry_after: wait.max(Duration::from_secs(1)),
                }
            });
        self.notify(&i);
        res
    }

    /// The outcome of a call that [`check`](Self::check) let through.
    fn record(&self, ok: bool) {
        let mut i = self.lock();
        i.probe_in_flight = false;
        if ok {
            i.counts.ok += 1;
            i.failures = 0;
            i.state = BreakerState::Closed;
            i.opened_at = None;
        } else {
            i.counts.failed += 1;
            i.failures += 1;
            if i.state == BreakerState::HalfOpen || i.failures >= self.failure_threshold {
                if i.state != BreakerState::Open {
                    tracing::warn!(dependency = %self.dependency, failures = i.failures, "circuit breaker opened");
                }
                i.state = BreakerState::Open;
                i.opened_at = Some(Instant::now());
            }
        }
        self.notify(&i);
    }

    /// Run `call` through the breaker; `is_failure` says which errors count
    /// against the dependency (a 4xx-like refusal should not). If the
    /// returned future is dropped while `call` runs, that counts as a failure.
    pub async fn call<T, E, F>(
        &self,
        call: F,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, Open>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        let permit = self.check()?;
        let res = call.await;
        permit.record(match &res {
            Ok(_) => true,
            Err(e) => !is_failure(e),
        });
        Ok(res)
    }
}

/// A call the breaker let through; see [`CircuitBreaker::check`].
#[derive(Debug)]
#[must_use = "record the outcome with Permit::record; a dropped permit counts as a failure"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    /// How the call went (`true`: the dependency answered).
    pub fn record(mut self, ok: bool) {
        self.done = true;
        self.breaker.record(ok);
    }

    /// Nothing was asked of the dependency: no outcome, and a half-open probe
    /// is handed back for the next caller.
    pub fn release(mut self) {
        self.done = true;
        if self.probe {
            self.breaker.lock().probe_in_flight = false;
        }
    }

    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!(dependency = %self.breaker.dependency, probe = self.probe, "call abandoned before its outcome: counted as a failure");
            self.breaker.record(false);
        }
    }
}

/// The metric set of a process's circuit breakers.
#[derive(Clone)]
pub struct BreakerMetrics {
    pub state: Family<DependencyLabels, Gauge>,
    pub calls: Family<DependencyOutcomeLabels, Counter>,
}

impl BreakerMetrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            state: r.family(&m::CIRCUIT_BREAKER_STATE),
            calls: r.family(&m::DEPENDENCY_CALLS),
        }
    }

    /// A circuit breaker for `dependency` whose state and calls are exported
    /// (`circuit_breaker_state`, `dependency_calls_total`).
    pub fn breaker(
        &self,
        dependency: &str,
        failure_threshold: u32,
        open_for: Duration,
    ) -> Arc<CircuitBreaker> {
        let dep = dependency.to_string();
        let state = self
            .state
            .get_or_create(&DependencyLabels {
                dependency: dep.clone(),
            })
            .clone();
        let calls = self.calls.clone();
        for outcome in ["ok", "failed", "rejected"] {
            let _ = calls.get_or_create(&DependencyOutcomeLabels {
                dependency: dep.clone(),
                outcome,
            });
        }
        let last = Mutex::new(BreakerCounts::default());
        Arc::new(
            CircuitBreaker::new(dependency, failure_threshold, open_for).on_change(Box::new(
                move |s, counts| {
                    state.set(s.value());
                    let mut prev = last.lock().unwrap_or_else(|e| e.into_inner());
                    for (outcome, now, before) in [
                        ("ok", counts.ok, prev.ok),
                        ("failed", counts.failed, prev.failed),
                        ("rejected", counts.rejected, prev.rejected),
                    ] {
                        if now > before {
                            calls
                                .get_or_create(&DependencyOutcomeLabels {
                                    dependency: dep.clone(),
                                    outcome,
                                })
                                .inc_by(now - before);
                        }
                    }
                    *prev = counts;
                },
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_and_closes() {
        let b = CircuitBreaker::new("pg", 3, Duration::from_millis(50));
        for _ in 0..3 {
            b.check().expect("closed").record(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let open = b.check().expect_err("open");
        assert!(open.retry_after >= Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.check().expect("one probe after open_for");
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.check().is_err(), "only one probe at a time");
        probe.record(false);
        assert_eq!(b.state(), BreakerState::Open, "failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        b.check().expect("probe").record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            b.counts(),
            BreakerCounts {
                ok: 1,
                failed: 4,
                rejected: 2
            }
        );
    }

    #[test]
    fn success_resets_the_failure_run() {
        let b = CircuitBreaker::new("x", 2, Duration::from_secs(10));
        b.check().expect("closed").record(false);
        b.check().expect("closed").record(true);
        b.check().expect("closed").record(false);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// Issue 13's sequence: the dependency comes back frozen, the probe's
    /// caller gives up (its future is dropped at the await), the dependency
    /// recovers. Without the permit's guard the probe stays in flight and
    /// every later call is refused until restart.
    #[tokio::test]
    async fn a_probe_abandoned_at_its_await_does_not_disable_the_breaker() {
        let b = CircuitBreaker::new("pg", 1, Duration::from_millis(20));
        let failed: Result<Result<(), ()>, Open> = b.call(async { Err(()) }, |_| true).await;
        assert!(matches!(failed, Ok(Err(()))));
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The probe hangs (a frozen database) and its caller times out.
        let frozen = b.call(std::future::pending::<Result<(), ()>>(), |_| true);
        let gave_up = tokio::time::timeout(Duration::from_millis(10), frozen).await;
        assert!(gave_up.is_err(), "the frozen call is abandoned");
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "an abandoned probe counts as a failure"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The dependency is back: the next probe goes through and closes it.
        let ok: Result<Result<(), ()>, Open> = b.call(async { Ok(()) }, |_| true).await;
        assert!(matches!(ok, Ok(Ok(()))), "a new probe is let through");
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn an_abandoned_call_counts_as_a_failure_and_release_blames_nobody() {
        let b = CircuitBreaker::new("x", 2, Duration::from_secs(10));
        drop(b.check().expect("closed"));
        drop(b.check().expect("closed"));
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "two abandoned calls are two failures"
        );
        let b = CircuitBreaker::new("x", 1, Duration::ZERO);
        b.check().expect("closed").record(false);
        let probe = b.check().expect("probe");
        probe.release();
        assert_eq!(b.counts().failed, 1, "release records nothing");
        assert!(b.check().expect("the probe was handed back").is_probe());
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 0..20 {
            let d = backoff(attempt, base, max);
            let full = base.saturating_mul(1 << attempt.min(16)).min(max);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }
}
