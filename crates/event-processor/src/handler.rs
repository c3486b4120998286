//! What the processor does with each todo event, and the due-soon sweep.

use std::time::Duration;

use bus::rdkafka::producer::{FutureProducer, FutureRecord};
use bus::{BatchHandler, Failure};
use chrono::{DateTime, Utc};
use contracts::{
    NOTIFICATION_EVENT_SCHEMA_VERSION, NotificationEvent, NotificationKind, TodoEvent,
    TodoEventData, USER_EVENT_SCHEMA_VERSION, UserEvent, UserEventKind, topics,
};
use sqlx::PgPool;
use telemetry::metrics::TopicLabels;
use todo_store::StoreError;
use todo_store::processor as store;
use uuid::Uuid;

/// Namespace for deterministic ids of events we derive from other events.
const DERIVED: Uuid = Uuid::from_u128(0x6f1c_7d2e_1b7a_4c55_9a0e_2b4f_8c3d_1e57);

pub struct Processor {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub metrics: crate::metrics::Metrics,
    pub due_soon: chrono::Duration,
    pub fail_marker: Option<String>,
    /// The processor's tables, analyzed early while they have no statistics.
    pub young: todo_store::young::YoungTables,
}

fn store_failure(e: StoreError) -> Failure {
    Failure::new(&e, e.is_unavailable())
}

impl Processor {
    async fn produce(
        &self,
        topic: &str,
        key: &str,
        event_type: &str,
        version: u32,
        payload: Vec<u8>,
        traceparent: Option<&str>,
    ) -> Result<(), Failure> {
        let headers = bus::record_headers(event_type, version, traceparent, None);
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(&payload)
            .headers(headers);
        match self.producer.send(record, Duration::from_secs(0)).await {
            Ok(_) => {
                self.metrics
                    .producer
                    .produced
                    .get_or_create(&TopicLabels::of(topic))
                    .inc();
                Ok(())
            }
            // The broker being away is not the event's fault: retry, never DLQ.
            Err((e, _)) => Err(Failure::Unavailable(format!("producing to {topic}: {e}"))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn notification(
        &self,
        reason: &str,
        todo_id: Uuid,
        user_id: &str,
        title: &str,
        due: Option<DateTime<Utc>>,
        caused_by: Uuid,
        trace: Option<contracts::TraceContext>,
    ) -> NotificationEvent {
        NotificationEvent {
            event_id: Uuid::new_v5(&DERIVED, format!("{reason}:{caused_by}").as_bytes()),
            event_type: NotificationKind::Email,
            schema_version: NOTIFICATION_EVENT_SCHEMA_VERSION,
            occurred_at: Utc::now(),
            user_id: user_id.to_string(),
            todo_id,
            reason: reason.to_string(),
            title: title.to_string(),
            due_date: due,
            caused_by,
            trace,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn notify_due(
        &self,
        kind_reason: &str,
        todo_id: Uuid,
        user_id: &str,
        title: &str,
        due: Option<DateTime<Utc>>,
        caused_by: Uuid,
        trace: Option<contracts::TraceContext>,
    ) -> Result<(), Failure> {
        let ev = self.notification(
            kind_reason,
            todo_id,
            user_id,
            title,
            due,
            caused_by,
            trace.clone(),
        );
        let bytes = contracts::schema::encode_notification_event(&ev)
            .map_err(|e| Failure::Retryable(format!("notification failed its schema: {e}")))?;
        self.produce(
            topics::NOTIFICATION_EVENTS,
            user_id,
            ev.event_type.as_str(),
            NOTIFICATION_EVENT_SCHEMA_VERSION,
            bytes,
            trace.as_ref().map(|t| t.traceparent.as_str()),
        )
        .await?;
        store::mark_notified(&self.pool, todo_id, Utc::now())
            .await
            .map_err(store_failure)
    }

    fn user_registered(&self, user_id: &str, cause: &TodoEvent) -> Result<Vec<u8>, Failure> {
        let ue = UserEvent {
            event_id: Uuid::new_v5(&DERIVED, format!("user.registered:{user_id}").as_bytes()),
            event_type: UserEventKind::Registered,
            schema_version: USER_EVENT_SCHEMA_VERSION,
            occurred_at: cause.occurred_at,
            user_id: user_id.to_string(),
            caused_by: cause.event_id,
            trace: cause.trace.clone(),
        };
        contracts::schema::encode_user_event(&ue).map_err(|e| Failure::Retryable(e.to_string()))
    }

    /// Record the batch, then emit what it caused, then mark notifications
    /// sent: a crash anywhere repeats work (same ids), never loses it.
    async fn process(&self, events: &[TodoEvent]) -> Result<(), Failure> {
        if let Some(marker) = &self.fail_marker {
            let hit = events.iter().any(|e| matches!(&e.data, TodoEventData::Created(c) if c.title.contains(marker.as_str())));
            if hit {
                return Err(Failure::Retryable(format!(
                    "injected failure: title contains '{marker}'"
                )));
            }
        }
        let now = Utc::now();
        let effects = store::apply_batch(&self.pool, events, now, now + self.due_soon)
            .await
            .map_err(store_failure)?;
        self.young
            .applied(&self.pool, events.len() as u64, "event processor");
        let by_id: std::collections::HashMap<Uuid, &TodoEvent> =
            events.iter().map(|e| (e.event_id, e)).collect();
        let mut sends = Vec::new();
        for (user, cause) in &effects.registered {
            let Some(ev) = by_id.get(cause) else { continue };
            let bytes = self.user_registered(user, ev)?;
            let tp = ev.trace.as_ref().map(|t| t.traceparent.clone());
            sends.push((
                topics::USER_EVENTS,
                user.clone(),
                UserEventKind::Registered.as_str(),
                USER_EVENT_SCHEMA_VERSION,
                bytes,
                tp,
            ));
        }
        let mut notified = Vec::new();
        for (due, cause) in &effects.due_soon {
            let trace = by_id.get(cause).and_then(|e| e.trace.clone());
            let ev = self.notification(
                "due-soon-on-create",
                due.todo_id,
                &due.user_id,
                &due.title,
                Some(due.due_date),
                *cause,
                trace.clone(),
            );
            let bytes = contracts::schema::encode_notification_event(&ev)
                .map_err(|e| Failure::Retryable(format!("notification failed its schema: {e}")))?;
            sends.push((
                topics::NOTIFICATION_EVENTS,
                due.user_id.clone(),
                ev.event_type.as_str(),
                NOTIFICATION_EVENT_SCHEMA_VERSION,
                bytes,
                trace.map(|t| t.traceparent),
            ));
            notified.push(due.todo_id);
        }
        let results =
            futures::future::join_all(sends.iter().map(|(topic, key, ty, ver, bytes, tp)| {
                self.produce(topic, key, ty, *ver, bytes.clone(), tp.as_deref())
            }))
            .await;
        results.into_iter().collect::<Result<Vec<()>, Failure>>()?;
        store::mark_notified_many(&self.pool, &notified, Utc::now())
            .await
            .map_err(store_failure)
    }

    /// Refreshes the overdue and active-user gauges from the processor's tables.
    pub async fn refresh_business_gauges(&self) -> Result<(), StoreError> {
        let counts = store::business_counts(&self.pool, Utc::now()).await?;
        self.metrics.set_business(counts);
        Ok(())
    }

    /// Notify every open todo due within the window that was not notified yet.
    pub async fn sweep(&self) -> Result<usize, Failure> {
        let now = Utc::now();
        let due = store::due_between(&self.pool, now, now + self.due_soon)
            .await
            .map_err(store_failure)?;
        let n = due.len();
        for d in due {
            let cause = Uuid::new_v5(
                &DERIVED,
                format!("{}:{}", d.todo_id, d.due_date.timestamp_micros()).as_bytes(),
            );
            self.notify_due(
                "due-soon-sweep",
                d.todo_id,
                &d.user_id,
                &d.title,
                Some(d.due_date),
                cause,
                None,
            )
            .await?;
        }
        Ok(n)
    }
}

impl BatchHandler for Processor {
    type Record = TodoEvent;
    const OPERATION: &'static str = "process";

    async fn handle(&self, events: &[TodoEvent]) -> Result<(), Failure> {
        self.process(events).await
    }
}
