//! Rebuild the read model from the start of `todo-events` into fresh tables
//! and swap them in. The live projector keeps running meanwhile; the swap
//! catches up whatever it applied after the replay's high watermarks.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use bus::rdkafka::consumer::{Consumer, StreamConsumer};
use bus::rdkafka::message::Message;
use bus::rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use todo_store::read::{self, Tables};
use todo_store::young::YoungTables;

const BATCH: usize = 1000;

async fn flush(
    pool: &PgPool,
    young: &YoungTables,
    pending: &mut Vec<contracts::TodoEvent>,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let applied = read::apply_batch(pool, Tables::Rebuild, pending)
        .await?
        .applied
        .len() as u64;
    // The rebuild tables were just created: no statistics until analyzed.
    // The replay has nothing else to do meanwhile, so it waits.
    if young.due(applied) {
        young.analyze_young(pool).await?;
    }
    report.applied += applied;
    report.duplicates += pending.len() as u64 - applied;
    pending.clear();
    Ok(())
}

/// What a replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// Records between the low and high watermarks when the replay started.
    pub expected: u64,
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub skipped_invalid: u64,
    pub caught_up_from_live: u64,
}

/// Replay `todo-events` into rebuild tables and swap. `progress(done, total)`
/// is called as records are applied. After the high watermarks, reading
/// stops once no record arrived for `idle`.
pub async fn replay(
    pool: &PgPool,
    kafka: &bus::KafkaSettings,
    idle: Duration,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<ReplayReport> {
    let topic = contracts::topics::TODO_EVENTS;
    let consumer: StreamConsumer = {
        let mut c = bus::rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &kafka.brokers)
            .set("group.id", format!("replay-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10");
        c.create().context("creating replay consumer")?
    };
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("reading topic metadata")?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {topic} has no partitions (does it exist?)"
    );
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut total = 0u64;
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .context("reading watermarks")?;
        if high > low {
            remaining.insert(*p, high);
            total += (high - low) as u64;
        }
    }
    read::prepare_rebuild(pool)
        .await
        .context("creating rebuild tables")?;
    let mut report = ReplayReport {
        expected: total,
        ..Default::default()
    };
    tracing::debug!(?remaining, total, "replay watermarks");
    progress(0, total);
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    // Read to the high watermarks, then keep reading until the topic has
    // been quiet for `idle`: some brokers (tansu 0.x) report a high watermark
    // below the last offset after batched produces, so the watermark alone
    // could end a replay early.
    let mut at_watermarks = remaining.is_empty();
    let mut pending = Vec::with_capacity(BATCH);
    let young = YoungTables::new(Tables::Rebuild.names());
    loop {
        let wait = if at_watermarks {
            idle
        } else {
            Duration::from_secs(30)
        };
        let msg = match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(m) => m?,
            Err(_) if at_watermarks => break,
            Err(_) => anyhow::bail!("no record from the broker for 30 s while replaying"),
        };
        if let Some(&high) = remaining.get(&msg.partition())
            && msg.offset() + 1 >= high
        {
            remaining.remove(&msg.partition());
        }
        at_watermarks = remaining.is_empty();
        report.records += 1;
        match msg.payload().map(contracts::schema::decode_todo_event) {
            Some(Ok(ev)) => pending.push(ev),
            _ => report.skipped_invalid += 1,
        }
        if pending.len() >= BATCH {
            flush(pool, &young, &mut pending, &mut report).await?;
            progress(report.records, total.max(report.records));
        }
    }
    flush(pool, &young, &mut pending, &mut report).await?;
    progress(report.records, total.max(report.records));
    report.caught_up_from_live = read::swap_rebuild(pool)
        .await
        .context("swapping the rebuilt read model in")?;
    Ok(report)
}
