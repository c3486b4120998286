//! What the command service emits beside HTTP: the relay's producer set and
//! outbox gauges, the todo business counters, load shedding and the
//! breakers in front of Postgres and the broker.

use std::sync::atomic::AtomicU64;

use contracts::metrics as m;
use telemetry::metrics::{Counter, Gauge, MetricsRegistry};
use telemetry::retry::BreakerMetrics;

#[derive(Clone)]
pub struct Metrics {
    /// Outbox rows the relay published, or failed to.
    pub producer: bus::ProducerMetrics,
    pub outbox_backlog: Gauge,
    pub outbox_oldest_age: Gauge<f64, AtomicU64>,
    pub todos_created: Counter,
    pub todos_completed: Counter,
    pub writes_shed: Counter,
    pub breakers: BreakerMetrics,
}

impl Metrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            producer: bus::ProducerMetrics::register(r),
            outbox_backlog: r.gauge(&m::OUTBOX_BACKLOG),
            outbox_oldest_age: r.register(&m::OUTBOX_OLDEST_AGE, Gauge::default),
            todos_created: r.counter(&m::TODOS_CREATED),
            todos_completed: r.counter(&m::TODOS_COMPLETED),
            writes_shed: r.counter(&m::WRITES_SHED),
            breakers: BreakerMetrics::register(r),
        }
    }
}
