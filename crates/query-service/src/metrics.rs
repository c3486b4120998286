//! What the query service emits beside HTTP: its consume loop's set and the
//! projection's own (freshness of applied events, events held for a gap).

use contracts::metrics as m;
use telemetry::metrics::{Counter, HistFamily, MetricsRegistry, NoLabels, TracedHistogram};

fn freshness_histogram() -> TracedHistogram {
    TracedHistogram::new(m::FRESHNESS_BUCKETS.iter().copied())
}

#[derive(Clone)]
pub struct Metrics {
    pub consumer: bus::ConsumerMetrics,
    /// Seconds from an event's occurrence to its projection, with the
    /// event's trace (the write that made it) as exemplar when sampled.
    pub freshness: HistFamily<NoLabels>,
    pub events_held: Counter,
}

impl Metrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            consumer: bus::ConsumerMetrics::register(r),
            freshness: r.histograms(&m::PROJECTION_FRESHNESS, freshness_histogram),
            events_held: r.counter(&m::PROJECTION_EVENTS_HELD),
        }
    }
}
