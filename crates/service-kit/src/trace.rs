//! W3C trace context from HTTP headers: the server span of each request and
//! the caller's `traceparent`. Carrying it on through envelopes and Kafka
//! headers is `telemetry::trace`.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use contracts::TraceContext;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A well-formed W3C `traceparent` from the request headers, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
    let tp = headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parts.len() != 4
        || !hex(parts[0], 2)
        || !hex(parts[1], 32)
        || !hex(parts[2], 16)
        || !hex(parts[3], 2)
    {
        return None;
    }
    let tracestate = headers
        .get("tracestate")
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= 512)
        .map(str::to_string);
    Some(TraceContext {
        traceparent: tp.to_string(),
        tracestate,
    })
}

/// Server span per request, child of the caller's `traceparent`.
pub async fn trace_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    // The access log line, inside the request span so it carries the trace id
    // (`RUST_LOG=access=warn` keeps only failures).
    span.in_scope(|| {
        let status = resp.status().as_u16();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        if status >= 500 {
            tracing::warn!(target: "access", %method, %route, status, elapsed_ms, "request failed");
        } else {
            tracing::info!(target: "access", %method, %route, status, elapsed_ms, "request handled");
        }
    });
    resp
}
