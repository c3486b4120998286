//! What every process emits and how, with no HTTP in it: storage (`todo-store`)
//! and Kafka (`bus`) code depend on this crate, never on `service-kit`.
//!
//! - [`metrics`]: the registry (`service` and `version` constant labels) that
//!   each component registers its own metric set into, and its exposition.
//! - [`trace`]: W3C trace context into and out of spans (envelopes, Kafka
//!   headers); the HTTP side is `service_kit::trace`.
//! - [`subscriber`]: the process's tracing subscriber, the OTLP/HTTP exporter
//!   and the strict `OTEL_TRACES_SAMPLER` parser; [`logs`]: JSON lines with
//!   trace ids and the Loki push.
//! - [`errors`]: Sentry (`SENTRY_DSN`).
//! - [`audit`]: the audit record and where it goes (the HTTP middleware that
//!   fills it is `service_kit::audit`).
//! - [`retry`]: circuit breakers and jittered backoff.

pub mod audit;
pub mod errors;
pub mod logs;
pub mod metrics;
pub mod retry;
pub mod subscriber;
pub mod trace;
