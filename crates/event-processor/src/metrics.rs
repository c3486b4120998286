//! What the event processor emits beside HTTP: its consume loop's set, the
//! records it produces (notifications, user events) and the business gauges
//! it can count from its own tables (overdue todos, active users).

use contracts::metrics as m;
use telemetry::metrics::{Gauge, MetricsRegistry};

#[derive(Clone)]
pub struct Metrics {
    pub consumer: bus::ConsumerMetrics,
    pub producer: bus::ProducerMetrics,
    pub overdue: Gauge,
    pub users_active: Gauge,
}

impl Metrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            consumer: bus::ConsumerMetrics::register(r),
            producer: bus::ProducerMetrics::register(r),
            overdue: r.gauge(&m::TODOS_OVERDUE),
            users_active: r.gauge(&m::USERS_ACTIVE),
        }
    }

    /// Sets the business gauges from `todo_store::processor::business_counts`.
    pub fn set_business(&self, (overdue, users): (i64, i64)) {
        self.overdue.set(overdue);
        self.users_active.set(users);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_gauges_are_exposed_without_a_user_label() {
        let mut r = MetricsRegistry::new("event-processor", "stable");
        let metrics = Metrics::register(&mut r);
        metrics.set_business((3, 2));
        let text = r.finish().encode();
        assert!(
            text.contains("todos_overdue{service=\"event-processor\",version=\"stable\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("users_active{service=\"event-processor\",version=\"stable\"} 2"),
            "{text}"
        );
        assert!(!text.contains("user_id"), "{text}");
    }
}
