//! The lag tailer's broker side: one batched call per kind of fact.
//!
//! Per snapshot: cluster metadata (topics, partitions), the group list with
//! states and members (ListGroups/DescribeGroups), the end offsets of every
//! watched partition in one ListOffsets request per broker
//! (`offsets_for_times` with timestamp −1 = latest, as on real Kafka), each
//! group's committed offsets for all watched partitions in one OffsetFetch,
//! and the timestamp of the record at each lagging committed offset, fetched
//! by one reader assigned to all of them at once. Timestamps are cached per
//! `(topic, partition, offset)`, so a stuck consumer costs no fetch.
//!
//! All calls are blocking librdkafka calls: run `Collector::observe` on the
//! blocking pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bus::rdkafka::consumer::{BaseConsumer, Consumer};
use bus::rdkafka::message::Message;
use bus::rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Config, group_selected};
use crate::status::{GroupObservation, Observation};

/// Group clients are cheap to keep but not free (a librdkafka instance each):
/// beyond this many, the least recently used are dropped.
const MAX_GROUP_CLIENTS: usize = 512;

pub struct Collector {
    cfg: Config,
    timeout: Duration,
    meta: BaseConsumer,
    reader: BaseConsumer,
    /// One client per group (`group.id` = the group, never subscribed, so it
    /// never joins the group): OffsetFetch is answered for the client's group.
    group_clients: HashMap<String, (BaseConsumer, u64)>,
    round: u64,
    ts_cache: HashMap<(String, i32, i64), i64>,
}

fn base(cfg: &Config) -> ClientConfig {
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

impl Collector {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let meta: BaseConsumer = base(cfg)
            .set("group.id", "observer-metadata")
            .create()
            .context("creating the metadata client")?;
        let reader: BaseConsumer = base(cfg)
            .set("group.id", "observer-reader")
            .create()
            .context("creating the record reader")?;
        Ok(Self {
            cfg: cfg.clone(),
            timeout: Duration::from_millis(cfg.kafka_timeout_ms),
            meta,
            reader,
            group_clients: HashMap::new(),
            round: 0,
            ts_cache: HashMap::new(),
        })
    }

    fn group_client(&mut self, group: &str) -> anyhow::Result<&BaseConsumer> {
        self.round += 1;
        let round = self.round;
        if !self.group_clients.contains_key(group) {
            if self.group_clients.len() >= MAX_GROUP_CLIENTS
                && let Some(oldest) = self
                    .group_clients
                    .iter()
                    .min_by_key(|(_, (_, r))| *r)
                    .map(|(k, _)| k.clone())
            {
                self.group_clients.remove(&oldest);
            }
            let c: BaseConsumer = base(&self.cfg)
                .set("group.id", group)
                .create()
                .with_context(|| format!("creating the offset client of group {group}"))?;
            self.group_clients.insert(group.to_string(), (c, round));
        }
        let entry = self
            .group_clients
            .get_mut(group)
            .ok_or_else(|| anyhow::anyhow!("group client vanished"))?;
        entry.1 = round;
        Ok(&entry.0)
    }

    /// One snapshot of every watched group. Errors only when the cluster
    /// itself cannot be read; a single group's failure drops that group.
    pub fn observe(&mut self) -> anyhow::Result<Observation> {
        let md = self
            .meta
            .fetch_metadata(None, self.timeout)
            .context("fetching cluster metadata")?;
        let mut partitions: Vec<(String, i32)> = Vec::new();
        for t in md.topics() {
            let name = t.name();
            let wanted = if self.cfg.topics.is_empty() {
                !name.starts_with("__")
            } else {
                self.cfg.topics.iter().any(|x| x == name)
            };
            if wanted && t.error().is_none() {
                for p in t.partitions() {
                    partitions.push((name.to_string(), p.id()));
                }
            }
        }
        let list = self
            .meta
            .fetch_group_list(None, self.timeout)
            .context("listing consumer groups")?;
        let mut groups: Vec<(String, String, usize)> = list
            .groups()
            .iter()
            .filter(|g| g.protocol_type().is_empty() || g.protocol_type() == "consumer")
            .filter(|g| group_selected(&self.cfg, g.name()))
            .map(|g| {
                (
                    g.name().to_string(),
                    g.state().to_string(),
                    g.members().len(),
                )
            })
            .collect();
        groups.sort();
        groups.dedup_by(|a, b| a.0 == b.0);

        let ends = self.end_offsets(&partitions)?;
        let at_ms = chrono::Utc::now().timestamp_millis();

        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (t, p) in &partitions {
            tpl.add_partition(t, *p);
        }
        let mut observed = Vec::with_capacity(groups.len());
        for (name, state, members) in groups {
            let timeout = self.timeout;
            let committed = match self
                .group_client(&name)
                .and_then(|c| Ok(c.committed_offsets(tpl.clone(), timeout)?))
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(group = %name, error = %format!("{e:#}"), "committed offsets unavailable");
                    continue;
                }
            };
            let mut map = BTreeMap::new();
            for e in committed.elements() {
                if let Offset::Offset(o) = e.offset() {
                    map.insert((e.topic().to_string(), e.partition()), o);
                }
            }
            observed.push(GroupObservation {
                group: name,
                state,
                members,
                committed: map,
            });
        }
        // Keep only clients of groups that still exist.
        let live: HashSet<&str> = observed.iter().map(|g| g.group.as_str()).collect();
        self.group_clients.retain(|k, _| live.contains(k.as_str()));

        let mut wanted: HashSet<(String, i32, i64)> = HashSet::new();
        for g in &observed {
            for ((t, p), c) in &g.committed {
                if ends.get(&(t.clone(), *p)).is_some_and(|e| e > c) {
                    wanted.insert((t.clone(), *p, *c));
                }
            }
        }
        self.ts_cache.retain(|k, _| wanted.contains(k));
        let missing: Vec<(String, i32, i64)> = wanted
            .into_iter()
            .filter(|k| !self.ts_cache.contains_key(k))
            .collect();
        if !missing.is_empty() {
            self.fetch_timestamps(&missing);
        }
        Ok(Observation {
            at_ms,
            groups: observed,
            ends,
            record_ts: self.ts_cache.clone(),
        })
    }

    /// End offsets (high watermarks) in one ListOffsets per broker; falls
    /// back to per-partition watermark queries if the broker refuses.
    fn end_offsets(
        &self,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<HashMap<(String, i32), i64>> {
        let mut out = HashMap::with_capacity(partitions.len());
        if partitions.is_empty() {
            return Ok(out);
        }
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (t, p) in partitions {
            tpl.add_partition_offset(t, *p, Offset::End)
                .context("building the end-offset request")?;
        }
        match self.meta.offsets_for_times(tpl, self.timeout) {
            Ok(res) => {
                for e in res.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        out.insert((e.topic().to_string(), e.partition()), o);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "batched ListOffsets failed; querying watermarks one by one")
            }
        }
        for (t, p) in partitions {
            if let std::collections::hash_map::Entry::Vacant(slot) = out.entry((t.clone(), *p)) {
                let (_, high) = self
                    .meta
                    .fetch_watermarks(t, *p, self.timeout)
                    .with_context(|| format!("end offset of {t}/{p}"))?;
                slot.insert(high);
            }
        }
        Ok(out)
    }

    /// Read the first record at each `(topic, partition, offset)` with one
    /// assignment; partitions that return nothing within the timeout keep no
    /// timestamp (their lag in seconds is reported as unknown).
    fn fetch_timestamps(&mut self, wanted: &[(String, i32, i64)]) {
        let mut tpl = TopicPartitionList::with_capacity(wanted.len());
        let mut pending: HashMap<(String, i32), i64> = HashMap::new();
        for (t, p, o) in wanted {
            if tpl.add_partition_offset(t, *p, Offset::Offset(*o)).is_ok() {
                pending.insert((t.clone(), *p), *o);
            }
        }
        if let Err(e) = self.reader.assign(&tpl) {
            tracing::warn!(error = %e, "assigning the record reader failed");
            return;
        }
        let deadline = Instant::now() + self.timeout;
        while !pending.is_empty() && Instant::now() < deadline {
            match self.reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    // Records of partitions already done are discarded (pausing
                    // would outlive the assignment in librdkafka).
                    let key = (m.topic().to_string(), m.partition());
                    if let Some(o) = pending.get(&key).copied()
                        && m.offset() >= o
                    {
                        pending.remove(&key);
                        match m.timestamp().to_millis() {
                            Some(ts) => {
                                self.ts_cache.insert((key.0, key.1, o), ts);
                            }
                            None => {
                                tracing::debug!(topic = %key.0, partition = key.1, "record without timestamp")
                            }
                        }
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "record reader"),
                None => {}
            }
        }
        let _ = self.reader.unassign();
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
