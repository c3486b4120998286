//! The metric sets of Kafka clients. A service registers the ones it runs
//! (`kafka_messages_failed` is one family shared by both when it runs both).

use contracts::metrics as m;
use telemetry::metrics::{Counter, DlqLabels, Family, MetricsRegistry, TopicLabels};

/// The metric set of a consume loop: records handled, failed attempts and
/// dead-lettered records, by topic.
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub consumed: Family<TopicLabels, Counter>,
    pub failed: Family<TopicLabels, Counter>,
    pub dlq: Family<DlqLabels, Counter>,
}

impl ConsumerMetrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            consumed: r.family(&m::KAFKA_MESSAGES_CONSUMED),
            failed: r.family(&m::KAFKA_MESSAGES_FAILED),
            dlq: r.family(&m::DLQ_MESSAGES),
        }
    }
}

/// The metric set of a producer: records the broker acknowledged and ones it
/// refused, by topic.
#[derive(Clone)]
pub struct ProducerMetrics {
    pub produced: Family<TopicLabels, Counter>,
    pub failed: Family<TopicLabels, Counter>,
}

impl ProducerMetrics {
    pub fn register(r: &mut MetricsRegistry) -> Self {
        Self {
            produced: r.family(&m::KAFKA_MESSAGES_PRODUCED),
            failed: r.family(&m::KAFKA_MESSAGES_FAILED),
        }
    }
}
