//! Retries with jittered exponential backoff, and circuit breakers whose
//! state is exported as metrics.
//!
//! A [`CircuitBreaker`] guards calls to one dependency (Postgres, the broker,
//! Prometheus, Alertmanager, HAProxy). After `failure_threshold` failures in
//! a row it opens: calls fail at once (callers answer 503 with `Retry-After`
//! or pause) instead of each waiting for a timeout. After `open_for` one
//! probe call is let through (half-open); its success closes the breaker,
//! its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// May a call go ahead now? `Err` says when to try again.
    pub fn check(&self) -> Result<(), Open> {
        let mut i = self.lock();
        let res = match i.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => {
                let since = i.opened_at.map(|t| t.elapsed()).unwrap_or(self.open_for);
                if since >= self.open_for {
                    i.state = BreakerState::HalfOpen;
                    i.probe_in_flight = true;
                    Ok(())
                } else {
                    Err(self.open_for - since)
                }
            }
            BreakerState::HalfOpen if !i.probe_in_flight => {
                i.probe_in_flight = true;
                Ok(())
            }
            BreakerState::HalfOpen => Err(Duration::from_secs(1)),
        };
        let res = res.map_err(|wait| {
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
    pub fn record(&self, ok: bool) {
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
    /// against the dependency (a 4xx-like refusal should not).
    pub async fn call<T, E, F>(
        &self,
        call: F,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, Open>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        self.check()?;
        let res = call.await;
        match &res {
            Ok(_) => self.record(true),
            Err(e) => self.record(!is_failure(e)),
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_and_closes() {
        let b = CircuitBreaker::new("pg", 3, Duration::from_millis(50));
        for _ in 0..3 {
            assert!(b.check().is_ok());
            b.record(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let open = b.check().expect_err("open");
        assert!(open.retry_after >= Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check().is_ok(), "one probe after open_for");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.check().is_err(), "only one probe at a time");
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open, "failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check().is_ok());
        b.record(true);
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
        b.record(false);
        b.record(true);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
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
