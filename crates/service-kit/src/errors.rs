//! A panicking handler becomes a 500, reported to Sentry with the request's
//! trace id (the Sentry client itself is `telemetry::errors`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use telemetry::errors::current_trace_id;

/// Turn a panicking handler into a 500 (the panic itself is reported by
/// Sentry's panic hook). Each request runs with a Sentry hub of its own
/// carrying its trace id: concurrent requests on one worker thread never see
/// each other's scope, and nothing is left behind when a request ends.
pub async fn catch_panic(req: Request, next: Next) -> Response {
    use sentry::SentryFutureExt as _;
    let hub = std::sync::Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
    if let Some(t) = current_trace_id() {
        hub.configure_scope(|scope| scope.set_tag("trace_id", t));
    }
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .bind_hub(hub)
        .await
    {
        Ok(resp) => resp,
        Err(_) => crate::ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::get;
    use opentelemetry::trace::TracerProvider as _;
    use sentry::SentryFutureExt as _;
    use tower::ServiceExt as _;
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Keeps every event the client sends.
    #[derive(Default)]
    struct Captured(Mutex<Vec<sentry::protocol::Event<'static>>>);

    impl sentry::Transport for Captured {
        fn send_envelope(&self, envelope: sentry::Envelope) {
            if let Some(e) = envelope.event() {
                self.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e.clone());
            }
        }
    }

    /// Issue 13: request A sets its trace id, yields; request B on the same
    /// thread sets its own; then A reports. A's event must carry A's id.
    /// With the trace id on the thread's shared scope, it carried B's.
    #[tokio::test]
    async fn concurrent_requests_report_with_their_own_trace_id() {
        let captured = Arc::new(Captured::default());
        let mut options = sentry::ClientOptions::default();
        options.dsn = "https://public@sentry.invalid/1".parse().ok();
        options.transport = Some(Arc::new(captured.clone()));
        let client = sentry::Client::from(options);
        let hub = Arc::new(sentry::Hub::new(Some(Arc::new(client)), Arc::default()));
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);

        let b_done = Arc::new(tokio::sync::Notify::new());
        let wait = b_done.clone();
        let app = axum::Router::new()
            .route(
                "/a",
                get(move || {
                    let wait = wait.clone();
                    async move {
                        wait.notified().await;
                        sentry::capture_message("from a", sentry::Level::Error);
                        "a"
                    }
                }),
            )
            .route("/b", get(|| async { "b" }))
            .layer(axum::middleware::from_fn(catch_panic));
        let call = |path: &'static str| {
            let app = app.clone();
            let span = tracing::info_span!("request", path);
            async move {
                let id = current_trace_id().unwrap_or_default();
                let req = axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .expect("request");
                let _ = app.oneshot(req).await;
                id
            }
            .instrument(span)
        };
        let notify = b_done.clone();
        let run = async {
            let a = call("/a");
            let b = async {
                let id = call("/b").await;
                notify.notify_one();
                id
            };
            tokio::join!(a, b)
        };
        let (a_id, b_id) = run.bind_hub(hub).await;
        assert!(
            !a_id.is_empty() && a_id != b_id,
            "two traces: {a_id} {b_id}"
        );
        let events = captured.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(events.len(), 1, "one event");
        assert_eq!(
            events[0].tags.get("trace_id"),
            Some(&a_id),
            "A's event carries A's trace id"
        );
    }
}
