//! The lag tailer's broker side: one batched call per kind of fact, over
//! the Kafka protocol (`crate::kafka`), one connection per broker.
//!
//! Per snapshot ([`crate::kafka::offsets::read`]): cluster metadata (topics,
//! partitions, leaders), the groups of every broker (ListGroups), their
//! state and members (DescribeGroups, many groups per request), their
//! committed offsets (OffsetFetch: many groups per request from v8, else one
//! request per group pipelined on the coordinator's connection), and the end
//! offsets of every watched partition in one ListOffsets request per leader.
//! Then the timestamp of the record at each lagging committed offset, read
//! by one librdkafka consumer assigned to all of them at once
//! ([`RecordReader`]; ListOffsets only maps timestamps to offsets, not the
//! other way). Timestamps are cached per `(topic, partition, offset)`, so a
//! stuck consumer costs no fetch.
//!
//! The previous implementation (librdkafka only, one client per group) is
//! [`per_group::PerGroupCollector`], kept as the reference of the parity
//! test and the baseline of the `lag_scale` benchmark.
//!
//! `Collector::observe` blocks: run it on the blocking pool (as the tailer
//! does) or outside any runtime.

pub mod per_group;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bus::rdkafka::consumer::{BaseConsumer, Consumer};
use bus::rdkafka::message::Message;
use bus::rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Config, group_selected};
use crate::kafka::Pool;
use crate::kafka::offsets::{self, FetchStats, Offsets, Options};
use crate::status::{GroupObservation, Observation};

pub(crate) fn base(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka_brokers)
        .set("client.id", "observer")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "1000")
        .set("fetch.wait.max.ms", "10")
        .set("auto.offset.reset", "earliest");
    c
}

pub struct Collector {
    cfg: Config,
    opts: Options,
    bootstrap: Vec<String>,
    pool: Pool,
    /// Used only when `observe` is called outside a tokio runtime.
    own_runtime: Option<tokio::runtime::Runtime>,
    reader: RecordReader,
    stats: FetchStats,
}

impl Collector {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let bootstrap: Vec<String> = cfg
            .kafka_brokers
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| s.strip_prefix("PLAINTEXT://").unwrap_or(s).to_string())
            .collect();
        if bootstrap.is_empty() {
            anyhow::bail!("kafka_brokers: no bootstrap server");
        }
        Ok(Self {
            cfg: cfg.clone(),
            opts: Options::new(
                cfg.topics.clone(),
                Duration::from_millis(cfg.kafka_timeout_ms),
            ),
            bootstrap,
            pool: Pool::default(),
            own_runtime: None,
            reader: RecordReader::new(cfg)?,
            stats: FetchStats::default(),
        })
    }

    /// Use OffsetFetch at most at `version`: below 8 forces the pipelined
    /// per-group path even where the broker batches (tests of both paths).
    pub fn with_offset_fetch_max_version(mut self, version: i16) -> Self {
        self.opts.offset_fetch_max_version = version;
        self
    }

    /// How the last snapshot fetched committed offsets.
    pub fn stats(&self) -> FetchStats {
        self.stats
    }

    /// The offset half of a snapshot (no record timestamps).
    pub fn offsets(&mut self) -> anyhow::Result<Offsets> {
        let cfg = &self.cfg;
        let selected = |g: &str| group_selected(cfg, g);
        let fut = offsets::read(&mut self.pool, &self.bootstrap, &self.opts, &selected);
        let res = match tokio::runtime::Handle::try_current() {
            Ok(h) => h.block_on(fut),
            Err(_) => {
                let rt = match self.own_runtime.take() {
                    Some(rt) => rt,
                    None => tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("starting the Kafka client's runtime")?,
                };
                let res = rt.block_on(fut);
                self.own_runtime = Some(rt);
                res
            }
        };
        if let Ok(o) = &res {
            self.stats = o.stats;
        }
        res
    }

    /// One snapshot of every watched group. Errors only when the cluster
    /// itself cannot be read; a single group's failure drops that group.
    pub fn observe(&mut self) -> anyhow::Result<Observation> {
        let o = self.offsets()?;
        let at_ms = chrono::Utc::now().timestamp_millis();
        let record_ts = self.reader.update(&o.groups, &o.ends, self.opts.timeout);
        Ok(Observation {
            at_ms,
            groups: o.groups,
            ends: o.ends,
            record_ts,
        })
    }
}

/// Reads the timestamp of the record at each lagging committed offset with
/// one librdkafka consumer (never joins a group: assigned, not subscribed),
/// and caches them per `(topic, partition, offset)`. The consumer is created
/// on the first read, so a cluster without lag costs it no connection.
pub struct RecordReader {
    config: ClientConfig,
    reader: Option<BaseConsumer>,
    cache: HashMap<(String, i32, i64), i64>,
}

impl RecordReader {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let mut config = base(cfg);
        config.set("group.id", "observer-reader");
        Ok(Self {
            config,
            reader: None,
            cache: HashMap::new(),
        })
    }

    /// Timestamps of the records at the committed offsets that lag behind
    /// `ends`; reads the ones not cached yet and forgets the ones no longer
    /// needed.
    pub fn update(
        &mut self,
        groups: &[GroupObservation],
        ends: &HashMap<(String, i32), i64>,
        timeout: Duration,
    ) -> HashMap<(String, i32, i64), i64> {
        let mut wanted: HashSet<(String, i32, i64)> = HashSet::new();
        for g in groups {
            for ((t, p), c) in &g.committed {
                if ends.get(&(t.clone(), *p)).is_some_and(|e| e > c) {
                    wanted.insert((t.clone(), *p, *c));
                }
            }
        }
        self.cache.retain(|k, _| wanted.contains(k));
        let missing: Vec<(String, i32, i64)> = wanted
            .into_iter()
            .filter(|k| !self.cache.contains_key(k))
            .collect();
        if !missing.is_empty() {
            self.fetch(&missing, timeout);
        }
        self.cache.clone()
    }

    /// Read the first record at each `(topic, partition, offset)` with one
    /// assignment; partitions that return nothing within the timeout keep no
    /// timestamp (their lag in seconds is reported as unknown).
    fn fetch(&mut self, wanted: &[(String, i32, i64)], timeout: Duration) {
        if self.reader.is_none() {
            match self.config.create::<BaseConsumer>() {
                Ok(r) => self.reader = Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "creating the record reader failed");
                    return;
                }
            }
        }
        let Some(reader) = self.reader.as_ref() else {
            return;
        };
        // Several groups can lag on one partition at different offsets: the
        // partition is assigned once, at the lowest, and each wanted offset
        // takes the first record at or after it (librdkafka refuses an
        // assignment that names a partition twice).
        let mut pending: HashMap<(String, i32), Vec<i64>> = HashMap::new();
        for (t, p, o) in wanted {
            pending.entry((t.clone(), *p)).or_default().push(*o);
        }
        let mut tpl = TopicPartitionList::with_capacity(pending.len());
        for ((t, p), offsets) in pending.iter_mut() {
            offsets.sort_unstable();
            offsets.dedup();
            if let Err(e) = tpl.add_partition_offset(t, *p, Offset::Offset(offsets[0])) {
                tracing::warn!(topic = %t, partition = p, error = %e, "record reader assignment");
            }
        }
        if let Err(e) = reader.assign(&tpl) {
            tracing::warn!(error = %e, "assigning the record reader failed");
            return;
        }
        let deadline = Instant::now() + timeout;
        while !pending.is_empty() && Instant::now() < deadline {
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    // Records of partitions already done are discarded (pausing
                    // would outlive the assignment in librdkafka).
                    let key = (m.topic().to_string(), m.partition());
                    let Some(offsets) = pending.get_mut(&key) else {
                        continue;
                    };
                    let ts = m.timestamp().to_millis();
                    let done = offsets.iter().take_while(|o| **o <= m.offset()).count();
                    for o in offsets.drain(..done) {
                        match ts {
                            Some(ts) => {
                                self.cache.insert((key.0.clone(), key.1, o), ts);
                            }
                            None => {
                                tracing::debug!(topic = %key.0, partition = key.1, "record without timestamp")
                            }
                        }
                    }
                    if offsets.is_empty() {
                        pending.remove(&key);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "record reader"),
                None => {}
            }
        }
        let _ = reader.unassign();
        tracing::debug!(
            wanted = wanted.len(),
            missing = pending.len(),
            "read records at committed offsets"
        );
        if !pending.is_empty() {
            tracing::warn!(
                partitions = pending.len(),
                "records at committed offsets not read within the timeout"
            );
        }
    }
}
