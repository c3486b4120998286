//! What every service shares. Nothing here knows about todos.

pub mod audit;
pub mod auth;
pub mod check;
pub mod config;
pub mod errors;
pub mod extract;
pub mod health;
pub mod launcher;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod retry;
pub mod shutdown;
pub mod telemetry;
pub mod timeout;
pub mod tls;
pub mod trace;

pub use problem::{ApiError, FieldProblem};
