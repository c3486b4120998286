//! Rollout drivers: the observer's canary controller asks one of these to put
//! a percentage of traffic on the canary, or all of it back on stable.
//!
//! Every operation is idempotent: setting the same split twice is the same as
//! setting it once, so a retried or repeated rollback is harmless.

pub mod gateway;
pub mod haproxy;

use std::future::Future;
use std::pin::Pin;

pub use gateway::{BearerToken, GatewayApiConfig, GatewayApiDriver};
pub use haproxy::HaproxyDriver;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot reach {what}: {source}")]
    Unreachable {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} refused the command '{command}': {answer}")]
    Refused {
        what: String,
        command: String,
        answer: String,
    },
    #[error("{what} answered something unexpected to '{command}': {answer}")]
    Unexpected {
        what: String,
        command: String,
        answer: String,
    },
    #[error("{what}: {message}")]
    Api { what: String, message: String },
    #[error("percentage {0} is outside 0..=100")]
    Percent(u32),
}

pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// One of the two builds a driver fronts. In a blue-green rollout `Stable`
/// is blue (live) and `Canary` is green (preview).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Stable,
    Canary,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Stable => "stable",
            Side::Canary => "canary",
        }
    }
}

/// Moves traffic between the stable and canary versions of one service.
pub trait RolloutDriver: Send + Sync {
    /// Send `percent` of traffic to the canary and the rest to stable.
    fn set_canary_percent(&self, percent: u32) -> DriverFuture<'_, ()>;
    /// The canary's current share of traffic, in percent.
    fn canary_percent(&self) -> DriverFuture<'_, u32>;
    /// All traffic back to stable (the canary gets none).
    fn rollback(&self) -> DriverFuture<'_, ()> {
        self.set_canary_percent(0)
    }
    /// Take `side` out of service (HAProxy: its servers to maintenance;
    /// Kubernetes: its Deployment to zero replicas). Idempotent. Callers
    /// move its traffic away first.
    fn scale_down(&self, side: Side) -> DriverFuture<'_, ()>;
    /// Put `side` back in service (the reverse of [`Self::scale_down`]). Idempotent.
    fn scale_up(&self, side: Side) -> DriverFuture<'_, ()>;
}
