//! W3C trace context across hops: a span's context out into the event
//! envelope and Kafka headers, and back into spans on the consuming side.
//! Reading it from HTTP headers is `service_kit::trace`.

use std::collections::HashMap;

use contracts::TraceContext;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Map(HashMap<String, String>);

impl Extractor for Map {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for Map {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

/// The remote parent carried by a `traceparent` (and `tracestate`).
pub fn parent_from(trace: Option<&TraceContext>) -> opentelemetry::Context {
    let mut m = HashMap::new();
    if let Some(t) = trace {
        m.insert("traceparent".to_string(), t.traceparent.clone());
        if let Some(s) = &t.tracestate {
            m.insert("tracestate".to_string(), s.clone());
        }
    }
    let carrier = Map(m);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
}

/// Make `span` a child of the remote parent in `trace` (no-op without one).
pub fn continue_trace(span: &tracing::Span, trace: Option<&TraceContext>) {
    if trace.is_some() {
        let _ = span.set_parent(parent_from(trace));
    }
}

/// The trace context to hand to the next hop: the span's own context when
/// tracing is exporting, else `fallback` (propagate what we were given).
pub fn context_of(span: &tracing::Span, fallback: Option<&TraceContext>) -> Option<TraceContext> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return fallback.cloned();
    }
    let mut m = Map(HashMap::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut m));
    let traceparent = m.0.remove("traceparent")?;
    Some(TraceContext {
        traceparent,
        tracestate: m.0.remove("tracestate").filter(|s| !s.is_empty()),
    })
}
