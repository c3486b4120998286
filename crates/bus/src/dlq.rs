//! The dead-letter queue: a record the consumer gives up on is copied, key,
//! payload and original headers included, to the loop's DLQ topic with
//! headers saying why (`dlq-*` in `contracts::topics::headers`: error, error
//! kind, attempts, source topic, partition and offset, consumer group), and
//! counted in the DLQ metric by source topic and reason.

use std::time::Duration;

use contracts::topics::headers as h;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telemetry::metrics::DlqLabels;

use crate::metrics::ConsumerMetrics;

use crate::consumer::LoopConfig;

/// Produce `msg` to the DLQ, retrying until the broker takes it, then count
/// and log it once.
pub(crate) async fn dead_letter(
    producer: &FutureProducer,
    cfg: &LoopConfig,
    metrics: &ConsumerMetrics,
    msg: &OwnedMessage,
    kind: &'static str,
    error: &str,
    attempts: u32,
) {
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let attempts_s = attempts.to_string();
    let mut headers = OwnedHeaders::new();
    if let Some(orig) = msg.headers() {
        for hd in orig.iter() {
            headers = headers.insert(Header {
                key: hd.key,
                value: hd.value,
            });
        }
    }
    let headers = headers
        .insert(Header {
            key: h::DLQ_ERROR,
            value: Some(error),
        })
        .insert(Header {
            key: h::DLQ_ERROR_KIND,
            value: Some(kind),
        })
        .insert(Header {
            key: h::DLQ_ATTEMPTS,
            value: Some(&attempts_s),
        })
        .insert(Header {
            key: h::DLQ_SOURCE_TOPIC,
            value: Some(msg.topic()),
        })
        .insert(Header {
            key: h::DLQ_SOURCE_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: h::DLQ_SOURCE_OFFSET,
            value: Some(&offset),
        })
        .insert(Header {
            key: h::DLQ_CONSUMER_GROUP,
            value: Some(&cfg.group),
        });
    let payload = msg.payload().unwrap_or(&[]);
    let key = msg.key().unwrap_or(&[]);
    // Keep trying: losing a poison record would hide the problem.
    loop {
        let record = FutureRecord::to(cfg.dlq_topic)
            .payload(payload)
            .key(key)
            .headers(headers.clone());
        match producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => break,
            Err((e, _)) => {
                tracing::error!(error = %e, "dead-lettering failed, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    metrics
        .dlq
        .get_or_create(&DlqLabels {
            topic: msg.topic().to_string(),
            reason: kind,
        })
        .inc();
    tracing::warn!(
        kind,
        error,
        topic = msg.topic(),
        partition = msg.partition(),
        offset = msg.offset(),
        group = %cfg.group,
        "record dead-lettered"
    );
}
