//! `/metrics` in the OpenMetrics text format and the HTTP RED middleware.
//! Families are registered from the typed definitions in `contracts::metrics`;
//! `service` and `version` are constant labels of the whole registry.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contracts::metrics as m;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DlqLabels {
    pub topic: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet, Default)]
pub struct NoLabels {}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyOutcomeLabels {
    pub dependency: String,
    pub outcome: &'static str,
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(m::HTTP_BUCKETS.iter().copied())
}
fn freshness_histogram() -> Histogram {
    Histogram::new(m::FRESHNESS_BUCKETS.iter().copied())
}

/// prometheus-client ends every HELP text with a period itself.
fn help(def: &m::Metric) -> &'static str {
    def.help.trim_end_matches('.')
}

/// Every metric a service may emit. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub http: HistFamily<HttpLabels>,
    pub http_active: Gauge,
    pub produced: Family<TopicLabels, Counter>,
    pub consumed: Family<TopicLabels, Counter>,
    pub failed: Family<TopicLabels, Counter>,
    pub dlq: Family<DlqLabels, Counter>,
    pub freshness: HistFamily<NoLabels>,
    pub outbox_backlog: Gauge,
    pub outbox_oldest_age: Gauge<f64, AtomicU64>,
    pub todos_created: Counter,
    pub todos_completed: Counter,
    pub breaker_state: Family<DependencyLabels, Gauge>,
    pub dependency_calls: Family<DependencyOutcomeLabels, Counter>,
    pub writes_shed: Counter,
    pub events_held: Counter,
}

impl Metrics {
    pub fn new(service: &str, version: &str) -> Self {
        let mut registry = Registry::with_labels(
            [
                (
                    Cow::Borrowed(m::labels::SERVICE),
                    Cow::Owned(service.to_string()),
                ),
                (
                    Cow::Borrowed(m::labels::VERSION),
                    Cow::Owned(version.to_string()),
                ),
            ]
            .into_iter(),
        );
        let http: HistFamily<HttpLabels> = Family::new_with_constructor(http_histogram);
        let freshness: HistFamily<NoLabels> = Family::new_with_constructor(freshness_histogram);
        let this = Self {
            registry: Arc::new(Registry::default()),
            http,
            http_active: Gauge::default(),
            produced: Family::default(),
            consumed: Family::default(),
            failed: Family::default(),
            dlq: Family::default(),
            freshness,
            outbox_backlog: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
            todos_created: Counter::default(),
            todos_completed: Counter::default(),
            breaker_state: Family::default(),
            dependency_calls: Family::default(),
            writes_shed: Counter::default(),
            events_held: Counter::default(),
        };
        registry.register(
            m::HTTP_SERVER_REQUEST_DURATION.name,
            help(&m::HTTP_SERVER_REQUEST_DURATION),
            this.http.clone(),
        );
        registry.register(
            m::HTTP_SERVER_ACTIVE_REQUESTS.name,
            help(&m::HTTP_SERVER_ACTIVE_REQUESTS),
            this.http_active.clone(),
        );
        registry.register(
            m::KAFKA_MESSAGES_PRODUCED.name,
            help(&m::KAFKA_MESSAGES_PRODUCED),
            this.produced.clone(),
        );
        registry.register(
            m::KAFKA_MESSAGES_CONSUMED.name,
            help(&m::KAFKA_MESSAGES_CONSUMED),
            this.consumed.clone(),
        );
        registry.register(
            m::KAFKA_MESSAGES_FAILED.name,
            help(&m::KAFKA_MESSAGES_FAILED),
            this.failed.clone(),
        );
        registry.register(
            m::DLQ_MESSAGES.name,
            help(&m::DLQ_MESSAGES),
            this.dlq.clone(),
        );
        registry.register(
            m::PROJECTION_FRESHNESS.name,
            help(&m::PROJECTION_FRESHNESS),
            this.freshness.clone(),
        );
        registry.register(
            m::OUTBOX_BACKLOG.name,
            help(&m::OUTBOX_BACKLOG),
            this.outbox_backlog.clone(),
        );
        registry.register(
            m::OUTBOX_OLDEST_AGE.name,
            help(&m::OUTBOX_OLDEST_AGE),
            this.outbox_oldest_age.clone(),
        );
        registry.register(
            m::TODOS_CREATED.name,
            help(&m::TODOS_CREATED),
            this.todos_created.clone(),
        );
        registry.register(
            m::TODOS_COMPLETED.name,
            help(&m::TODOS_COMPLETED),
            this.todos_completed.clone(),
        );
        registry.register(
            m::CIRCUIT_BREAKER_STATE.name,
            help(&m::CIRCUIT_BREAKER_STATE),
            this.breaker_state.clone(),
        );
        registry.register(
            m::DEPENDENCY_CALLS.name,
            help(&m::DEPENDENCY_CALLS),
            this.dependency_calls.clone(),
        );
        registry.register(
            m::WRITES_SHED.name,
            help(&m::WRITES_SHED),
            this.writes_shed.clone(),
        );
        registry.register(
            m::PROJECTION_EVENTS_HELD.name,
            help(&m::PROJECTION_EVENTS_HELD),
            this.events_held.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..this
        }
    }

    /// A circuit breaker for `dependency` whose state and calls are exported
    /// (`circuit_breaker_state`, `dependency_calls_total`).
    pub fn breaker(
        &self,
        dependency: &str,
        failure_threshold: u32,
        open_for: std::time::Duration,
    ) -> Arc<crate::retry::CircuitBreaker> {
        let dep = dependency.to_string();
        let state = self
            .breaker_state
            .get_or_create(&DependencyLabels {
                dependency: dep.clone(),
            })
            .clone();
        let calls = self.dependency_calls.clone();
        for outcome in ["ok", "failed", "rejected"] {
            let _ = calls.get_or_create(&DependencyOutcomeLabels {
                dependency: dep.clone(),
                outcome,
            });
        }
        let last = std::sync::Mutex::new(crate::retry::BreakerCounts::default());
        Arc::new(
            crate::retry::CircuitBreaker::new(dependency, failure_threshold, open_for).on_change(
                Box::new(move |s, counts| {
                    state.set(s.value());
                    let mut prev = last.lock().unwrap_or_else(|e| e.into_inner());
                    for (outcome, now, before) in [
                        ("ok", counts.ok, prev.ok),
                        ("failed", counts.failed, prev.failed),
                        ("rejected", counts.rejected, prev.rejected),
                    ] {
                        if now > before {
                            calls
                                .get_or_create(&DependencyOutcomeLabels {
                                    dependency: dep.clone(),
                                    outcome,
                                })
                                .inc_by(now - before);
                        }
                    }
                    *prev = counts;
                }),
            ),
        )
    }

    pub fn topic(topic: &str) -> TopicLabels {
        TopicLabels {
            topic: topic.to_string(),
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// OpenMetrics by default; the classic text format (0.0.4) for clients that
/// ask only for `text/plain` (older scrapers, `promtool check metrics`).
pub async fn metrics_handler(
    State(metrics): State<Metrics>,
    headers: axum::http::HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let classic = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    let body = metrics.encode();
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

/// OpenMetrics → Prometheus text format 0.0.4: a counter family `x` becomes
/// `x_total` in HELP and TYPE (its samples already are), `# EOF` and
/// `# UNIT` go.
pub fn openmetrics_to_text(om: &str) -> String {
    let lines: Vec<&str> = om.lines().collect();
    let mut counters = std::collections::HashSet::new();
    for l in &lines {
        let mut parts = l.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some("counter")) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(om.len());
    for l in lines {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = l.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(l));
        out.push('\n');
    }
    out
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

/// One unit of an in-flight gauge, given back when dropped: a request whose
/// future is dropped at an `await` (client gone, timeout) still leaves.
#[must_use = "the gauge goes back down when this is dropped"]
pub struct InFlight(Gauge);

impl InFlight {
    pub fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// RED middleware: one histogram observation per request, labelled by the
/// matched route template (bounded), never the raw path.
pub async fn track_http(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
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
    let active = InFlight::enter(&metrics.http_active);
    let resp = next.run(req).await;
    drop(active);
    let labels = HttpLabels {
        route,
        method,
        status_class: status_class(resp.status().as_u16()),
    };
    metrics
        .http
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_dropped_in_flight_leaves_the_active_gauge() {
        let g: Gauge = Gauge::default();
        let pending = {
            let g = g.clone();
            async move {
                let _active = InFlight::enter(&g);
                std::future::pending::<()>().await;
            }
        };
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(5), pending).await;
        assert!(timed_out.is_err());
        assert_eq!(
            g.get(),
            0,
            "the abandoned request is no longer counted as active"
        );
    }
}
