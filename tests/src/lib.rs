//! Helpers for the system tests: an HTTP client that speaks our API and
//! readiness-style waits. The servers come from `devstack`.

pub mod dom;
pub mod otlp;
pub mod rollouts;

use std::time::Duration;

use anyhow::Context as _;
use bus::rdkafka::Message as _;
use bus::rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::Value;

pub use devstack::{Service, ServiceProcess, Stack};

/// `promtool check metrics` on a classic-text exposition: whether it
/// passed, and what promtool said.
pub async fn promtool_check_metrics(exposition: &str) -> anyhow::Result<(bool, String)> {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("promtool not found ({e}); run scripts/install-deps.sh"))?;
    if let Some(mut stdin) = child.stdin.take() {
        tokio::io::AsyncWriteExt::write_all(&mut stdin, exposition.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// An unsigned token for `fuzz` with the `operator` role, which an observer
/// in dev auth mode accepts (X-User-Id alone carries no role).
pub const OPERATOR_TOKEN: &str =
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJmdXp6Iiwicm9sZXMiOlsib3BlcmF0b3IiXX0.";

/// A client for the command and query APIs.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub command: String,
    pub query: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn reply(resp: reqwest::Response) -> anyhow::Result<Reply> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let raw = resp.text().await?;
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        body,
        raw,
    })
}

impl Api {
    pub fn new(command: &ServiceProcess, query: &ServiceProcess) -> Self {
        Self {
            http: reqwest::Client::new(),
            command: command.base_url(),
            query: query.base_url(),
        }
    }

    pub async fn create(&self, user: &str, body: Value) -> anyhow::Result<Reply> {
        reply(
            self.http
                .post(format!("{}/v1/todos", self.command))
                .header("x-user-id", user)
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder, user: &str) -> anyhow::Result<Reply> {
        reply(req.header("x-user-id", user).send().await?).await
    }

    pub async fn get(&self, user: &str, path: &str) -> anyhow::Result<Reply> {
        reply(
            self.http
                .get(format!("{}{path}", self.query))
                .header("x-user-id", user)
                .send()
                .await?,
        )
        .await
    }

    /// Poll the query API until `path` answers with `want` (a readiness-style
    /// wait on the projection, not a sleep).
    pub async fn wait_for(
        &self,
        user: &str,
        path: &str,
        timeout: Duration,
        want: impl Fn(&Reply) -> bool,
    ) -> anyhow::Result<Reply> {
        let start = std::time::Instant::now();
        loop {
            let r = self.get(user, path).await?;
            if want(&r) {
                return Ok(r);
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "timed out after {timeout:?} waiting on {path}; last reply {} {}",
                    r.status,
                    r.raw
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the todo is visible at `version` in the query service.
    pub async fn wait_version(&self, user: &str, id: &str, version: i64) -> anyhow::Result<Reply> {
        self.wait_for(
            user,
            &format!("/v1/todos/{id}"),
            Duration::from_secs(30),
            |r| r.status == 200 && r.body["version"].as_i64() == Some(version),
        )
        .await
    }
}

/// The usual trio: command, query and event processor.
pub struct Platform {
    pub stack: Stack,
    pub command: ServiceProcess,
    pub query: ServiceProcess,
    pub processor: Option<ServiceProcess>,
    pub api: Api,
}

impl Platform {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[], &[], true).await
    }

    pub async fn start_with(
        command_env: &[(&str, &str)],
        query_env: &[(&str, &str)],
        processor: bool,
    ) -> anyhow::Result<Self> {
        let stack = Stack::start()
            .await
            .context("starting postgres and the broker")?;
        let (command, query) = tokio::try_join!(
            stack.spawn(Service::Command, command_env),
            stack.spawn(Service::Query, query_env)
        )?;
        let processor = if processor {
            Some(stack.spawn(Service::Processor, &[]).await?)
        } else {
            None
        };
        let api = Api::new(&command, &query);
        Ok(Self {
            stack,
            command,
            query,
            processor,
            api,
        })
    }
}

/// Read every record currently on `topic` (all partitions, from the start),
/// waiting until at least `min` arrived.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    min: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<bus::rdkafka::message::OwnedMessage>> {
    let consumer: StreamConsumer = bus::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < min {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            Err(_) => anyhow::bail!(
                "timed out reading {topic}: got {} of {min} records",
                out.len()
            ),
        }
    }
    // Drain whatever else arrives shortly after (extra records matter for
    // "exactly once" assertions).
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
        out.push(m.detach());
    }
    Ok(out)
}

pub fn header(m: &bus::rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    bus::header(m, name).map(str::to_string)
}

pub fn payload_json(m: &bus::rdkafka::message::OwnedMessage) -> Value {
    m.payload()
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null)
}
