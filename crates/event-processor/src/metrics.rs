//! What the event processor emits beside HTTP: its consume loop's set and
//! the records it produces (notifications, user events).

use telemetry::metrics::MetricsRegistry;

#[derive(Clone)]
pub struct Metrics {
    pub consumer: bus::ConsumerMetrics,
    pub producer: bus::ProducerMetrics,
}

impl Metrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            consumer: bus::ConsumerMetrics::register(r),
            producer: bus::ProducerMetrics::register(r),
        }
    }
}
