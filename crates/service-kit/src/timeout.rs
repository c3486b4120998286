//! Request timeouts: a handler that takes longer than the configured time
//! is dropped and the caller gets 503 problem+json with `Retry-After`.
//!
//! A dropped write may still have committed (the statement can finish on
//! the server after the client stopped waiting), like any timeout; clients
//! retry safely with an `Idempotency-Key`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::ApiError;

/// Middleware: `route_layer(from_fn_with_state(timeout, request_timeout))`.
pub async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            ApiError::Unavailable {
                detail: format!(
                    "the request took longer than {} ms and was abandoned; retry (with the same Idempotency-Key for writes)",
                    limit.as_millis()
                ),
                retry_after_secs: 1,
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn slow_handlers_get_503_with_retry_after() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/fast", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(50),
                request_timeout,
            ));
        let slow = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).expect("req"))
            .await
            .expect("answer");
        assert_eq!(slow.status(), 503);
        assert!(slow.headers().contains_key("retry-after"));
        assert_eq!(slow.headers()["content-type"], "application/problem+json");
        let fast = app
            .oneshot(Request::get("/fast").body(Body::empty()).expect("req"))
            .await
            .expect("answer");
        assert_eq!(fast.status(), 200);
    }
}
