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
//!   every interval of the rollout (the traffic share may differ per interval
//!   and per step); crossing `ln((1 − β) / α_test)` rolls back.
//! - the canary's own error ratio is tested sequentially against its SLO
//!   budget (H0: it burns the budget at most 1×; H1: `sequential_burn_rate`×),
//!   also pooled over the whole rollout.
//! - the three sequential tests (relative errors, relative latency, burn)
//!   each get `α_test = α / 3`. By Wald's (Ville's) inequality a test crosses
//!   under H0 with probability at most `α_test`, however long it runs and
//!   however often it is checked, so false rollbacks stay below `α` (union
//!   bound). Pooling across steps (rather than a fresh test per step with
//!   `α / steps`) is what lets a failing canary be caught on its second or
//!   third failure at low traffic; see docs/canary.md for the trade-off.
//! - a step is promoted once it has seen `min_requests` canary requests and
//!   the statistic is below the rollback boundary; with less, it holds
//!   (low traffic extends the window instead of failing).
//! - absolute guard, per step: the canary's own error ratio divided by the
//!   SLO error budget (its burn rate) must stay under the page threshold
//!   (Wilson lower bound; it restarts each step, so a regression that only
//!   shows at a larger share is not hidden by earlier healthy evidence).
//! - no data, or a metrics backend that does not answer, pauses: a monitoring
//!   outage never causes a rollback.

pub mod analysis;
pub mod spec;
pub mod sprt;

pub use analysis::{ConsumerObservation, Decision, Interval, Observation, State, Verdict, analyze};
pub use spec::{
    BlueGreenSpec, BudgetGate, BudgetPolicy, CanarySpec, ConsumerCheck, DriverSpec, LoadHook,
    SpecError, Strategy,
};
pub use sprt::Sprt;
