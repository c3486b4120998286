//! Kafka plumbing shared by every service: client settings and topic
//! creation (`settings`), record headers (`headers`), the typed consumer
//! (`consumer`) and its dead-letter queue (`dlq`).
//!
//! Architecture invariant: offsets are stored only after the handler's own
//! transaction committed (or the record was dead-lettered), with
//! `enable.auto.offset.store=false`; the periodic auto-commit then commits
//! stored offsets only. A crash before that replays records, never skips them.

pub mod consumer;
pub mod dlq;
pub mod headers;
pub mod metrics;
pub mod settings;

use rdkafka::error::KafkaError;

pub use consumer::{BatchHandler, Contract, Failure, LoopConfig, consume_batches};
pub use headers::{header, record_headers};
pub use metrics::{ConsumerMetrics, ProducerMetrics};
pub use rdkafka;
pub use settings::{KafkaSettings, broker_reachable, ensure_topics};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {error}")]
    Topic { topic: String, error: String },
}
