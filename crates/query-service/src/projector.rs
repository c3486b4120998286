//! The projector: `todo-events` → read model. Each batch of fetched records
//! is applied with its dedupe records in one transaction; offsets are stored
//! only afterwards.

use bus::{BatchHandler, Failure};
use chrono::Utc;
use contracts::TodoEvent;
use sqlx::PgPool;
use telemetry::metrics::{NoLabels, TraceExemplar};
use todo_store::read::{self, Tables};
use todo_store::young::YoungTables;

pub struct Projector {
    pub pool: PgPool,
    pub metrics: crate::metrics::Metrics,
    /// The read model's tables, analyzed early while they have no statistics.
    pub young: YoungTables,
}

impl Projector {
    pub fn new(pool: PgPool, metrics: crate::metrics::Metrics) -> Self {
        Self {
            pool,
            metrics,
            young: YoungTables::new(Tables::Live.names()),
        }
    }
}

impl BatchHandler for Projector {
    type Record = TodoEvent;
    const OPERATION: &'static str = "project";

    async fn handle(&self, events: &[TodoEvent]) -> Result<(), Failure> {
        let batch = read::apply_batch(&self.pool, Tables::Live, events)
            .await
            .map_err(|e| Failure::new(&e, e.is_unavailable()))?;
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
        self.young
            .applied(&self.pool, batch.applied.len() as u64, "read model");
        let applied = batch.applied;
        let now = Utc::now();
        let freshness = self.metrics.freshness.get_or_create(&NoLabels {});
        for ev in events.iter().filter(|e| applied.contains(&e.event_id)) {
            let lag = (now - ev.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            freshness.observe(
                lag.max(0.0),
                TraceExemplar::of_context(ev.trace.as_ref()),
                None,
            );
        }
        if applied.len() < events.len() {
            tracing::debug!(
                duplicates = events.len() - applied.len(),
                "duplicate events skipped"
            );
        }
        Ok(())
    }
}
