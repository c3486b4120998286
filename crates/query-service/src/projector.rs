//! The projector: `todo-events` → read model. Each batch of fetched records
//! is applied with its dedupe records in one transaction; offsets are stored
//! only afterwards.

use bus::rdkafka::message::{Message, OwnedMessage};
use bus::{BatchFuture, BatchHandler, Failure, Poison};
use chrono::Utc;
use sqlx::PgPool;
use telemetry::metrics::NoLabels;
use todo_store::StoreError;
use todo_store::read::{self, Tables};

pub struct Projector {
    pub pool: PgPool,
    pub metrics: crate::metrics::Metrics,
}

/// Classify a store error for the consume loop.
pub fn failure(e: StoreError) -> Failure {
    if e.is_unavailable() {
        Failure::Unavailable(e.to_string())
    } else {
        Failure::Retryable(e.to_string())
    }
}

/// Decode a `todo-events` record or say why it is poison.
pub fn decode(msg: &OwnedMessage) -> Result<contracts::TodoEvent, Failure> {
    let payload = msg.payload().ok_or(Failure::Poison {
        kind: "empty",
        error: "record has no payload".into(),
    })?;
    contracts::schema::decode_todo_event(payload).map_err(|e| Failure::Poison {
        kind: "schema",
        error: e.to_string(),
    })
}

impl BatchHandler for Projector {
    fn handle_batch<'a>(&'a self, msgs: &'a [OwnedMessage]) -> BatchFuture<'a> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(msgs.len());
            let mut events = Vec::with_capacity(msgs.len());
            for m in msgs {
                match decode(m) {
                    Ok(ev) => {
                        events.push(ev);
                        outcomes.push(None);
                    }
                    Err(Failure::Poison { kind, error }) => {
                        outcomes.push(Some(Poison { kind, error }))
                    }
                    Err(other) => return Err(other),
                }
            }
            let spans: Vec<tracing::Span> = msgs
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_none())
                .zip(&events)
                .map(|((m, _), ev)| {
                    bus::consumer_span("project", m, ev.event_id, ev.trace.as_ref())
                })
                .collect();
            let batch = read::apply_batch(&self.pool, Tables::Live, &events)
                .await
                .map_err(failure)?;
            // An event ahead of a missing earlier version is kept in the
            // history (applied once the gap fills), and said so: a warning
            // per such event and `projection_events_held_total`.
            for h in &batch.held {
                for (event_id, version) in &h.arrived {
                    tracing::warn!(
                        todo_id = %h.todo_id,
                        %event_id,
                        version,
                        applied_through = h.applied_through,
                        "event held: an earlier version of this todo has not arrived; it is kept and applied once the gap is filled"
                    );
                    self.metrics.events_held.inc();
                }
            }
            let applied = batch.applied;
            let now = Utc::now();
            let freshness = self.metrics.freshness.get_or_create(&NoLabels {});
            for ev in events.iter().filter(|e| applied.contains(&e.event_id)) {
                let lag = (now - ev.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                freshness.observe(lag.max(0.0));
            }
            drop(spans);
            if applied.len() < events.len() {
                tracing::debug!(
                    duplicates = events.len() - applied.len(),
                    "duplicate events skipped"
                );
            }
            Ok(outcomes)
        })
    }
}
