//! The outbox relay: one replica at a time (Postgres advisory lock) publishes
//! outbox rows in commit order with the idempotent producer, then deletes
//! them. Woken by the local commit and by `LISTEN outbox`; a slow timer is
//! only the safety net for a lost notification.
//!
//! One statement per batch on the connection that holds the lock: it deletes
//! the rows the broker acknowledged in the previous batch and reads the next
//! ones. Those deletes commit asynchronously (`synchronous_commit = off` on
//! that connection only): a delete lost in a Postgres crash republishes its
//! rows, which consumers dedupe (at-least-once), while an acknowledged row is
//! still never deleted before its acknowledgement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bus::rdkafka::producer::{FutureProducer, FutureRecord};
use contracts::TODO_EVENT_SCHEMA_VERSION;
use futures::future::join_all;
use sqlx::postgres::PgListener;
use todo_store::command::{self as store, OutboxRow};
use tokio_util::sync::CancellationToken;

use crate::AppState;

const RELAY_LOCK: i64 = 0x7464_6f5f_7265_6c79; // "tdo_rely"
const CHANNEL: &str = "outbox";
/// Signals sent after a commit that wrote outbox rows.
#[derive(Default)]
pub struct OutboxSignal {
    /// Wakes the relay in this process.
    pub local: tokio::sync::Notify,
    /// Wakes the notifier that tells a leader in another process.
    pub peers: tokio::sync::Notify,
}

impl OutboxSignal {
    pub fn committed(&self) {
        self.local.notify_one();
        self.peers.notify_one();
    }
}

const SAFETY_NET: Duration = Duration::from_secs(5);

/// Run until shutdown: become leader, publish, repeat after failures.
pub async fn run(app: AppState, producer: FutureProducer, shutdown: CancellationToken) {
    let leader = Arc::new(AtomicBool::new(false));
    tokio::spawn(notify_peers(app.clone(), leader.clone(), shutdown.clone()));
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        match lead(&app, &producer, &leader, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                leader.store(false, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(100 * u64::from(failures.min(20)));
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = wait.as_millis() as u64,
                    "outbox relay error"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn lead(
    app: &AppState,
    producer: &FutureProducer,
    leader: &AtomicBool,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut lock_conn = app.pool.acquire().await?.detach();
    let mut listener = PgListener::connect_with(&app.pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut lock_conn)
            .await?;
        if got {
            break;
        }
        // Stand by: the leader may die at any time, check again soon.
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    leader.store(true, Ordering::Relaxed);
    tracing::info!("outbox relay is leader");
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut lock_conn)
        .await?;
    let mut attempt = 0u32;
    // Acknowledged by the broker, deleted by the next step.
    let mut acked: Vec<i64> = Vec::new();
    loop {
        // A broker that keeps failing is left alone until its breaker lets
        // a probe batch through.
        let permit = match app.kafka_breaker.check() {
            Ok(p) => p,
            Err(open) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(open.retry_after) => {}
                }
                continue;
            }
        };
        let rows =
            match store::outbox_step(&mut lock_conn, &acked, app.config.relay_batch_size).await {
                Ok(rows) => {
                    acked.clear();
                    rows
                }
                Err(e) => {
                    // Nothing was sent: release the probe, blame nobody.
                    permit.release();
                    return Err(e.into());
                }
            };
        if rows.is_empty() {
            // Nothing to send, nothing learned; do not leave a probe hanging.
            permit.release();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = app.outbox_wake.local.notified() => {}
                n = listener.recv() => { n?; }
                _ = tokio::time::sleep(SAFETY_NET) => {
                    // Also proves the lock connection is alive.
                    sqlx::query("SELECT 1").execute(&mut lock_conn).await?;
                }
            }
            continue;
        }
        let (sent, failed) = publish(app, producer, &rows).await;
        permit.record(failed == 0);
        acked = sent;
        if failed > 0 || shutdown.is_cancelled() {
            // Not going straight to the next step: forget what was sent now.
            if !acked.is_empty() {
                store::outbox_delete(&mut lock_conn, &acked).await?;
                acked.clear();
            }
        }
        if failed > 0 {
            attempt += 1;
            let wait = telemetry::retry::backoff(
                attempt,
                Duration::from_millis(50),
                Duration::from_secs(2),
            );
            tracing::warn!(
                failed,
                wait_ms = wait.as_millis() as u64,
                "broker did not acknowledge some outbox rows; retrying"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        } else {
            attempt = 0;
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }
}

/// Send a batch concurrently (never awaiting one by one); returns the ids
/// the broker acknowledged and how many failed.
async fn publish(
    app: &AppState,
    producer: &FutureProducer,
    rows: &[OutboxRow],
) -> (Vec<i64>, usize) {
    // One producer span per record, child of the request that wrote it; the
    // record's headers carry the span's context to the consumers.
    let spans: Vec<(tracing::Span, Option<contracts::TraceContext>)> = rows
        .iter()
        .map(|row| {
            let origin = row.traceparent.as_ref().map(|tp| contracts::TraceContext {
                traceparent: tp.clone(),
                tracestate: row.tracestate.clone(),
            });
            let span = tracing::info_span!(
                "outbox.publish",
                otel.name = format!("{} publish", row.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.destination.name = %row.topic,
                messaging.message.id = %row.event_id,
            );
            telemetry::trace::continue_trace(&span, origin.as_ref());
            let ctx = telemetry::trace::context_of(&span, origin.as_ref());
            (span, ctx)
        })
        .collect();
    let sends = rows.iter().zip(&spans).map(|(row, (_, ctx))| {
        let headers = bus::record_headers(
            &row.event_type,
            TODO_EVENT_SCHEMA_VERSION,
            ctx.as_ref().map(|c| c.traceparent.as_str()),
            ctx.as_ref().and_then(|c| c.tracestate.as_deref()),
        );
        let record = FutureRecord::to(&row.topic)
            .key(&row.key)
            .payload(&row.payload)
            .headers(headers);
        producer.send(record, Duration::from_secs(0))
    });
    let results = join_all(sends).await;
    drop(spans);
    let mut sent = Vec::with_capacity(rows.len());
    let mut failed = 0;
    for (row, r) in rows.iter().zip(results) {
        let labels = telemetry::metrics::TopicLabels::of(&row.topic);
        match r {
            Ok(_) => {
                app.metrics.producer.produced.get_or_create(&labels).inc();
                sent.push(row.id);
            }
            Err((e, _)) => {
                app.metrics.producer.failed.get_or_create(&labels).inc();
                tracing::debug!(error = %e, event_id = %row.event_id, "produce failed");
                failed += 1;
            }
        }
    }
    (sent, failed)
}

/// When this replica is not the leader, tell the leader about new rows with a
/// NOTIFY. Bursts coalesce into one notification, and NOTIFY stays out of the
/// write transaction (it would serialize commits on Postgres' notify lock).
async fn notify_peers(app: AppState, leader: Arc<AtomicBool>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = app.outbox_wake.peers.notified() => {}
        }
        if leader.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&app.pool)
            .await
        {
            tracing::debug!(error = %e, "notify failed; the leader's safety-net timer will pick the rows up");
        }
    }
}

/// Export backlog size and age of the oldest row every second.
pub async fn export_backlog(app: AppState, shutdown: CancellationToken) {
    loop {
        if let Ok((n, age)) = store::outbox_stats(&app.pool).await {
            app.outbox_backlog
                .store(n, std::sync::atomic::Ordering::Relaxed);
            app.metrics.outbox_backlog.set(n);
            app.metrics.outbox_oldest_age.set(age);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
