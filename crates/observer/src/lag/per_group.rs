//! The lag tailer's broker side as it was before the Kafka-protocol client
//! ([`super::Collector`]): librdkafka only, one client per group. Kept as
//! the reference the new client is compared with (the parity system test,
//! `tests/tests/observer_lag.rs`) and as the baseline of the `lag_scale`
//! benchmark; the observer itself no longer uses it.
//!
//! Per snapshot: cluster metadata (topics, partitions), the group list with
//! states and members (ListGroups/DescribeGroups), the end offsets of every
//! watched partition in one ListOffsets request per broker
//! (`offsets_for_times` with timestamp −1 = latest, as on real Kafka), each
//! group's committed offsets for all watched partitions in one OffsetFetch
//! by that group's own librdkafka client (at most [`MAX_GROUP_CLIENTS`]
//! kept), and the record timestamps through [`super::RecordReader`].
//!
//! All calls are blocking librdkafka calls: run `PerGroupCollector::observe`
//! on the blocking pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use bus::rdkafka::consumer::{BaseConsumer, Consumer};
use bus::rdkafka::{Offset, TopicPartitionList};

use super::{RecordReader, base};
use crate::config::{Config, group_selected};
use crate::status::{GroupObservation, Observation};

/// Group clients are cheap to keep but not free (a librdkafka instance each):
/// beyond this many, the least recently used are dropped.
const MAX_GROUP_CLIENTS: usize = 512;

pub struct PerGroupCollector {
    cfg: Config,
    timeout: Duration,
    meta: BaseConsumer,
    reader: RecordReader,
    /// One client per group (`group.id` = the group, never subscribed, so it
    /// never joins the group): OffsetFetch is answered for the client's group.
    group_clients: HashMap<String, (BaseConsumer, u64)>,
    round: u64,
}

impl PerGroupCollector {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let meta: BaseConsumer = base(cfg)
            .set("group.id", "observer-metadata")
            .create()
            .context("creating the metadata client")?;
        let reader = RecordReader::new(cfg)?;
        Ok(Self {
            cfg: cfg.clone(),
            timeout: Duration::from_millis(cfg.kafka_timeout_ms),
            meta,
            reader,
            group_clients: HashMap::new(),
            round: 0,
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
        let mut obs = self.offsets()?;
        obs.record_ts = self.reader.update(&obs.groups, &obs.ends, self.timeout);
        Ok(obs)
    }

    /// The offset half of [`PerGroupCollector::observe`] (no record
    /// timestamps): what the `lag_scale` benchmark times.
    pub fn offsets(&mut self) -> anyhow::Result<Observation> {
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

        Ok(Observation {
            at_ms,
            groups: observed,
            ends,
            record_ts: HashMap::new(),
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
}
