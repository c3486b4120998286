//! Audit trail of mutating requests: who, what, when, outcome, trace id.
//!
//! [`audit_requests`] is a middleware for the mutating routes. It sits
//! outside the access guard, so refused requests are recorded too (401 as
//! `anonymous`, 403, 429); the guard hands the authenticated
//! [`Principal`](crate::auth::Principal) back on the response. Where the
//! entries go is an [`AuditSink`] (`telemetry::audit`, so storage code needs
//! no HTTP): `todo_store::audit` appends them to the append-only `audit_log`
//! table in batches.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use telemetry::audit::{ANONYMOUS, AuditEntry, AuditSink};

use crate::auth::Principal;

#[derive(Clone)]
pub struct Auditor {
    pub service: Arc<str>,
    pub sink: Arc<dyn AuditSink>,
}

/// Middleware (`route_layer(from_fn_with_state(auditor, audit_requests))`,
/// outermost on the mutating routes).
pub async fn audit_requests(State(a): State<Auditor>, req: Request, next: Next) -> Response {
    let action = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| req.uri().path().to_string())
    );
    let target = req.uri().path().to_string();
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    // The exported span's trace id, else the incoming (valid) traceparent's.
    let trace_id = telemetry::errors::current_trace_id().or_else(|| {
        crate::trace::from_headers(req.headers()).and_then(|tc| tc.trace_id().map(str::to_string))
    });
    let resp = next.run(req).await;
    let (actor, roles) = match resp.extensions().get::<Principal>() {
        Some(p) => (p.subject.clone(), p.roles.join(",")),
        None => (ANONYMOUS.to_string(), String::new()),
    };
    a.sink
        .record(AuditEntry {
            at: Utc::now(),
            service: a.service.to_string(),
            actor,
            roles,
            action,
            target,
            outcome: resp.status().as_u16(),
            trace_id,
            client,
        })
        .await;
    resp
}
