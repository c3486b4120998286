//! The lag tailer's loop: every `lag_poll_interval_ms` a snapshot from the
//! broker ([`crate::lag::Collector`]) through the status engine
//! ([`crate::status::Engine`]) into the shared [`LagState`]. Readers get
//! the state through [`SharedLag`]; the canary gates only through
//! [`crate::rollouts::ConsumerLag`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub use observer_api::lag::LagState;

use crate::lag::Collector;
use crate::rollouts::ConsumerLag;
use crate::status;

/// Snapshots the lag page's graphs keep: an hour at the default 5 s poll.
pub const HISTORY_POINTS: usize = 720;

/// One snapshot's lag in seconds per group, for the lag page's graph.
#[derive(Clone, Debug, PartialEq)]
pub struct LagPoint {
    pub observed_at_ms: i64,
    pub lag_seconds: Vec<(String, Option<f64>)>,
}

/// The tailer's latest state, shared with the API, the page and `/metrics`,
/// and a bounded ring of the last [`HISTORY_POINTS`] snapshots' lag in
/// seconds. The ring lives in memory (not in Prometheus) so the lag page
/// works where no Prometheus scrapes the observer; it starts empty after a
/// restart.
#[derive(Clone, Default)]
pub struct SharedLag {
    state: Arc<RwLock<LagState>>,
    history: Arc<RwLock<std::collections::VecDeque<LagPoint>>>,
}

impl SharedLag {
    pub async fn read(&self) -> tokio::sync::RwLockReadGuard<'_, LagState> {
        self.state.read().await
    }

    /// The ring of recent snapshots, oldest first.
    pub async fn history(&self) -> Vec<LagPoint> {
        self.history.read().await.iter().cloned().collect()
    }

    async fn record(&self, snapshot: &observer_api::lag::LagSnapshot) {
        let mut h = self.history.write().await;
        if h.len() == HISTORY_POINTS {
            h.pop_front();
        }
        h.push_back(LagPoint {
            observed_at_ms: snapshot.observed_at_ms,
            lag_seconds: snapshot
                .groups
                .iter()
                .map(|g| (g.group.clone(), g.lag_seconds))
                .collect(),
        });
    }

    /// The consumer groups of the latest snapshot.
    pub async fn groups(&self) -> Vec<String> {
        self.read()
            .await
            .snapshot
            .groups
            .iter()
            .map(|g| g.group.clone())
            .collect()
    }
}

impl ConsumerLag for SharedLag {
    fn lag_seconds<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            self.read()
                .await
                .snapshot
                .groups
                .iter()
                .find(|g| g.group == group)
                .and_then(|g| g.lag_seconds)
        })
    }
}

/// Poll the broker every `poll_interval` until `shutdown`; the status
/// engine keeps `status_window_ms` of history.
pub async fn run(
    lag: SharedLag,
    collector: Collector,
    poll_interval: Duration,
    status_window_ms: i64,
    shutdown: CancellationToken,
) {
    let collector = Arc::new(Mutex::new(collector));
    let mut engine = status::Engine::new(status_window_ms);
    let mut tick = tokio::time::interval(poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = collector.clone();
        let started = Instant::now();
        let res = tokio::task::spawn_blocking(move || match c.lock() {
            Ok(mut c) => c.observe(),
            Err(_) => Err(anyhow::anyhow!(
                "lag collector poisoned by an earlier panic"
            )),
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        let mut st = lag.state.write().await;
        st.enabled = true;
        match res {
            Ok(Ok(obs)) => {
                st.snapshot = engine.apply(&obs);
                lag.record(&st.snapshot).await;
                st.error = None;
                st.snapshot_duration_seconds = Some(elapsed);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "lag snapshot failed");
                st.error = Some(format!("{e:#}"));
            }
            Err(e) => {
                tracing::error!(error = %e, "lag snapshot task failed");
                st.error = Some(e.to_string());
            }
        }
    }
}
