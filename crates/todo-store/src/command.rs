//! Command side: load a stream, append events + outbox rows + idempotency
//! record in one statement, and the outbox relay's queries.

use chrono::{DateTime, Utc};
use contracts::TodoEvent;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

/// The first response to an idempotent request, replayed for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: Vec<u8>,
    pub status: u16,
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

/// Events of one stream, oldest first.
pub async fn load_stream(pool: &PgPool, todo_id: Uuid) -> Result<Vec<TodoEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT payload::text AS payload FROM events WHERE stream_id = $1 ORDER BY version",
    )
    .bind(todo_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let text: String = r.try_get("payload")?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("event of stream {todo_id}: {e}")))
        })
        .collect()
}

/// Every event of every stream, oldest first (for tests and audits).
pub async fn all_events(pool: &PgPool) -> Result<Vec<TodoEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT payload::text AS payload FROM events ORDER BY occurred_at, stream_id, version",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let text: String = r.try_get("payload")?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

pub async fn find_idempotency(
    pool: &PgPool,
    user_id: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT request_hash, status, response_body, etag, location FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(IdempotencyRecord {
            request_hash: r.try_get("request_hash")?,
            status: r.try_get::<i16, _>("status")? as u16,
            body: r.try_get("response_body")?,
            etag: r.try_get("etag")?,
            location: r.try_get("location")?,
        })
    })
    .transpose()
}

/// One event ready to append, with its encoded (schema-validated) record.
pub struct NewEvent {
    pub event: TodoEvent,
    pub topic: &'static str,
    pub record: Vec<u8>,
}

/// One request's write: its events and, with an `Idempotency-Key`,
/// `(user, key, record)` so a retry replays the response.
pub struct Write {
    pub events: Vec<NewEvent>,
    pub idempotency: Option<(String, String, IdempotencyRecord)>,
}

/// Append a write's events, their outbox rows and its idempotency record
/// atomically. A taken `(stream_id, version)` gives [`StoreError::Conflict`];
/// a taken idempotency key gives [`StoreError::IdempotencyRace`].
pub async fn append(pool: &PgPool, write: &Write) -> Result<(), StoreError> {
    append_batch(pool, &[write]).await
}

/// Append several requests' writes in one statement (one transaction): all
/// commit or none does. Used by the group committer; errors are those of
/// [`append`] for whichever write caused them.
pub async fn append_batch(pool: &PgPool, writes: &[&Write]) -> Result<(), StoreError> {
    let n: usize = writes.iter().map(|w| w.events.len()).sum();
    let mut ids = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut topics = Vec::with_capacity(n);
    let mut k_users = Vec::new();
    let mut k_keys = Vec::new();
    let mut k_hashes: Vec<Vec<u8>> = Vec::new();
    let mut k_status: Vec<i16> = Vec::new();
    let mut k_bodies: Vec<Vec<u8>> = Vec::new();
    let mut k_etags: Vec<Option<String>> = Vec::new();
    let mut k_locations: Vec<Option<String>> = Vec::new();
    for w in writes {
        for ne in &w.events {
            let e = &ne.event;
            ids.push(e.event_id);
            streams.push(e.todo_id);
            versions.push(e.stream_version);
            types.push(e.event_type().to_string());
            users.push(e.user_id.clone());
            times.push(e.occurred_at);
            payloads.push(
                std::str::from_utf8(&ne.record)
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?
                    .to_string(),
            );
            topics.push(ne.topic.to_string());
        }
        if let Some((u, k, r)) = &w.idempotency {
            k_users.push(u.clone());
            k_keys.push(k.clone());
            k_hashes.push(r.request_hash.clone());
            k_status.push(r.status as i16);
            k_bodies.push(r.body.clone());
            k_etags.push(r.etag.clone());
            k_locations.push(r.location.clone());
        }
    }
    sqlx::query(
        r#"
        WITH e AS (
            INSERT INTO events (event_id, stream_id, version, event_type, user_id, occurred_at, payload)
            SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[], $6::timestamptz[], $7::text[]::json[])
        ), o AS (
            INSERT INTO outbox (stream_id, version, topic)
            SELECT * FROM UNNEST($2::uuid[], $3::int8[], $8::text[])
        ), i AS (
            INSERT INTO idempotency_keys (user_id, idem_key, request_hash, status, response_body, etag, location)
            SELECT * FROM UNNEST($9::text[], $10::text[], $11::bytea[], $12::int2[], $13::bytea[], $14::text[], $15::text[])
        )
        SELECT 1
        "#,
    )
    .bind(&ids)
    .bind(&streams)
    .bind(&versions)
    .bind(&types)
    .bind(&users)
    .bind(&times)
    .bind(&payloads)
    .bind(&topics)
    .bind(&k_users)
    .bind(&k_keys)
    .bind(&k_hashes)
    .bind(&k_status)
    .bind(&k_bodies)
    .bind(&k_etags)
    .bind(&k_locations)
    .execute(pool)
    .await?;
    Ok(())
}

/// A row waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub event_type: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// The oldest unsent rows, in commit order.
pub async fn outbox_batch(pool: &PgPool, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.id, e.event_id, o.topic, e.stream_id::text AS record_key, convert_to(e.payload::text, 'UTF8') AS payload,
                e.event_type, e.payload->'trace'->>'traceparent' AS traceparent, e.payload->'trace'->>'tracestate' AS tracestate
         FROM outbox o JOIN events e ON e.stream_id = o.stream_id AND e.version = o.version
         ORDER BY o.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(OutboxRow {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                topic: r.try_get("topic")?,
                key: r.try_get("record_key")?,
                payload: r.try_get("payload")?,
                event_type: r.try_get("event_type")?,
                traceparent: r.try_get("traceparent")?,
                tracestate: r.try_get("tracestate")?,
            })
        })
        .collect()
}

/// Forget rows the broker acknowledged. The events table keeps the events.
pub async fn outbox_delete<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    ids: &[i64],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// The relay's step, one statement: forget the rows the broker acknowledged
/// (`acked`) and read the oldest unsent rows after them, in commit order.
/// The read sees the table as it was before the delete, so it leaves out
/// `acked` by id (never by "id greater than": ids are not commit-ordered
/// under concurrent writers). The trace context is read from the record
/// in Rust, not by Postgres parsing the stored JSON once per field.
pub async fn outbox_step(
    conn: &mut sqlx::PgConnection,
    acked: &[i64],
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = sqlx::query(
        "WITH gone AS (DELETE FROM outbox WHERE id = ANY($1))
         SELECT o.id, e.event_id, o.topic, e.stream_id::text AS record_key, e.payload::text AS payload, e.event_type
         FROM outbox o JOIN events e ON e.stream_id = o.stream_id AND e.version = o.version
         WHERE NOT (o.id = ANY($1))
         ORDER BY o.id LIMIT $2",
    )
    .bind(acked)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let payload: String = r.try_get("payload")?;
            let trace = record_trace(payload.as_bytes());
            Ok(OutboxRow {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                topic: r.try_get("topic")?,
                key: r.try_get("record_key")?,
                payload: payload.into_bytes(),
                event_type: r.try_get("event_type")?,
                traceparent: trace.as_ref().map(|t| t.traceparent.clone()),
                tracestate: trace.and_then(|t| t.tracestate),
            })
        })
        .collect()
}

/// The `trace` member of a stored record, if it has a valid one (a record
/// without it is still published, with no trace to continue).
fn record_trace(record: &[u8]) -> Option<contracts::TraceContext> {
    #[derive(serde::Deserialize)]
    struct Traced {
        trace: Option<contracts::TraceContext>,
    }
    serde_json::from_slice::<Traced>(record).ok()?.trace
}

/// Backlog size and age of the oldest row in seconds (0 when empty).
pub async fn outbox_stats(pool: &PgPool) -> Result<(i64, f64), StoreError> {
    let row = sqlx::query(
        "SELECT count(*)::int8 AS n, COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 AS age FROM outbox",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("n")?, row.try_get("age")?))
}
