//! What the processor does with each todo event, and the due-soon sweep.

use std::time::Duration;

use bus::rdkafka::message::{Message, OwnedMessage};
use bus::rdkafka::producer::{FutureProducer, FutureRecord};
use bus::{Failure, HandleFuture, Handler};
use chrono::{DateTime, Utc};
use contracts::{
    NOTIFICATION_EVENT_SCHEMA_VERSION, NotificationEvent, NotificationKind, TodoEvent, TodoEventData, USER_EVENT_SCHEMA_VERSION,
    UserEvent, UserEventKind, topics,
};
use service_kit::metrics::Metrics;
use sqlx::PgPool;
use todo_store::StoreError;
use todo_store::processor as store;
use uuid::Uuid;

/// Namespace for deterministic ids of events we derive from other events.
const DERIVED: Uuid = Uuid::from_u128(0x6f1c_7d2e_1b7a_4c55_9a0e_2b4f_8c3d_1e57);

pub struct Processor {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub metrics: Metrics,
    pub due_soon: chrono::Duration,
    pub fail_marker: Option<String>,
}

fn store_failure(e: StoreError) -> Failure {
    if e.is_unavailable() { Failure::Unavailable(e.to_string()) } else { Failure::Retryable(e.to_string()) }
}

impl Processor {
    async fn produce(&self, topic: &str, key: &str, event_type: &str, version: u32, payload: Vec<u8>, traceparent: Option<&str>) -> Result<(), Failure> {
        let headers = bus::record_headers(event_type, version, traceparent, None);
        let record = FutureRecord::to(topic).key(key).payload(&payload).headers(headers);
        match self.producer.send(record, Duration::from_secs(0)).await {
            Ok(_) => {
                self.metrics.produced.get_or_create(&Metrics::topic(topic)).inc();
                Ok(())
            }
            // The broker being away is not the event's fault: retry, never DLQ.
            Err((e, _)) => Err(Failure::Unavailable(format!("producing to {topic}: {e}"))),
        }
    }

    pub async fn notify_due(&self, kind_reason: &str, todo_id: Uuid, user_id: &str, title: &str, due: Option<DateTime<Utc>>, caused_by: Uuid, trace: Option<contracts::TraceContext>) -> Result<(), Failure> {
        let ev = NotificationEvent {
            event_id: Uuid::new_v5(&DERIVED, format!("{kind_reason}:{caused_by}").as_bytes()),
            event_type: NotificationKind::Email,
            schema_version: NOTIFICATION_EVENT_SCHEMA_VERSION,
            occurred_at: Utc::now(),
            user_id: user_id.to_string(),
            todo_id,
            reason: kind_reason.to_string(),
            title: title.to_string(),
            due_date: due,
            caused_by,
            trace: trace.clone(),
        };
        let bytes = contracts::schema::encode_notification_event(&ev)
            .map_err(|e| Failure::Retryable(format!("notification failed its schema: {e}")))?;
        self.produce(topics::NOTIFICATION_EVENTS, &user_id.to_string(), ev.event_type.as_str(), NOTIFICATION_EVENT_SCHEMA_VERSION, bytes, trace.as_ref().map(|t| t.traceparent.as_str())).await?;
        store::mark_notified(&self.pool, todo_id, Utc::now()).await.map_err(store_failure)
    }

    async fn process(&self, ev: &TodoEvent) -> Result<(), Failure> {
        if let (Some(marker), TodoEventData::Created(c)) = (&self.fail_marker, &ev.data) {
            if c.title.contains(marker.as_str()) {
                return Err(Failure::Retryable(format!("injected failure: title contains '{marker}'")));
            }
        }
        let traceparent = ev.trace.as_ref().map(|t| t.traceparent.as_str());
        if store::remember_user(&self.pool, &ev.user_id, ev.event_id, ev.occurred_at).await.map_err(store_failure)? {
            let ue = UserEvent {
                event_id: Uuid::new_v5(&DERIVED, format!("user.registered:{}", ev.user_id).as_bytes()),
                event_type: UserEventKind::Registered,
                schema_version: USER_EVENT_SCHEMA_VERSION,
                occurred_at: ev.occurred_at,
                user_id: ev.user_id.clone(),
                caused_by: ev.event_id,
                trace: ev.trace.clone(),
            };
            let bytes = contracts::schema::encode_user_event(&ue).map_err(|e| Failure::Retryable(e.to_string()))?;
            self.produce(topics::USER_EVENTS, &ev.user_id, ue.event_type.as_str(), USER_EVENT_SCHEMA_VERSION, bytes, traceparent).await?;
        }
        store::track_due(&self.pool, ev).await.map_err(store_failure)?;
        if let TodoEventData::Created(c) = &ev.data {
            if let Some(due) = c.due_date {
                let now = Utc::now();
                if due >= now && due <= now + self.due_soon {
                    self.notify_due("due-soon-on-create", ev.todo_id, &ev.user_id, &c.title, Some(due), ev.event_id, ev.trace.clone()).await?;
                }
            }
        }
        Ok(())
    }

    /// Notify every open todo due within the window that was not notified yet.
    pub async fn sweep(&self) -> Result<usize, Failure> {
        let now = Utc::now();
        let due = store::due_between(&self.pool, now, now + self.due_soon).await.map_err(store_failure)?;
        let n = due.len();
        for d in due {
            let cause = Uuid::new_v5(&DERIVED, format!("{}:{}", d.todo_id, d.due_date.timestamp_micros()).as_bytes());
            self.notify_due("due-soon-sweep", d.todo_id, &d.user_id, &d.title, Some(d.due_date), cause, None).await?;
        }
        Ok(n)
    }
}

impl Handler for Processor {
    fn handle<'a>(&'a self, msg: &'a OwnedMessage) -> HandleFuture<'a> {
        Box::pin(async move {
            let payload = msg.payload().ok_or(Failure::Poison { kind: "empty", error: "record has no payload".into() })?;
            let ev = contracts::schema::decode_todo_event(payload)
                .map_err(|e| Failure::Poison { kind: "schema", error: e.to_string() })?;
            self.process(&ev).await
        })
    }
}
