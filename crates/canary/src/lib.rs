//! Canary analysis, pure: no IO, no clock. The observer feeds it counts
//! queried from Prometheus each interval and acts on the [`Decision`].
//!
//! The method (documented in `docs/canary.md`):
//! - canary and stable are compared under the same live traffic with Wald's
//!   sequential probability ratio test on "bad" requests (5xx, or slower than
//!   the latency threshold). Conditional on the bad requests of an interval,
//!   under H0 ("the canary is no worse") each one lands on the canary with
//!   probability equal to the canary's share of traffic; under H1 the canary's
//!   odds are `ratio` times higher. The log-likelihood ratio accumulates over
//!   intervals of a step (the traffic share may differ per interval);
//!   crossing `ln((1 − β) / α_step)` rolls back. Each step runs a fresh test
//!   with `α_step = α / steps`; by Wald's inequality a test crosses under H0
//!   with probability at most `α_step`, however long it runs and however often
//!   it is checked, so over all steps false rollbacks stay below `α` (union
//!   bound). Restarting per step also stops a long healthy stretch from
//!   banking credit that would slow the detection of a later regression.
//! - a step is promoted once it has seen `min_requests` canary requests and
//!   the statistic is below the rollback boundary; with less, it holds
//!   (low traffic extends the window instead of failing).
//! - absolute guard: the canary's own error ratio divided by the SLO error
//!   budget (its burn rate) must stay under the page threshold.
//! - no data, or a metrics backend that does not answer, pauses: a monitoring
//!   outage never causes a rollback.

pub mod analysis;
pub mod spec;
pub mod sprt;

pub use analysis::{ConsumerObservation, Decision, Interval, Observation, State, Verdict, analyze};
pub use spec::{BudgetGate, BudgetPolicy, CanarySpec, ConsumerCheck, DriverSpec, SpecError};
pub use sprt::Sprt;
