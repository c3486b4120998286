//! The audit record and the trait of where it goes.
//!
//! An audit entry is a fourth signal beside metrics, traces and logs: who did
//! what, when, with which outcome and trace id. It lives here, not in
//! `service-kit`, because its writer (`todo_store::audit`, the append-only
//! `audit_log` table) is storage code that must not depend on HTTP; the
//! middleware that fills it from a request is `service_kit::audit`.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Actor of a request that never authenticated.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub service: String,
    /// Token subject, or [`ANONYMOUS`].
    pub actor: String,
    /// The caller's roles, comma-separated.
    pub roles: String,
    /// Method and route template, e.g. `PATCH /v1/todos/{id}`.
    pub action: String,
    /// The concrete path, e.g. `/v1/todos/0193…`.
    pub target: String,
    /// HTTP status of the answer.
    pub outcome: u16,
    pub trace_id: Option<String>,
    /// Client address as the server saw it (not a forwarded header).
    pub client: Option<String>,
}

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where audit entries go. `record` may wait (backpressure) but must not
/// drop an entry silently.
pub trait AuditSink: Send + Sync + 'static {
    fn record(&self, entry: AuditEntry) -> SinkFuture<'_>;
}
