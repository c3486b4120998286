//! The offset half of a lag snapshot over the Kafka protocol, batched:
//!
//! 1. Metadata (all topics) from any broker: partitions, their leaders, the
//!    brokers;
//! 2. ListGroups on every broker (a broker lists the groups it coordinates);
//! 3. per coordinator, DescribeGroups for its watched groups (state, members,
//!    protocol type), up to [`DESCRIBE_CHUNK`] groups per request, pipelined;
//! 4. per coordinator, OffsetFetch of all committed offsets: with v8+ up to
//!    [`FETCH_CHUNK`] groups per request, pipelined; below v8 one request per
//!    group, all pipelined on the one connection;
//! 5. per partition leader, one ListOffsets request with every watched
//!    partition it leads (timestamp −1 = the end offset; read_committed, as
//!    librdkafka's default `isolation.level`).
//!
//! Brokers are asked concurrently, each on its one connection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeGroupsRequest, GroupId, ListGroupsRequest, ListOffsetsRequest,
    MetadataRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Conn, Pool, broker_addr, within};
use crate::status::GroupObservation;

/// Groups per DescribeGroups request.
pub const DESCRIBE_CHUNK: usize = 1_000;
/// Groups per batched (v8+) OffsetFetch request.
pub const FETCH_CHUNK: usize = 1_000;

/// What to read and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// Topics to watch; empty = every topic not starting with `__`.
    pub topics: Vec<String>,
    /// Highest OffsetFetch version to use: below 8 forces the pipelined
    /// per-group path (tests of both paths; the default is the crate's max).
    pub offset_fetch_max_version: i16,
    pub timeout: Duration,
}

impl Options {
    pub fn new(topics: Vec<String>, timeout: Duration) -> Self {
        Self {
            topics,
            offset_fetch_max_version: i16::MAX,
            timeout,
        }
    }
}

/// How committed offsets were fetched in a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// OffsetFetch requests sent with several groups each (v8+).
    pub batched_requests: usize,
    /// OffsetFetch requests sent one per group (below v8), pipelined.
    pub per_group_requests: usize,
    /// The OffsetFetch version used (the last one, when brokers differ).
    pub offset_fetch_version: i16,
    /// Broker connections open after the snapshot.
    pub connections: usize,
}

/// Groups (state, members, committed offsets of watched partitions) and
/// the end offsets of the watched partitions.
#[derive(Clone, Debug, Default)]
pub struct Offsets {
    pub groups: Vec<GroupObservation>,
    pub ends: HashMap<(String, i32), i64>,
    pub stats: FetchStats,
}

fn name(s: &StrBytes) -> String {
    s.as_str().to_string()
}

/// One snapshot of offsets. `selected` filters groups by name (the
/// observer's allow/deny globs). Errors when the cluster cannot be read
/// (metadata, group lists, end offsets); a group whose description or
/// offsets fail is dropped with a warning, as before.
pub async fn read(
    pool: &mut Pool,
    bootstrap: &[String],
    opts: &Options,
    selected: &(dyn Fn(&str) -> bool + Sync),
) -> anyhow::Result<Offsets> {
    // 1. Metadata, from a broker we are connected to or a bootstrap server.
    let md = within(opts.timeout, "Metadata", async {
        let mut last_err = None;
        let mut addrs: Vec<String> = pool.conns.keys().cloned().collect();
        addrs.extend(bootstrap.iter().cloned());
        for addr in addrs {
            let conn = match pool.get(&addr).await {
                Ok(c) => c,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let v = conn.require::<MetadataRequest>(12)?;
            let mut req = MetadataRequest::default();
            req.topics = None;
            req.allow_auto_topic_creation = false;
            match conn.pipeline(&[req], v).await {
                Ok(mut r) => return r.pop().context("empty Metadata response"),
                Err(e) => {
                    pool.drop_conn(&addr);
                    last_err = Some(e.context(format!("Metadata from {addr}")));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no bootstrap servers")))
    })
    .await
    .context("fetching cluster metadata")?;

    let brokers: HashMap<i32, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, broker_addr(b.host.as_str(), b.port)))
        .collect();
    // Partitions by leader; the watched set.
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    let mut watched: HashSet<(String, i32)> = HashSet::new();
    for t in &md.topics {
        let Some(tn) = t.name.as_ref() else { continue };
        let tn = tn.0.as_str();
        let wanted = if opts.topics.is_empty() {
            !tn.starts_with("__")
        } else {
            opts.topics.iter().any(|x| x == tn)
        };
        if !wanted || t.error_code != 0 {
            continue;
        }
        for p in &t.partitions {
            watched.insert((tn.to_string(), p.partition_index));
            by_leader
                .entry(p.leader_id.0)
                .or_default()
                .entry(tn.to_string())
                .or_default()
                .push(p.partition_index);
        }
    }
    // Connections that are no longer brokers of the cluster (a bootstrap
    // address advertised under another name) are closed: one per broker.
    let live: HashSet<&String> = brokers.values().collect();
    pool.conns.retain(|a, _| live.contains(a));

    // 2.–4. Groups per coordinator, brokers concurrently.
    let mut conns = Vec::with_capacity(brokers.len());
    for addr in brokers.values() {
        match pool.take(addr).await {
            Ok(c) => conns.push(c),
            Err(e) => {
                tracing::warn!(broker = %addr, error = %format!("{e:#}"), "broker unreachable")
            }
        }
    }
    if conns.is_empty() && !brokers.is_empty() {
        anyhow::bail!("no broker of the cluster is reachable");
    }
    let results = join_all(
        conns
            .into_iter()
            .map(|c| groups_of_broker(c, opts, selected, &watched)),
    )
    .await;
    let mut groups = Vec::new();
    let mut stats = FetchStats::default();
    let mut failure = None;
    for (conn, res) in results {
        match res {
            Ok((g, s)) => {
                groups.extend(g);
                stats.batched_requests += s.batched_requests;
                stats.per_group_requests += s.per_group_requests;
                stats.offset_fetch_version = s.offset_fetch_version;
                if let Some(c) = conn {
                    pool.put(c);
                }
            }
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure {
        return Err(e.context("listing consumer groups"));
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    groups.dedup_by(|a, b| a.group == b.group);

    // 5. End offsets, one ListOffsets per leader, leaders concurrently.
    let mut jobs = Vec::new();
    for (leader, topics) in by_leader {
        let Some(addr) = brokers.get(&leader) else {
            tracing::warn!(leader, "partitions without a known leader skipped");
            continue;
        };
        jobs.push((pool.take(addr).await?, topics));
    }
    let results = join_all(
        jobs.into_iter()
            .map(|(c, t)| end_offsets(c, t, opts.timeout)),
    )
    .await;
    let mut ends = HashMap::with_capacity(watched.len());
    for r in results {
        let (conn, res) = r;
        match res {
            Ok(e) => {
                ends.extend(e);
                if let Some(c) = conn {
                    pool.put(c);
                }
            }
            Err(e) => return Err(e.context("reading end offsets")),
        }
    }
    stats.connections = pool.len();
    Ok(Offsets {
        groups,
        ends,
        stats,
    })
}

type BrokerGroups = (Vec<GroupObservation>, FetchStats);

async fn groups_of_broker(
    mut conn: Conn,
    opts: &Options,
    selected: &(dyn Fn(&str) -> bool + Sync),
    watched: &HashSet<(String, i32)>,
) -> (Option<Conn>, anyhow::Result<BrokerGroups>) {
    let addr = conn.addr().to_string();
    let res = within(
        opts.timeout,
        &format!("consumer groups of {addr}"),
        groups_on(&mut conn, opts, selected, watched),
    )
    .await;
    match res {
        Ok(r) => (Some(conn), Ok(r)),
        Err(e) => (None, Err(e)),
    }
}

async fn groups_on(
    conn: &mut Conn,
    opts: &Options,
    selected: &(dyn Fn(&str) -> bool + Sync),
    watched: &HashSet<(String, i32)>,
) -> anyhow::Result<BrokerGroups> {
    let mut stats = FetchStats::default();
    let v = conn.require::<ListGroupsRequest>(4)?;
    let listed = conn
        .pipeline(&[ListGroupsRequest::default()], v)
        .await?
        .pop()
        .context("empty ListGroups response")?;
    if listed.error_code != 0 {
        anyhow::bail!("ListGroups error code {}", listed.error_code);
    }
    let mut names: Vec<GroupId> = listed
        .groups
        .into_iter()
        .filter(|g| selected(g.group_id.as_str()))
        .map(|g| g.group_id)
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    if names.is_empty() {
        return Ok((Vec::new(), stats));
    }

    // DescribeGroups: state, members, protocol type.
    let v = conn.require::<DescribeGroupsRequest>(5)?;
    let reqs: Vec<DescribeGroupsRequest> = names
        .chunks(DESCRIBE_CHUNK)
        .map(|c| {
            let mut r = DescribeGroupsRequest::default();
            r.groups = c.to_vec();
            r
        })
        .collect();
    let mut described: Vec<GroupObservation> = Vec::with_capacity(names.len());
    for resp in conn.pipeline(&reqs, v).await? {
        for g in resp.groups {
            if g.error_code != 0 {
                tracing::warn!(group = %g.group_id.as_str(), code = g.error_code, "group description unavailable");
                continue;
            }
            let pt = g.protocol_type.as_str();
            if !(pt.is_empty() || pt == "consumer") {
                continue;
            }
            described.push(GroupObservation {
                group: name(&g.group_id),
                state: name(&g.group_state),
                members: g.members.len(),
                committed: BTreeMap::new(),
            });
        }
    }
    described.sort_by(|a, b| a.group.cmp(&b.group));
    described.dedup_by(|a, b| a.group == b.group);

    // OffsetFetch: batched (v8+) or pipelined per group.
    let v = conn.require::<OffsetFetchRequest>(opts.offset_fetch_max_version)?;
    stats.offset_fetch_version = v;
    // Below v2 the partitions must be named (no "all topics").
    let explicit = || -> Vec<OffsetFetchRequestTopic> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in watched {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                let mut x = OffsetFetchRequestTopic::default();
                x.name = TopicName(StrBytes::from_string(t.to_string()));
                x.partition_indexes = ps;
                x
            })
            .collect()
    };
    let mut committed: HashMap<String, BTreeMap<(String, i32), i64>> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let keep = |committed: &mut HashMap<String, BTreeMap<(String, i32), i64>>,
                group: &str,
                topic: &StrBytes,
                partition: i32,
                offset: i64,
                code: i16| {
        if code != 0 || offset < 0 {
            return;
        }
        let key = (name(topic), partition);
        if watched.contains(&key)
            && let Some(g) = committed.get_mut(group)
        {
            g.insert(key, offset);
        }
    };
    if v >= 8 {
        let reqs: Vec<OffsetFetchRequest> = described
            .chunks(FETCH_CHUNK)
            .map(|c| {
                // The top-level `topics` keeps its default (v0–v7 only).
                let mut r = OffsetFetchRequest::default();
                r.groups = c
                    .iter()
                    .map(|g| {
                        let mut x = OffsetFetchRequestGroup::default();
                        x.group_id = GroupId(StrBytes::from_string(g.group.clone()));
                        x.topics = None;
                        x
                    })
                    .collect();
                r
            })
            .collect();
        stats.batched_requests = reqs.len();
        for resp in conn.pipeline(&reqs, v).await? {
            for g in resp.groups {
                let gname = name(&g.group_id);
                if g.error_code != 0 {
                    tracing::warn!(group = %gname, code = g.error_code, "committed offsets unavailable");
                    failed.insert(gname);
                    continue;
                }
                committed.entry(gname.clone()).or_default();
                for t in &g.topics {
                    for p in &t.partitions {
                        keep(
                            &mut committed,
                            &gname,
                            &t.name.0,
                            p.partition_index,
                            p.committed_offset,
                            p.error_code,
                        );
                    }
                }
            }
        }
    } else {
        let request = |g: &GroupObservation, topics: &Option<Vec<OffsetFetchRequestTopic>>| {
            let mut r = OffsetFetchRequest::default();
            r.group_id = GroupId(StrBytes::from_string(g.group.clone()));
            r.topics = topics.clone();
            r
        };
        // "All topics" (null) from v2. Some brokers answer it with a null
        // topic array the protocol does not allow (tansu 0.6 at v7): the
        // first group is asked alone, and if its answer does not decode,
        // this connection names the watched partitions from then on (the
        // stream stays in step: the whole frame was read).
        if v < 2 {
            conn.offset_fetch_names_partitions = true;
        }
        let mut resps = Vec::with_capacity(described.len());
        let mut rest = &described[..];
        if !conn.offset_fetch_names_partitions
            && !conn.offset_fetch_probed
            && let Some(first) = described.first()
        {
            conn.offset_fetch_probed = true;
            match conn.pipeline(&[request(first, &None)], v).await {
                Ok(r) => resps.extend(r),
                Err(e) => {
                    tracing::info!(broker = %conn.addr(), error = %format!("{e:#}"), version = v,
                        "OffsetFetch for all topics not understood; naming the watched partitions");
                    conn.offset_fetch_names_partitions = true;
                    rest = &described[..];
                }
            }
            if !resps.is_empty() {
                rest = &described[1..];
            }
        }
        let topics = conn.offset_fetch_names_partitions.then(explicit);
        let reqs: Vec<OffsetFetchRequest> = rest.iter().map(|g| request(g, &topics)).collect();
        resps.extend(conn.pipeline(&reqs, v).await?);
        stats.per_group_requests = described.len();
        for (g, resp) in described.iter().zip(resps) {
            // The top-level error code exists from v2.
            if resp.error_code != 0 {
                tracing::warn!(group = %g.group, code = resp.error_code, "committed offsets unavailable");
                failed.insert(g.group.clone());
                continue;
            }
            committed.entry(g.group.clone()).or_default();
            for t in &resp.topics {
                for p in &t.partitions {
                    keep(
                        &mut committed,
                        &g.group,
                        &t.name.0,
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    );
                }
            }
        }
    }
    let groups = described
        .into_iter()
        .filter(|g| !failed.contains(&g.group))
        .map(|mut g| {
            g.committed = committed.remove(&g.group).unwrap_or_default();
            g
        })
        .collect();
    Ok((groups, stats))
}

async fn end_offsets(
    mut conn: Conn,
    topics: BTreeMap<String, Vec<i32>>,
    timeout: Duration,
) -> (Option<Conn>, anyhow::Result<HashMap<(String, i32), i64>>) {
    let addr = conn.addr().to_string();
    let res = within(timeout, &format!("ListOffsets from {addr}"), async {
        let v = conn.require::<ListOffsetsRequest>(7)?;
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        req.isolation_level = 1;
        req.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        req.topics = topics
            .into_iter()
            .map(|(t, ps)| {
                let mut x = ListOffsetsTopic::default();
                x.name = TopicName(StrBytes::from_string(t));
                x.partitions = ps
                    .into_iter()
                    .map(|p| {
                        let mut lp = ListOffsetsPartition::default();
                        lp.partition_index = p;
                        lp.current_leader_epoch = -1;
                        lp.timestamp = -1;
                        lp
                    })
                    .collect();
                x
            })
            .collect();
        let resp = conn
            .pipeline(&[req], v)
            .await?
            .pop()
            .context("empty ListOffsets response")?;
        let mut out = HashMap::new();
        for t in resp.topics {
            let tn = name(&t.name.0);
            for p in t.partitions {
                if p.error_code != 0 || p.offset < 0 {
                    tracing::warn!(topic = %tn, partition = p.partition_index, code = p.error_code, "end offset unavailable");
                    continue;
                }
                out.insert((tn.clone(), p.partition_index), p.offset);
            }
        }
        Ok(out)
    })
    .await;
    match res {
        Ok(r) => (Some(conn), Ok(r)),
        Err(e) => (None, Err(e)),
    }
}

#[cfg(test)]
mod tests {
    //! Both OffsetFetch paths against the synthetic server: the batched one
    //! (v8+, many groups a request) and the pipelined one (a server that
    //! says ≤ v7), each checked against the server's formula, on one
    //! connection.

    use std::sync::atomic::Ordering;

    use crate::config::Config;
    use crate::kafka::synthetic::{Server, Shape};
    use crate::lag::Collector;

    fn shape(offset_fetch_max_version: i16) -> Shape {
        Shape {
            topics: 300,
            partitions_per_topic: 4,
            groups: 2_500,
            offset_fetch_max_version,
        }
    }

    fn snapshot(shape: Shape, cap: Option<i16>) -> (super::Offsets, usize) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(Server::start(shape)).expect("server");
        let cfg = Config {
            kafka_brokers: server.addr.clone(),
            groups_deny: vec!["synthetic-group-00007".into()],
            ..Config::default()
        };
        let mut c = Collector::new(&cfg).expect("collector");
        if let Some(v) = cap {
            c = c.with_offset_fetch_max_version(v);
        }
        let first = c.offsets().expect("first snapshot");
        let second = c.offsets().expect("second snapshot");
        assert_eq!(first.groups.len(), second.groups.len());
        (second, server.connections.load(Ordering::Relaxed))
    }

    fn check(shape: Shape, o: &super::Offsets) {
        assert_eq!(o.ends.len(), shape.topics * shape.partitions_per_topic);
        for t in 0..shape.topics {
            for p in 0..shape.partitions_per_topic {
                assert_eq!(o.ends[&(Shape::topic(t), p as i32)], Shape::end(t, p));
            }
        }
        // Groups beyond the topics have no commits but are still listed;
        // the denied group is not.
        assert_eq!(o.groups.len(), shape.groups - 1);
        assert!(o.groups.iter().all(|g| g.group != "synthetic-group-00007"));
        let mut committed = 0;
        for g in &o.groups {
            let i: usize = g.group["synthetic-group-".len()..].parse().expect("index");
            assert_eq!(g.members, Shape::members(i), "{}", g.group);
            assert_eq!(
                g.state,
                if i.is_multiple_of(4) {
                    "Empty"
                } else {
                    "Stable"
                }
            );
            for ((t, p), c) in &g.committed {
                let ti: usize = t["synthetic-topic-".len()..].parse().expect("topic");
                assert_eq!(ti % shape.groups, i);
                assert_eq!(*c, Shape::committed(ti, *p as usize));
            }
            let want = (0..shape.topics).filter(|t| t % shape.groups == i).count()
                * shape.partitions_per_topic;
            assert_eq!(g.committed.len(), want, "{}", g.group);
            committed += g.committed.len();
        }
        let denied = (0..shape.topics).filter(|t| t % shape.groups == 7).count();
        assert_eq!(
            committed,
            (shape.topics - denied) * shape.partitions_per_topic,
            "every partition but the denied group's"
        );
    }

    #[test]
    fn batched_offset_fetch_reads_every_group_in_few_requests_on_one_connection() {
        let s = shape(9);
        let (o, conns) = snapshot(s, None);
        check(s, &o);
        assert!(o.stats.offset_fetch_version >= 8);
        assert_eq!(o.stats.per_group_requests, 0);
        assert_eq!(
            o.stats.batched_requests,
            (s.groups - 1).div_ceil(super::FETCH_CHUNK)
        );
        assert_eq!(conns, 1, "one connection for two snapshots");
        assert_eq!(o.stats.connections, 1);
    }

    #[test]
    fn below_v8_offset_fetch_is_pipelined_per_group_on_one_connection() {
        let s = shape(7);
        let (o, conns) = snapshot(s, None);
        check(s, &o);
        assert_eq!(o.stats.offset_fetch_version, 7);
        assert_eq!(o.stats.batched_requests, 0);
        assert_eq!(o.stats.per_group_requests, s.groups - 1);
        assert_eq!(conns, 1);
    }

    #[test]
    fn the_client_cap_forces_the_pipelined_path_on_a_batching_broker() {
        let s = shape(9);
        let (o, _) = snapshot(s, Some(7));
        check(s, &o);
        assert_eq!(o.stats.per_group_requests, s.groups - 1);
    }

    #[test]
    fn the_oldest_offset_fetch_names_the_watched_partitions() {
        // v1 has no "all topics": the request lists every watched partition.
        let s = Shape {
            groups: 50,
            ..shape(1)
        };
        let (o, _) = snapshot(s, None);
        check(s, &o);
        assert_eq!(o.stats.offset_fetch_version, 1);
    }
}

#[cfg(test)]
mod librdkafka_tests {
    //! The synthetic server also answers librdkafka (the benchmark's
    //! baseline), and both collectors read the same offsets from it.

    use crate::config::Config;
    use crate::kafka::synthetic::{Server, Shape};
    use crate::lag::Collector;
    use crate::lag::per_group::PerGroupCollector;

    #[test]
    fn librdkafka_per_group_and_protocol_collectors_agree_on_the_synthetic_server() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let s = Shape {
            topics: 20,
            partitions_per_topic: 2,
            groups: 5,
            offset_fetch_max_version: 9,
        };
        let server = rt.block_on(Server::start(s)).expect("server");
        let cfg = Config {
            kafka_brokers: server.addr.clone(),
            kafka_timeout_ms: 5_000,
            ..Config::default()
        };
        let old = PerGroupCollector::new(&cfg)
            .expect("collector")
            .offsets()
            .expect("librdkafka snapshot");
        let new = Collector::new(&cfg)
            .expect("collector")
            .offsets()
            .expect("protocol snapshot");
        let view = |g: &[crate::status::GroupObservation]| {
            g.iter()
                .map(|g| {
                    (
                        g.group.clone(),
                        g.state.clone(),
                        g.members,
                        g.committed.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(old.groups.len(), 5);
        assert_eq!(view(&old.groups), view(&new.groups));
        assert_eq!(old.ends, new.ends);
        assert_eq!(old.ends.len(), 40);
    }
}
