//! The Postgres [`AuditSink`]: entries queue in a bounded channel and a
//! writer appends them in batches (one multi-row INSERT per batch), so the
//! audit trail costs a request a channel send, not a round trip (the writer
//! lingers 50 ms for a batch to fill). When
//! Postgres is away the writer keeps its batch and retries with jittered
//! backoff; the queue then fills and requests wait for room rather than
//! dropping entries. What is queued when the process is killed (-9) is lost:
//! at most one batch interval of entries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row as _};
use telemetry::audit::{AuditEntry, AuditSink, SinkFuture};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::StoreError;

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
const LINGER: Duration = Duration::from_millis(50);

pub struct PgAuditSink {
    tx: mpsc::Sender<AuditEntry>,
}

impl AuditSink for PgAuditSink {
    fn record(&self, entry: AuditEntry) -> SinkFuture<'_> {
        Box::pin(async move {
            if self.tx.send(entry).await.is_err() {
                tracing::error!("audit writer stopped; entry not recorded");
            }
        })
    }
}

/// Start the writer. It stops after `shutdown` once the queue has been idle
/// for a moment (requests still draining may add entries).
pub fn spawn(
    pool: PgPool,
    shutdown: CancellationToken,
) -> (PgAuditSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(writer(pool, rx, shutdown));
    (PgAuditSink { tx }, task)
}

async fn writer(pool: PgPool, mut rx: mpsc::Receiver<AuditEntry>, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = if shutdown.is_cancelled() {
            match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                Ok(Some(e)) => Some(e),
                _ => None,
            }
        } else {
            tokio::select! {
                e = rx.recv() => e,
                _ = shutdown.cancelled() => continue,
            }
        };
        let Some(first) = first else { return };
        batch.push(first);
        // Linger briefly so a busy service writes a few large batches a
        // second rather than many small ones.
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                _ => break,
            }
        }
        let mut attempt = 0u32;
        while let Err(e) = insert(&pool, &batch).await {
            attempt += 1;
            let wait = telemetry::retry::backoff(
                attempt,
                Duration::from_millis(100),
                Duration::from_secs(5),
            );
            tracing::warn!(error = %e, entries = batch.len(), attempt, "audit batch not written; retrying");
            if shutdown.is_cancelled() && attempt >= 5 {
                tracing::error!(
                    entries = batch.len(),
                    "audit batch lost at shutdown: Postgres unreachable"
                );
                break;
            }
            tokio::time::sleep(wait).await;
        }
        batch.clear();
    }
}

async fn insert(pool: &PgPool, batch: &[AuditEntry]) -> Result<(), StoreError> {
    let col = |f: fn(&AuditEntry) -> String| batch.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO audit_log (at, service, actor, roles, action, target, outcome, trace_id, client)
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::int4[], $8::text[], $9::text[])",
    )
    .bind(batch.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind(col(|e| e.service.clone()))
    .bind(col(|e| e.actor.clone()))
    .bind(col(|e| e.roles.clone()))
    .bind(col(|e| e.action.clone()))
    .bind(col(|e| e.target.clone()))
    .bind(batch.iter().map(|e| i32::from(e.outcome)).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.trace_id.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.client.clone()).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

/// One row of the audit log, as the admin endpoint returns it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Filters of the admin query; newest first.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub service: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset paging: rows with a smaller id.
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub async fn query(pool: &PgPool, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at, service, actor, roles, action, target, outcome, trace_id, client
         FROM audit_log
         WHERE ($1::text IS NULL OR actor = $1)
           AND ($2::text IS NULL OR service = $2)
           AND ($3::timestamptz IS NULL OR at >= $3)
           AND ($4::timestamptz IS NULL OR at < $4)
           AND ($5::int8 IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6",
    )
    .bind(&q.actor)
    .bind(&q.service)
    .bind(q.since)
    .bind(q.until)
    .bind(q.before_id)
    .bind(q.limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                id: r.try_get("id")?,
                entry: AuditEntry {
                    at: r.try_get("at")?,
                    service: r.try_get("service")?,
                    actor: r.try_get("actor")?,
                    roles: r.try_get("roles")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    outcome: u16::try_from(r.try_get::<i32, _>("outcome")?).unwrap_or(0),
                    trace_id: r.try_get("trace_id")?,
                    client: r.try_get("client")?,
                },
            })
        })
        .collect()
}
