//! The metrics registry and its OpenMetrics exposition.
//!
//! Each component owns a metric set (a struct of counters, gauges and
//! histograms) with a `register` function taking a [`MetricsRegistry`]; a
//! service registers the sets of the components it runs and nothing else,
//! then [`MetricsRegistry::finish`]es into the [`Exposition`] its `/metrics`
//! serves. Families are registered from the typed definitions in
//! `contracts::metrics`; `service` and `version` are constant labels of the
//! whole registry.
//!
//! Two sets may ask for the same family (the Kafka producer and consumer
//! both count `kafka_messages_failed`): the second gets the first's metric,
//! so a family is registered once and counted by both.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use contracts::metrics as m;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::{Metric, Registry};

/// The metric types sets are made of (a label set of its own still needs
/// `prometheus-client` for its derive).
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::exemplar::HistogramWithExemplars;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;

/// The exemplar of a latency observation: the trace it was measured in, so
/// that a slow bucket leads to a slow trace (OpenMetrics exposition only).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

impl TraceExemplar {
    /// The trace of `span`, when it is sampled: an exemplar must lead to a
    /// trace that was exported.
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        Self::sampled(span.context().span().span_context())
    }

    /// The trace an event was written in (its envelope's `traceparent`),
    /// when that trace is sampled.
    pub fn of_context(trace: Option<&contracts::TraceContext>) -> Option<Self> {
        use opentelemetry::trace::TraceContextExt as _;
        trace?;
        Self::sampled(crate::trace::parent_from(trace).span().span_context())
    }

    fn sampled(sc: &opentelemetry::trace::SpanContext) -> Option<Self> {
        (sc.is_valid() && sc.is_sampled()).then(|| Self {
            trace_id: sc.trace_id().to_string(),
        })
    }
}

/// A latency histogram whose buckets each keep the last observation's
/// trace as their exemplar.
pub type TracedHistogram = HistogramWithExemplars<TraceExemplar>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

impl TopicLabels {
    pub fn of(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
        }
    }
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

/// A family of latency histograms that share one set of buckets and carry
/// trace exemplars.
pub type HistFamily<L> = Family<L, TracedHistogram, fn() -> TracedHistogram>;

/// prometheus-client ends every HELP text with a period itself.
fn help(def: &m::Metric) -> &'static str {
    def.help.trim_end_matches('.')
}

/// Where metric sets register while a service starts.
pub struct MetricsRegistry {
    registry: Registry,
    registered: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl MetricsRegistry {
    pub fn new(service: &str, version: &str) -> Self {
        let registry = Registry::with_labels(
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
        Self {
            registry,
            registered: HashMap::new(),
        }
    }

    /// The metric for `def`: registered now from `make`, or the one an
    /// earlier set registered under that name.
    ///
    /// # Panics
    /// When two sets register one name with different metric types: a bug
    /// in the sets' definitions, found by the first start-up.
    pub fn register<M: Metric + Clone>(&mut self, def: &m::Metric, make: impl FnOnce() -> M) -> M {
        if let Some(existing) = self.registered.get(def.name) {
            return existing
                .downcast_ref::<M>()
                .expect("one metric name, one metric type")
                .clone();
        }
        let metric = make();
        self.registry.register(def.name, help(def), metric.clone());
        self.registered.insert(def.name, Box::new(metric.clone()));
        metric
    }

    pub fn counter(&mut self, def: &m::Metric) -> Counter {
        self.register(def, Counter::default)
    }

    pub fn gauge(&mut self, def: &m::Metric) -> Gauge {
        self.register(def, Gauge::default)
    }

    pub fn family<L, M>(&mut self, def: &m::Metric) -> Family<L, M>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
        M: Metric + Default,
        Family<L, M>: Metric,
    {
        self.register(def, Family::<L, M>::default)
    }

    /// A histogram family with the given buckets.
    pub fn histograms<L>(
        &mut self,
        def: &m::Metric,
        buckets: fn() -> TracedHistogram,
    ) -> HistFamily<L>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        self.register(def, || Family::new_with_constructor(buckets))
    }

    pub fn finish(self) -> Exposition {
        Exposition(Arc::new(self.registry))
    }
}

/// Everything a service registered, ready to serve. Cheap to clone.
#[derive(Clone)]
pub struct Exposition(Arc<Registry>);

impl Exposition {
    /// The OpenMetrics text of every registered family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.0) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// OpenMetrics → Prometheus text format 0.0.4: a counter family `x` becomes
/// `x_total` in HELP and TYPE (its samples already are), `# EOF`, `# UNIT`
/// and exemplars (` # {trace_id="…"} v ts` after a sample) go.
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
        let line = renamed.as_deref().unwrap_or(l);
        out.push_str(without_exemplar(line));
        out.push('\n');
    }
    out
}

/// A sample line without its exemplar: the ` # ` that follows the label
/// set (quoted label values may contain anything) and the value.
fn without_exemplar(line: &str) -> &str {
    if line.starts_with('#') {
        return line;
    }
    let mut in_quotes = false;
    let mut escaped = false;
    let mut labels_end = 0;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                labels_end = i;
                break;
            }
            ' ' if !in_quotes && labels_end == 0 && !line[..i].contains('{') => {
                labels_end = i;
                break;
            }
            _ => {}
        }
    }
    match line[labels_end..].find(" # ") {
        Some(at) => &line[..labels_end + at],
        None => line,
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

    #[test]
    fn two_sets_asking_for_one_family_share_it_and_it_is_exposed_once() {
        let mut r = MetricsRegistry::new("svc", "stable");
        let a: Family<TopicLabels, Counter> = r.family(&m::KAFKA_MESSAGES_FAILED);
        let b: Family<TopicLabels, Counter> = r.family(&m::KAFKA_MESSAGES_FAILED);
        a.get_or_create(&TopicLabels::of("t")).inc();
        b.get_or_create(&TopicLabels::of("t")).inc();
        let text = r.finish().encode();
        let name = m::KAFKA_MESSAGES_FAILED.name;
        assert_eq!(
            text.matches(&format!("# TYPE {name} ")).count(),
            1,
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{name}_total{{service=\"svc\",version=\"stable\",topic=\"t\"}} 2"
            )),
            "{text}"
        );
    }

    #[test]
    fn a_traced_observation_is_an_exemplar_in_openmetrics_and_absent_from_classic_text() {
        let mut r = MetricsRegistry::new("svc", "stable");
        let h: HistFamily<NoLabels> = r.histograms(&m::PROJECTION_FRESHNESS, || {
            TracedHistogram::new([0.1, 1.0].into_iter())
        });
        let trace_id = "0af7651916cd43dd8448eb211c80319c".to_string();
        h.get_or_create(&NoLabels {})
            .observe(0.05, Some(TraceExemplar { trace_id }), None);
        h.get_or_create(&NoLabels {}).observe(0.5, None, None);
        let om = r.finish().encode();
        let name = m::PROJECTION_FRESHNESS.name;
        assert!(
            om.contains(&format!(
                "{name}_bucket{{service=\"svc\",version=\"stable\",le=\"0.1\"}} 1 # {{trace_id=\"0af7651916cd43dd8448eb211c80319c\"}} 0.05\n"
            )),
            "{om}"
        );
        assert!(
            om.contains(&format!(
                "{name}_bucket{{service=\"svc\",version=\"stable\",le=\"1.0\"}} 2\n"
            )),
            "an untraced observation leaves no exemplar: {om}"
        );
        let text = openmetrics_to_text(&om);
        assert!(!text.contains("trace_id"), "{text}");
        assert!(
            text.contains(&format!(
                "{name}_bucket{{service=\"svc\",version=\"stable\",le=\"0.1\"}} 1\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn exemplars_go_from_classic_text_but_a_hash_in_a_label_value_stays() {
        assert_eq!(
            without_exemplar(r#"x_bucket{route="/a # {b}",le="1"} 3 # {trace_id="t"} 0.2 17.5"#),
            r#"x_bucket{route="/a # {b}",le="1"} 3"#
        );
        assert_eq!(
            without_exemplar("x_count 3 # {trace_id=\"t\"} 1"),
            "x_count 3"
        );
        assert_eq!(without_exemplar("x_count 3"), "x_count 3");
        assert_eq!(without_exemplar("# HELP x A # b."), "# HELP x A # b.");
    }

    #[test]
    fn only_a_sampled_trace_makes_an_exemplar() {
        let tc = |flags: &str| contracts::TraceContext {
            traceparent: format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"),
            tracestate: None,
        };
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        assert_eq!(
            TraceExemplar::of_context(Some(&tc("01"))),
            Some(TraceExemplar {
                trace_id: "0af7651916cd43dd8448eb211c80319c".into()
            })
        );
        assert_eq!(TraceExemplar::of_context(Some(&tc("00"))), None);
        assert_eq!(TraceExemplar::of_context(None), None);
        assert_eq!(TraceExemplar::of_span(&tracing::Span::none()), None);
    }
}
