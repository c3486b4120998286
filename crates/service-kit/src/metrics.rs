//! `/metrics` in the OpenMetrics text format, and the HTTP RED metric set
//! with its middleware. The registry and the other components' sets are in
//! `telemetry::metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contracts::metrics as m;
use prometheus_client::encoding::EncodeLabelSet;
use telemetry::metrics::{
    Exposition, Gauge, HistFamily, InFlight, MetricsRegistry, TraceExemplar, TracedHistogram,
    openmetrics_to_text,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status_class: &'static str,
}

fn http_histogram() -> TracedHistogram {
    TracedHistogram::new(m::HTTP_BUCKETS.iter().copied())
}

/// The RED set of an HTTP server: request durations by route template,
/// method and status class, and requests in flight.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: HistFamily<HttpLabels>,
    pub active: Gauge,
}

impl HttpMetrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            requests: r.histograms(&m::HTTP_SERVER_REQUEST_DURATION, http_histogram),
            active: r.gauge(&m::HTTP_SERVER_ACTIVE_REQUESTS),
        }
    }
}

pub type RenderFuture = Pin<Box<dyn Future<Output = String> + Send>>;

/// Families a service renders from its live state at every scrape, in
/// OpenMetrics text without `# EOF` (the observer's lag, SLO and canary
/// series: a group or canary that goes away takes its series with it). Their
/// names must not be in the registry.
#[derive(Clone)]
pub struct LiveFamilies(Arc<dyn Fn() -> RenderFuture + Send + Sync>);

impl LiveFamilies {
    pub fn new<F, Fut>(render: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(render()) as RenderFuture))
    }
}

/// What `/metrics` serves: the live families, if any, then the registry's.
#[derive(Clone)]
pub struct Scrape {
    pub registry: Exposition,
    pub live: Option<LiveFamilies>,
}

impl Scrape {
    /// The OpenMetrics text, ending in one `# EOF`.
    pub async fn encode(&self) -> String {
        let registry = self.registry.encode();
        match &self.live {
            Some(live) => (live.0)().await + &registry,
            None => registry,
        }
    }
}

/// OpenMetrics by default; the classic text format (0.0.4) for clients that
/// ask only for `text/plain` (older scrapers, `promtool check metrics`).
pub async fn metrics_handler(
    State(metrics): State<Scrape>,
    headers: axum::http::HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let classic = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    let body = metrics.encode().await;
    let (body, content_type) = if classic {
        (
            openmetrics_to_text(&body),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    } else {
        (
            body,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// RED middleware: one histogram observation per request, labelled by the
/// matched route template (bounded), never the raw path, with the request
/// span's trace as its exemplar when that trace is sampled (the middleware
/// runs inside `trace::trace_http`'s span).
pub async fn track_http(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = match *req.method() {
        axum::http::Method::GET
        | axum::http::Method::POST
        | axum::http::Method::PUT
        | axum::http::Method::PATCH
        | axum::http::Method::DELETE
        | axum::http::Method::HEAD
        | axum::http::Method::OPTIONS => req.method().as_str().to_string(),
        _ => "other".to_string(),
    };
    let active = InFlight::enter(&metrics.active);
    let resp = next.run(req).await;
    drop(active);
    let labels = HttpLabels {
        route,
        method,
        status_class: status_class(resp.status().as_u16()),
    };
    metrics.requests.get_or_create(&labels).observe(
        start.elapsed().as_secs_f64(),
        TraceExemplar::of_span(&tracing::Span::current()),
        None,
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_families_come_before_the_registry_and_one_eof_ends_the_scrape() {
        let mut registry = MetricsRegistry::new("observer", "stable");
        let http = HttpMetrics::register(&mut registry);
        http.active.inc();
        let scrape = Scrape {
            registry: registry.finish(),
            live: Some(LiveFamilies::new(|| async {
                "# HELP live_gauge A gauge.\n# TYPE live_gauge gauge\nlive_gauge 1\n".to_string()
            })),
        };
        let text = scrape.encode().await;
        assert!(text.starts_with("# HELP live_gauge "), "{text}");
        let active = text
            .find("# TYPE http_server_active_requests gauge")
            .expect("the registry's families follow");
        let live = text
            .find("live_gauge 1")
            .expect("the live family is rendered");
        assert!(active > live, "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
