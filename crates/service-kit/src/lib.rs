//! The HTTP side every service shares. Its metrics, errors and middleware
//! know nothing about todos.
//!
//! Start-up: [`launcher`] (`main` after argument parsing: config, telemetry,
//! signals), [`platform`] (the todo services' shared start-up: database and
//! migrations, Kafka settings, listener, default readiness; the one module
//! that uses `todo-store` and `bus`), [`server`] (listener, metrics
//! registry, middleware stack) and the shared config blocks in [`common`]. What is emitted without HTTP
//! (metrics registry and sets, trace propagation, logs, Sentry, the audit
//! record, breakers and backoff) is the `telemetry` crate.

pub mod audit;
pub mod auth;
pub mod check;
pub mod common;
pub mod config;
pub mod errors;
pub mod extract;
pub mod health;
pub mod launcher;
pub mod metrics;
pub mod openapi;
pub mod platform;
pub mod problem;
pub mod rate_limit;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod timeout;
pub mod tls;
pub mod trace;

pub use problem::{ApiError, FieldProblem};
