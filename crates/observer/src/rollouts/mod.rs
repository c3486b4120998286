//! The canary controller: every analysis interval it reads the canary's and
//! stable's counters from Prometheus, runs `canary::analyze` on the
//! difference since the last interval, moves traffic through a
//! [`RolloutDriver`], and appends the decision to Postgres (with a trace span
//! and metrics). Operators act through [`Controller::act`] (HTTP API,
//! `todoctl canary …`), which takes effect at once, not at the next interval.
//!
//! - A rollout is keyed by (canary name, `canary_version`): deploying a new
//!   build means a new version in the spec, which starts a new rollout and
//!   supersedes an unfinished one.
//! - Counts are the exact difference of cumulative counters between two
//!   queries (no `rate()` extrapolation). While Prometheus is down the
//!   baseline stays, so the first interval after it returns covers the outage.
//! - A monitoring outage pauses (the analysis says so); it never rolls back,
//!   and paused time does not count against `max_duration_secs`.
//! - The in-memory state is the truth while running; every decision is
//!   persisted, and a restarted observer continues a rollout from Postgres.
//!
//! Parts, one owner each: `spec` loads the spec directory and builds the
//! driver, `queries` turns a spec into PromQL and a Prometheus answer into
//! counters, `store` owns the `canary_rollouts` and `canary_decisions` tables
//! (their migration is `crates/observer/migrations/rollouts.sql`),
//! `controller` runs the analysis loop, `actions` the operator actions and
//! `budget` the error-budget gate that holds a rollout's start.
//! The API types live in `observer-api`.

mod actions;
mod budget;
mod controller;
mod load;
mod queries;
mod spec;
mod store;

use futures::future::BoxFuture;

pub use actions::ActError;
pub use controller::{CONTROLLER_ACTOR, CanaryGauges, Controller, RolloutMetrics, SCALE_DOWN};
pub use observer_api::canaries::{Action, CanaryList, CanaryView, DecisionRecord, Phase, Rollout};
pub use spec::load_specs;

/// The consumer lag the rollout gates read (the lag tailer's latest
/// snapshot, in seconds behind), by consumer group.
pub trait ConsumerLag: Send + Sync {
    /// `None` when the group is unknown or its lag in seconds is not known yet.
    fn lag_seconds<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Option<f64>>;
}
