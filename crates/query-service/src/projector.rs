//! The projector: `todo-events` → read model. Apply and dedupe record commit
//! in one transaction; the offset is stored only afterwards.

use bus::rdkafka::message::{Message, OwnedMessage};
use bus::{Failure, HandleFuture, Handler};
use chrono::Utc;
use service_kit::metrics::{Metrics, NoLabels};
use sqlx::PgPool;
use todo_store::StoreError;
use todo_store::read::{self, Applied, Tables};

pub struct Projector {
    pub pool: PgPool,
    pub metrics: Metrics,
}

/// Classify a store error for the consume loop.
pub fn failure(e: StoreError) -> Failure {
    if e.is_unavailable() { Failure::Unavailable(e.to_string()) } else { Failure::Retryable(e.to_string()) }
}

/// Decode a `todo-events` record or say why it is poison.
pub fn decode(msg: &OwnedMessage) -> Result<contracts::TodoEvent, Failure> {
    let payload = msg.payload().ok_or(Failure::Poison { kind: "empty", error: "record has no payload".into() })?;
    contracts::schema::decode_todo_event(payload).map_err(|e| Failure::Poison { kind: "schema", error: e.to_string() })
}

impl Handler for Projector {
    fn handle<'a>(&'a self, msg: &'a OwnedMessage) -> HandleFuture<'a> {
        Box::pin(async move {
            let ev = decode(msg)?;
            match read::apply(&self.pool, Tables::Live, &ev).await.map_err(failure)? {
                Applied::Applied => {
                    let lag = (Utc::now() - ev.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    self.metrics.freshness.get_or_create(&NoLabels {}).observe(lag.max(0.0));
                }
                Applied::Duplicate => {
                    tracing::debug!(event_id = %ev.event_id, "duplicate event skipped");
                }
            }
            Ok(())
        })
    }
}
