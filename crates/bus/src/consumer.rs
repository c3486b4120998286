//! The typed consumer: records are decoded with their contract, poison records
//! are dead-lettered, each record gets a consumer span that continues the
//! producer's trace, and the rest reaches a [`BatchHandler`] as typed batches.
//!
//! # Delivery contract
//!
//! - **Batches.** Whatever is already fetched (up to
//!   [`LoopConfig::max_batch`], the loop never waits to fill a batch) is
//!   decoded and handed to [`BatchHandler::handle`] in one call, in fetch
//!   order (per partition: offset order). A handler applies a batch in one
//!   transaction.
//! - **Commit.** Offsets of a batch are stored only after the handler
//!   returned `Ok` and the batch's poison records are in the DLQ
//!   (`enable.auto.offset.store=false`); the periodic auto-commit then
//!   commits stored offsets only, and a clean shutdown commits synchronously.
//!   A crash before that redelivers the batch: at-least-once, so handlers
//!   must be idempotent (the projection's history row, the processor's
//!   deterministic ids).
//! - **Poison.** A record with no payload (`empty`) or one that fails its
//!   JSON Schema (`schema`) never reaches the handler. It is dead-lettered
//!   (see [`crate::dlq`]) once the rest of its batch was handled, and its
//!   offset is stored with the batch's.
//! - **Handler error.** [`Failure::Unavailable`] (a dependency is down)
//!   retries the same batch with jittered backoff until it succeeds or the
//!   loop shuts down; it never dead-letters. [`Failure::Retryable`] on a batch
//!   of more than one record hands its records to the handler one at a time
//!   to isolate the bad one; a single record is retried up to
//!   [`LoopConfig::max_attempts`] times, then dead-lettered as
//!   `handler-failed`. Either way, nothing after the batch is handled before
//!   it, so order within a partition is kept.
//! - **Shutdown** during a retry stops at once without storing the batch's
//!   offsets: it is redelivered to the next consumer.
//! - **Rebalance.** Stored offsets of revoked partitions are committed by the
//!   client. A batch in hand when its partition is revoked is still handled;
//!   storing its offsets then fails (logged), so the new owner redelivers it:
//!   a duplicate, which idempotent handlers absorb.

use std::future::Future;
use std::time::Duration;

use contracts::schema::SchemaError;
use contracts::topics::headers as h;
use contracts::{TodoEvent, TraceContext};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use telemetry::metrics::TopicLabels;

use crate::metrics::ConsumerMetrics;
use tokio_util::sync::CancellationToken;

use crate::dlq::dead_letter;
use crate::headers::header;

/// A `contracts` type the consumer decodes records into.
pub trait Contract: Sized + Send + Sync {
    /// Parse and validate against the type's JSON Schema.
    fn decode(payload: &[u8]) -> Result<Self, SchemaError>;
    /// The consumer span's `messaging.message.id`.
    fn message_id(&self) -> impl std::fmt::Display;
    /// The trace context the envelope carries, continued when a hop dropped
    /// the record's `traceparent` header.
    fn trace(&self) -> Option<&TraceContext>;
}

impl Contract for TodoEvent {
    fn decode(payload: &[u8]) -> Result<Self, SchemaError> {
        contracts::schema::decode_todo_event(payload)
    }

    fn message_id(&self) -> impl std::fmt::Display {
        self.event_id
    }

    fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }
}

/// How handling a batch failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Handling failed and may succeed later: retry with backoff, then DLQ.
    Retryable(String),
    /// A dependency is down (Postgres, the broker): retry until it is back,
    /// never DLQ.
    Unavailable(String),
}

impl Failure {
    /// [`Failure::Unavailable`] when `unavailable`, else [`Failure::Retryable`].
    pub fn new(error: impl std::fmt::Display, unavailable: bool) -> Self {
        if unavailable {
            Self::Unavailable(error.to_string())
        } else {
            Self::Retryable(error.to_string())
        }
    }
}

/// Handles decoded records in batches (one transaction per batch), in order.
/// See the module documentation for when offsets commit and what each
/// outcome does.
pub trait BatchHandler: Send + Sync {
    /// What the records decode into.
    type Record: Contract;
    /// The operation in consumer span names (`"{topic} {OPERATION}"`).
    const OPERATION: &'static str;
    /// Handle the batch's records, all or nothing. Never empty.
    fn handle(&self, batch: &[Self::Record]) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// How a consume loop retries and where it dead-letters.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub service: &'static str,
    pub group: String,
    pub dlq_topic: &'static str,
    /// Attempts for [`Failure::Retryable`] before dead-lettering.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Store offsets after handling (the default). Off only to simulate a
    /// consumer that dies before its commit.
    pub store_offsets: bool,
    /// Most records handed to a batch handler at once (what is already
    /// fetched; the loop never waits to fill a batch).
    pub max_batch: usize,
}

fn backoff(cfg: &LoopConfig, attempt: u32) -> Duration {
    let exp = cfg.backoff_base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(cfg.backoff_max);
    // Full jitter in [capped/2, capped].
    let half = capped / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// A record the consumer refuses before any handler sees it.
#[derive(Debug, Clone)]
struct Poison {
    kind: &'static str,
    error: String,
}

/// Per fetched message: the index of its decoded record, or why it is poison.
type Slot = Result<usize, Poison>;

fn decode<T: Contract>(msg: &OwnedMessage) -> Result<T, Poison> {
    let payload = msg.payload().ok_or(Poison {
        kind: "empty",
        error: "record has no payload".into(),
    })?;
    T::decode(payload).map_err(|e| Poison {
        kind: "schema",
        error: e.to_string(),
    })
}

/// Consume until `shutdown`, handing whatever is already fetched (up to
/// `max_batch`), decoded, to the handler in one call.
pub async fn consume_batches<H: BatchHandler>(
    consumer: &StreamConsumer,
    producer: &FutureProducer,
    cfg: &LoopConfig,
    metrics: &ConsumerMetrics,
    handler: &H,
    shutdown: CancellationToken,
) {
    use futures_util_now_or_never::now_or_never;
    let ctx = LoopCtx {
        producer,
        cfg,
        metrics,
        handler,
        shutdown: &shutdown,
    };
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch = match first {
            Ok(m) => vec![m.detach()],
            Err(e) => {
                tracing::warn!(error = %e, group = %cfg.group, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while batch.len() < cfg.max_batch.max(1) {
            match now_or_never(consumer.recv()) {
                Some(Ok(m)) => batch.push(m.detach()),
                _ => break,
            }
        }
        let mut records = Vec::with_capacity(batch.len());
        let slots: Vec<Slot> = batch
            .iter()
            .map(|m| {
                decode(m).map(|record| {
                    records.push(record);
                    records.len() - 1
                })
            })
            .collect();
        if !ctx.process(&batch, &records, &slots).await {
            return;
        }
        for msg in &batch {
            metrics
                .consumed
                .get_or_create(&TopicLabels::of(msg.topic()))
                .inc();
            if cfg.store_offsets
                && let Err(e) = consumer.store_offset(msg.topic(), msg.partition(), msg.offset())
            {
                tracing::warn!(error = %e, "storing offset failed; the record may be redelivered");
            }
        }
    }
    // Commit what was stored before leaving, so a clean shutdown replays nothing.
    if cfg.store_offsets
        && let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
    {
        tracing::debug!(error = %e, "final commit");
    }
}

mod futures_util_now_or_never {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Poll once: the value if it is ready now.
    pub fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}

struct LoopCtx<'a, H> {
    producer: &'a FutureProducer,
    cfg: &'a LoopConfig,
    metrics: &'a ConsumerMetrics,
    handler: &'a H,
    shutdown: &'a CancellationToken,
}

impl<H: BatchHandler> LoopCtx<'_, H> {
    /// Handle a batch to completion (handled or dead-lettered). `msgs` and
    /// `slots` run in parallel; `records` are the decoded ones the slots point
    /// at. `false` when shutdown interrupted it (nothing is stored then, so it
    /// is redelivered).
    async fn process(&self, msgs: &[OwnedMessage], records: &[H::Record], slots: &[Slot]) -> bool {
        let mut attempt = 0u32;
        loop {
            let result = if records.is_empty() {
                Ok(())
            } else {
                self.handle(msgs, records, slots).await
            };
            match result {
                Ok(()) => {
                    for (msg, slot) in msgs.iter().zip(slots) {
                        if let Err(p) = slot {
                            self.dead_letter(msg, p.kind, &p.error, attempt + 1).await;
                        }
                    }
                    return true;
                }
                Err(Failure::Retryable(error)) if msgs.len() > 1 => {
                    // Isolate the record that fails: one by one, each with its
                    // own retries.
                    tracing::warn!(
                        error,
                        size = msgs.len(),
                        "batch failed; handling its records one by one"
                    );
                    for (msg, slot) in msgs.iter().zip(slots) {
                        let msg = std::slice::from_ref(msg);
                        let done = match slot {
                            Ok(i) => {
                                let record = std::slice::from_ref(&records[*i]);
                                Box::pin(self.process(msg, record, &[Ok(0)])).await
                            }
                            Err(_) => {
                                Box::pin(self.process(msg, &[], std::slice::from_ref(slot))).await
                            }
                        };
                        if !done {
                            return false;
                        }
                    }
                    return true;
                }
                Err(Failure::Retryable(error)) => {
                    self.count_failed(msgs);
                    attempt += 1;
                    if attempt >= self.cfg.max_attempts {
                        self.dead_letter(&msgs[0], "handler-failed", &error, attempt)
                            .await;
                        return true;
                    }
                    tracing::warn!(
                        error,
                        attempt,
                        offset = msgs[0].offset(),
                        partition = msgs[0].partition(),
                        "handler failed, retrying"
                    );
                }
                Err(Failure::Unavailable(error)) => {
                    self.count_failed(msgs);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(
                        error,
                        attempt,
                        "dependency unavailable, retrying the same records"
                    );
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff(self.cfg, attempt)) => {}
            }
        }
    }

    /// One call of the handler, with a consumer span per record open while
    /// it runs.
    async fn handle(
        &self,
        msgs: &[OwnedMessage],
        records: &[H::Record],
        slots: &[Slot],
    ) -> Result<(), Failure> {
        let spans: Vec<tracing::Span> = msgs
            .iter()
            .zip(slots)
            .filter_map(|(msg, slot)| {
                let record = &records[*slot.as_ref().ok()?];
                Some(consumer_span(
                    H::OPERATION,
                    msg,
                    record.message_id(),
                    record.trace(),
                ))
            })
            .collect();
        let result = self.handler.handle(records).await;
        drop(spans);
        result
    }

    async fn dead_letter(
        &self,
        msg: &OwnedMessage,
        kind: &'static str,
        error: &str,
        attempts: u32,
    ) {
        dead_letter(
            self.producer,
            self.cfg,
            self.metrics,
            msg,
            kind,
            error,
            attempts,
        )
        .await;
    }

    fn count_failed(&self, batch: &[OwnedMessage]) {
        for m in batch {
            self.metrics
                .failed
                .get_or_create(&TopicLabels::of(m.topic()))
                .inc();
        }
    }
}

/// A consumer span for one record, child of the producer span whose context
/// the record's `traceparent` header carries (else the envelope's `trace`).
fn consumer_span(
    operation: &str,
    msg: &OwnedMessage,
    message_id: impl std::fmt::Display,
    envelope_trace: Option<&TraceContext>,
) -> tracing::Span {
    let from_header = header(msg, h::TRACEPARENT).map(|tp| TraceContext {
        traceparent: tp.to_string(),
        tracestate: header(msg, h::TRACESTATE).map(str::to_string),
    });
    let span = tracing::info_span!(
        "kafka.consume",
        otel.name = format!("{} {operation}", msg.topic()),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = %msg.topic(),
        messaging.message.id = %message_id,
    );
    telemetry::trace::continue_trace(&span, from_header.as_ref().or(envelope_trace));
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;

    fn record(payload: Option<&[u8]>) -> OwnedMessage {
        OwnedMessage::new(
            payload.map(<[u8]>::to_vec),
            None,
            "todo-events".into(),
            Timestamp::NotAvailable,
            0,
            7,
            None,
        )
    }

    fn poison_kind(payload: Option<&[u8]>) -> &'static str {
        match decode::<TodoEvent>(&record(payload)) {
            Ok(ev) => panic!("decoded {ev:?}"),
            Err(p) => p.kind,
        }
    }

    #[test]
    fn records_that_are_empty_or_fail_their_schema_are_poison_by_kind() {
        assert_eq!(poison_kind(None), "empty");
        assert_eq!(poison_kind(Some(b"not json")), "schema");
        assert_eq!(
            poison_kind(Some(b"{\"event_type\":\"todo.created\"}")),
            "schema"
        );
    }

    #[test]
    fn a_failure_is_unavailable_only_when_the_dependency_is_down() {
        assert!(matches!(Failure::new("down", true), Failure::Unavailable(e) if e == "down"));
        assert!(matches!(Failure::new("bad", false), Failure::Retryable(e) if e == "bad"));
    }
}
