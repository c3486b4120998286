//! A **synthetic** Kafka-protocol server, made for the `lag_scale`
//! benchmark and the tests of the batched offset paths: it holds no
//! records, only offsets computed from a formula, and answers exactly what a
//! lag snapshot asks (ApiVersions, Metadata, FindCoordinator, ListGroups,
//! DescribeGroups, OffsetFetch, ListOffsets) with the typed messages of the
//! `kafka-protocol` crate, so the observer's client and librdkafka both talk
//! to it as to a one-broker cluster. It is not a broker: nothing can be
//! produced or consumed.
//!
//! The cluster: `topics` topics `synthetic-topic-NNNNN` of
//! `partitions_per_topic` partitions each, and `groups` consumer groups
//! `synthetic-group-NNNNN`; group `g` has committed offsets on every
//! partition of the topics `t` with `t % groups == g` (so each partition is
//! consumed by exactly one group when `topics >= groups`). End offset of
//! `(t, p)`: `1_000_000 + 10 t + p`; committed: the end minus 0, 50 or 100
//! (`(t + p) % 3`). Every fourth group is `Empty` with no members, the
//! others `Stable` with one member.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use bytes::{BufMut as _, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, OffsetFetchResponse, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, Message, StrBytes, decode_request_header_from_buffer,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The synthetic cluster's shape (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub topics: usize,
    pub partitions_per_topic: usize,
    pub groups: usize,
    /// Highest OffsetFetch version advertised: below 8 makes clients take
    /// the per-group path.
    pub offset_fetch_max_version: i16,
}

impl Shape {
    pub fn topic(t: usize) -> String {
        format!("synthetic-topic-{t:05}")
    }
    pub fn group(g: usize) -> String {
        format!("synthetic-group-{g:05}")
    }
    pub fn end(t: usize, p: usize) -> i64 {
        1_000_000 + 10 * t as i64 + p as i64
    }
    pub fn committed(t: usize, p: usize) -> i64 {
        Self::end(t, p) - 50 * ((t + p) % 3) as i64
    }
    pub fn consumer_of(&self, t: usize) -> usize {
        t % self.groups.max(1)
    }
    pub fn members(g: usize) -> usize {
        usize::from(!g.is_multiple_of(4))
    }
    fn parse(s: &str, prefix: &str, bound: usize) -> Option<usize> {
        s.strip_prefix(prefix)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < bound)
    }
    fn topic_index(&self, s: &str) -> Option<usize> {
        Self::parse(s, "synthetic-topic-", self.topics)
    }
    fn group_index(&self, s: &str) -> Option<usize> {
        Self::parse(s, "synthetic-group-", self.groups)
    }
    /// Topics of group `g`.
    fn topics_of(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        (g..self.topics).step_by(self.groups.max(1))
    }
}

/// A running synthetic server; stops when dropped.
pub struct Server {
    pub addr: String,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Listen on a free loopback port (on the current tokio runtime).
    pub async fn start(shape: Shape) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let addr = local.to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let task = {
            let connections = connections.clone();
            let port = i32::from(local.port());
            tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        if let Err(e) = serve(sock, shape, port).await {
                            tracing::debug!(error = %format!("{e:#}"), "synthetic connection closed");
                        }
                    });
                }
            })
        };
        Ok(Self {
            addr,
            connections,
            task,
        })
    }
}

fn s(v: String) -> StrBytes {
    StrBytes::from_string(v)
}

async fn serve(mut sock: TcpStream, shape: Shape, port: i32) -> anyhow::Result<()> {
    sock.set_nodelay(true).ok();
    let mut out = BytesMut::new();
    loop {
        let len = match sock.read_i32().await {
            Ok(l) => l as usize,
            Err(_) => return Ok(()),
        };
        let mut frame = BytesMut::zeroed(len);
        sock.read_exact(&mut frame).await?;
        let mut frame = frame.freeze();
        let header = decode_request_header_from_buffer(&mut frame)?;
        let v = header.request_api_version;
        let key = ApiKey::try_from(header.request_api_key)
            .map_err(|_| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
        out.clear();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(v))?;
        respond(&mut out, &mut frame, key, v, &shape, port)
            .with_context(|| format!("answering {key:?} v{v}"))?;
        let n = i32::try_from(out.len() - 4).context("response too large")?;
        out[..4].copy_from_slice(&n.to_be_bytes());
        sock.write_all(&out).await?;
    }
}

fn respond(
    out: &mut BytesMut,
    frame: &mut bytes::Bytes,
    key: ApiKey,
    v: i16,
    shape: &Shape,
    port: i32,
) -> anyhow::Result<()> {
    {
        match key {
            ApiKey::ApiVersions => {
                let _ = ApiVersionsRequest::decode(frame, v);
                api_versions(shape).encode(out, v)?;
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(frame, v)?;
                metadata(shape, &req, port, v).encode(out, v)?;
            }
            ApiKey::FindCoordinator => {
                let req = FindCoordinatorRequest::decode(frame, v)?;
                find_coordinator(&req, port, v).encode(out, v)?;
            }
            ApiKey::ListGroups => {
                let _ = ListGroupsRequest::decode(frame, v)?;
                list_groups(shape, v).encode(out, v)?;
            }
            ApiKey::DescribeGroups => {
                let req = DescribeGroupsRequest::decode(frame, v)?;
                describe_groups(shape, &req).encode(out, v)?;
            }
            ApiKey::OffsetFetch => {
                let req = OffsetFetchRequest::decode(frame, v)?;
                offset_fetch(shape, &req, v).encode(out, v)?;
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(frame, v)?;
                list_offsets(shape, &req).encode(out, v)?;
            }
            other => anyhow::bail!("synthetic server does not serve {other:?}"),
        }
    }
    Ok(())
}

fn range<M: Message>(key: ApiKey, max: i16) -> ApiVersion {
    let mut v = ApiVersion::default();
    v.api_key = key as i16;
    v.min_version = M::VERSIONS.min;
    v.max_version = M::VERSIONS.max.min(max);
    v
}

fn api_versions(shape: &Shape) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = vec![
        range::<ApiVersionsRequest>(ApiKey::ApiVersions, 3),
        range::<MetadataRequest>(ApiKey::Metadata, 12),
        range::<FindCoordinatorRequest>(ApiKey::FindCoordinator, 4),
        range::<ListGroupsRequest>(ApiKey::ListGroups, 4),
        range::<DescribeGroupsRequest>(ApiKey::DescribeGroups, 5),
        range::<OffsetFetchRequest>(ApiKey::OffsetFetch, shape.offset_fetch_max_version),
        range::<ListOffsetsRequest>(ApiKey::ListOffsets, 7),
    ];
    r
}

fn metadata(shape: &Shape, req: &MetadataRequest, port: i32, v: i16) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(0);
    b.host = StrBytes::from_static_str("127.0.0.1");
    b.port = port;
    r.brokers = vec![b];
    r.controller_id = BrokerId(0);
    if v >= 2 {
        r.cluster_id = Some(StrBytes::from_static_str("synthetic"));
    }
    let topic = |t: usize| {
        let mut x = MetadataResponseTopic::default();
        x.name = Some(TopicName(s(Shape::topic(t))));
        x.partitions = (0..shape.partitions_per_topic)
            .map(|p| {
                let mut mp = MetadataResponsePartition::default();
                mp.partition_index = p as i32;
                mp.leader_id = BrokerId(0);
                mp.replica_nodes = vec![BrokerId(0)];
                mp.isr_nodes = vec![BrokerId(0)];
                mp
            })
            .collect();
        x
    };
    r.topics = match &req.topics {
        None => (0..shape.topics).map(topic).collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| t.name.as_ref())
            .map(|n| match shape.topic_index(n.as_str()) {
                Some(t) => topic(t),
                None => {
                    let mut x = MetadataResponseTopic::default();
                    x.name = Some(n.clone());
                    x.error_code = 3; // UNKNOWN_TOPIC_OR_PARTITION
                    x
                }
            })
            .collect(),
    };
    r
}

fn find_coordinator(req: &FindCoordinatorRequest, port: i32, v: i16) -> FindCoordinatorResponse {
    let mut r = FindCoordinatorResponse::default();
    if v < 4 {
        r.node_id = BrokerId(0);
        r.host = StrBytes::from_static_str("127.0.0.1");
        r.port = port;
        return r;
    }
    let mut keys = req.coordinator_keys.clone();
    if keys.is_empty() {
        keys.push(req.key.clone());
    }
    r.coordinators = keys
        .into_iter()
        .map(|k| {
            let mut c = Coordinator::default();
            c.key = k;
            c.node_id = BrokerId(0);
            c.host = StrBytes::from_static_str("127.0.0.1");
            c.port = port;
            c
        })
        .collect();
    r
}

fn list_groups(shape: &Shape, v: i16) -> ListGroupsResponse {
    let mut r = ListGroupsResponse::default();
    r.groups = (0..shape.groups)
        .map(|g| {
            let mut x = ListedGroup::default();
            x.group_id = GroupId(s(Shape::group(g)));
            x.protocol_type = StrBytes::from_static_str("consumer");
            // Fields a version does not have must stay at their defaults.
            if v >= 4 {
                x.group_state = state(g);
            }
            x
        })
        .collect();
    r
}

fn state(g: usize) -> StrBytes {
    StrBytes::from_static_str(if Shape::members(g) == 0 {
        "Empty"
    } else {
        "Stable"
    })
}

fn describe_groups(shape: &Shape, req: &DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    r.groups = req
        .groups
        .iter()
        .map(|id| {
            let mut d = DescribedGroup::default();
            d.group_id = id.clone();
            match shape.group_index(id.as_str()) {
                Some(g) => {
                    d.group_state = state(g);
                    d.protocol_type = StrBytes::from_static_str("consumer");
                    d.members = (0..Shape::members(g))
                        .map(|m| {
                            let mut mm = DescribedGroupMember::default();
                            mm.member_id = s(format!("member-{g}-{m}"));
                            mm.client_id = StrBytes::from_static_str("synthetic");
                            mm.client_host = StrBytes::from_static_str("/127.0.0.1");
                            mm
                        })
                        .collect();
                }
                None => d.group_state = StrBytes::from_static_str("Dead"),
            }
            d
        })
        .collect();
    r
}

/// `(topic name, [(partition, committed)])` of one group, for the requested
/// topics (`None` = all it has committed).
fn committed_of(
    shape: &Shape,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<(i32, i64)>)> {
    let g = shape.group_index(group);
    match topics {
        None => g
            .map(|g| {
                shape
                    .topics_of(g)
                    .map(|t| {
                        let parts = (0..shape.partitions_per_topic)
                            .map(|p| (p as i32, Shape::committed(t, p)))
                            .collect();
                        (TopicName(s(Shape::topic(t))), parts)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some(list) => list
            .into_iter()
            .map(|(name, parts)| {
                let t = shape
                    .topic_index(name.as_str())
                    .filter(|t| Some(shape.consumer_of(*t)) == g);
                let parts = parts
                    .into_iter()
                    .map(|p| {
                        let c = match t {
                            Some(t) if (p as usize) < shape.partitions_per_topic => {
                                Shape::committed(t, p as usize)
                            }
                            _ => -1,
                        };
                        (p, c)
                    })
                    .collect();
                (name, parts)
            })
            .collect(),
    }
}

fn offset_fetch(shape: &Shape, req: &OffsetFetchRequest, v: i16) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    if v >= 8 {
        r.groups = req
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default();
                out.group_id = g.group_id.clone();
                out.topics = committed_of(shape, g.group_id.as_str(), topics)
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = OffsetFetchResponseTopics::default();
                        t.name = name;
                        t.partitions = parts
                            .into_iter()
                            .map(|(p, c)| {
                                let mut x = OffsetFetchResponsePartitions::default();
                                x.partition_index = p;
                                x.committed_offset = c;
                                x.committed_leader_epoch = -1;
                                x.metadata = Some(StrBytes::default());
                                x
                            })
                            .collect();
                        t
                    })
                    .collect();
                out
            })
            .collect();
    } else {
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        r.topics = committed_of(shape, req.group_id.as_str(), topics)
            .into_iter()
            .map(|(name, parts)| {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = name;
                t.partitions = parts
                    .into_iter()
                    .map(|(p, c)| {
                        let mut x = OffsetFetchResponsePartition::default();
                        x.partition_index = p;
                        x.committed_offset = c;
                        x.committed_leader_epoch = -1;
                        x.metadata = Some(StrBytes::default());
                        x
                    })
                    .collect();
                t
            })
            .collect();
    }
    r
}

fn list_offsets(shape: &Shape, req: &ListOffsetsRequest) -> ListOffsetsResponse {
    let mut r = ListOffsetsResponse::default();
    r.topics = req
        .topics
        .iter()
        .map(|t| {
            let ti = shape.topic_index(t.name.as_str());
            let mut out = ListOffsetsTopicResponse::default();
            out.name = t.name.clone();
            out.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut x = ListOffsetsPartitionResponse::default();
                    x.partition_index = p.partition_index;
                    match ti {
                        Some(ti)
                            if (p.partition_index as usize) < shape.partitions_per_topic
                                && p.timestamp == -1 =>
                        {
                            x.offset = Shape::end(ti, p.partition_index as usize);
                            x.timestamp = -1;
                        }
                        Some(_) if p.timestamp == -2 => {
                            x.offset = 0;
                            x.timestamp = -1;
                        }
                        _ => {
                            x.error_code = 3; // UNKNOWN_TOPIC_OR_PARTITION
                            x.offset = -1;
                        }
                    }
                    x
                })
                .collect();
            out
        })
        .collect();
    r
}
