//! A small Kafka-protocol client for the lag tailer's offset reads, on the
//! typed messages of the `kafka-protocol` crate: one TCP connection per
//! broker, API versions negotiated once per connection (ApiVersions), and
//! many requests of one kind written back to back on a connection before the
//! responses are read (pipelining; Kafka answers a connection's requests in
//! order). Producing and consuming stay on rdkafka (`bus`).
//!
//! [`synthetic`] is a Kafka-protocol server with synthetic offsets at scale,
//! made for the `lag_scale` benchmark and the tests of the batched paths.

pub mod offsets;
pub mod synthetic;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BufMut as _, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{
    Decodable, HeaderVersion, Request, StrBytes, encode_request_header_into_buffer,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response frame accepted (Kafka's own default `socket.request.max.bytes`
/// is 100 MiB): guards against a garbage length prefix.
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Requests encoded into one buffer before it is written (fewer syscalls
/// when pipelining thousands of small requests).
const WRITE_CHUNK: usize = 256 * 1024;

/// One connection to one broker, with the API versions it supports.
pub struct Conn {
    addr: String,
    stream: TcpStream,
    next_id: i32,
    /// api key → (min, max) the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    /// OffsetFetch below v8 names the watched partitions on this connection
    /// (v0–v1, or a broker that cannot answer "all topics").
    pub(crate) offset_fetch_names_partitions: bool,
    /// Whether "all topics" was tried once on this connection.
    pub(crate) offset_fetch_probed: bool,
}

impl Conn {
    /// Connect and ask the broker which API versions it supports
    /// (ApiVersions v0, which every broker answers).
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to broker {addr}"))?;
        stream.set_nodelay(true).ok();
        let mut conn = Self {
            addr: addr.to_string(),
            stream,
            next_id: 0,
            versions: HashMap::new(),
            offset_fetch_names_partitions: false,
            offset_fetch_probed: false,
        };
        let resp = conn
            .pipeline(&[ApiVersionsRequest::default()], 0)
            .await
            .with_context(|| format!("ApiVersions from {addr}"))?;
        let resp = resp
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no ApiVersions response from {addr}"))?;
        if resp.error_code != 0 {
            bail!("ApiVersions from {addr}: error code {}", resp.error_code);
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` both sides speak, at most `cap`; `None`
    /// when there is none.
    pub fn version<R: Request>(&self, cap: i16) -> Option<i16> {
        let (bmin, bmax) = *self.versions.get(&R::KEY)?;
        let max = bmax.min(R::VERSIONS.max).min(cap);
        let min = bmin.max(R::VERSIONS.min);
        (max >= min).then_some(max)
    }

    /// Like [`Conn::version`], an error naming the API when there is none.
    pub fn require<R: Request>(&self, cap: i16) -> anyhow::Result<i16> {
        self.version::<R>(cap).ok_or_else(|| {
            let name = ApiKey::try_from(R::KEY)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|_| R::KEY.to_string());
            anyhow::anyhow!(
                "broker {} supports no version of {name} this client speaks ({:?})",
                self.addr,
                self.versions.get(&R::KEY)
            )
        })
    }

    /// Send `reqs` (all of one kind, at `version`) back to back, then read
    /// their responses in order. On error the connection must be dropped.
    pub async fn pipeline<R: Request>(
        &mut self,
        reqs: &[R],
        version: i16,
    ) -> anyhow::Result<Vec<R::Response>> {
        let first_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(reqs.len() as i32);
        let (mut rd, mut wr) = self.stream.split();
        let write = async {
            let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
            for (i, req) in reqs.iter().enumerate() {
                let header = RequestHeader::default()
                    .with_request_api_key(R::KEY)
                    .with_request_api_version(version)
                    .with_correlation_id(first_id.wrapping_add(i as i32))
                    .with_client_id(Some(StrBytes::from_static_str("observer")));
                let start = buf.len();
                buf.put_i32(0);
                encode_request_header_into_buffer(&mut buf, &header)?;
                req.encode(&mut buf, version)?;
                let len = i32::try_from(buf.len() - start - 4).context("request too large")?;
                buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
                if buf.len() >= WRITE_CHUNK {
                    wr.write_all(&buf).await?;
                    buf.clear();
                }
            }
            if !buf.is_empty() {
                wr.write_all(&buf).await?;
            }
            wr.flush().await?;
            anyhow::Ok(())
        };
        let read = async {
            let mut out = Vec::with_capacity(reqs.len());
            let header_version = R::Response::header_version(version);
            for i in 0..reqs.len() {
                let len = rd.read_i32().await? as usize;
                if len > MAX_FRAME {
                    bail!("response frame of {len} bytes");
                }
                let mut frame = BytesMut::zeroed(len);
                rd.read_exact(&mut frame).await?;
                let mut frame = frame.freeze();
                let header = ResponseHeader::decode(&mut frame, header_version)?;
                let want = first_id.wrapping_add(i as i32);
                if header.correlation_id != want {
                    bail!(
                        "response correlation id {} where {want} was expected",
                        header.correlation_id
                    );
                }
                out.push(R::Response::decode(&mut frame, version)?);
                if frame.has_remaining() {
                    tracing::trace!(bytes = frame.remaining(), "unread bytes in a response");
                }
            }
            anyhow::Ok(out)
        };
        let (_, out) = tokio::try_join!(write, read)?;
        Ok(out)
    }
}

/// Connections keyed by broker address, opened on first use and dropped on
/// error (reopened by the next call).
#[derive(Default)]
pub struct Pool {
    conns: HashMap<String, Conn>,
}

impl Pool {
    pub async fn get(&mut self, addr: &str) -> anyhow::Result<&mut Conn> {
        if !self.conns.contains_key(addr) {
            let c = Conn::connect(addr).await?;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| anyhow::anyhow!("connection to {addr} vanished"))
    }

    /// Take a connection out (for concurrent use across brokers); put it
    /// back with [`Pool::put`] when the call succeeded.
    pub async fn take(&mut self, addr: &str) -> anyhow::Result<Conn> {
        match self.conns.remove(addr) {
            Some(c) => Ok(c),
            None => Conn::connect(addr).await,
        }
    }

    pub fn put(&mut self, conn: Conn) {
        self.conns.insert(conn.addr.clone(), conn);
    }

    pub fn drop_conn(&mut self, addr: &str) {
        self.conns.remove(addr);
    }

    /// Open connections (one per broker address).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn close_all(&mut self) {
        self.conns.clear();
    }
}

/// Run `fut` with a deadline, naming `what` when it passes.
pub async fn within<T>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => bail!("{what}: no answer within {} ms", timeout.as_millis()),
    }
}

/// `"host:port"` of a broker from Metadata.
pub fn broker_addr(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
