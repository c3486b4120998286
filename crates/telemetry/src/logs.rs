//! Log lines: one JSON object per event on stdout, with the trace and span
//! ids of the current span, and the same line pushed to Loki when `LOKI_URL`
//! is set (snappy-compressed protobuf, labels `service`, `level`, `version`
//! only, so the label set stays bounded).
//!
//! Pushing never blocks the caller: lines go through a bounded queue and are
//! dropped (and counted) when Loki is slow or down.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::TraceContextExt as _;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Loki's push API messages (`logproto.PushRequest`), field numbers as in
/// Loki's `push.proto`.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
    }
    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

const QUEUE: usize = 10_000;
const BATCH: usize = 1_000;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

struct Line {
    at: chrono::DateTime<chrono::Utc>,
    level: &'static str,
    text: String,
}

/// The layer that writes every event as JSON and feeds the Loki pusher.
pub struct LogLayer {
    service: String,
    version: String,
    loki: Option<mpsc::Sender<Line>>,
    dropped: Arc<AtomicU64>,
}

impl LogLayer {
    /// `loki_url` like `http://loki:3100`; the pusher task needs a Tokio runtime.
    pub fn new(service: &str, version: &str, loki_url: Option<String>) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let loki = loki_url.and_then(|url| match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (tx, rx) = mpsc::channel(QUEUE);
                rt.spawn(push_loop(
                    url,
                    service.to_string(),
                    version.to_string(),
                    rx,
                    dropped.clone(),
                ));
                Some(tx)
            }
            Err(_) => {
                eprintln!("LOKI_URL is set but there is no Tokio runtime; not pushing logs");
                None
            }
        });
        Self {
            service: service.to_string(),
            version: version.to_string(),
            loki,
            dropped,
        }
    }
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            serde_json::Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(
            field.name().to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

fn level_str(l: &tracing::Level) -> &'static str {
    match *l {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

impl<S> tracing_subscriber::Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let at = chrono::Utc::now();
        let level = level_str(event.metadata().level());
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        let mut obj = serde_json::Map::new();
        obj.insert(
            "timestamp".into(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        obj.insert("level".into(), level.into());
        obj.insert("target".into(), event.metadata().target().into());
        obj.insert("service".into(), self.service.clone().into());
        obj.insert("version".into(), self.version.clone().into());
        if let Some(span) = ctx.event_span(event) {
            obj.insert("span".into(), span.name().into());
        }
        let cx = tracing::Span::current().context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            obj.insert("trace_id".into(), sc.trace_id().to_string().into());
            obj.insert("span_id".into(), sc.span_id().to_string().into());
        }
        for (k, v) in fields.0 {
            obj.insert(k, v);
        }
        let text = serde_json::Value::Object(obj).to_string();
        {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.write_all(b"\n");
        }
        if let Some(tx) = &self.loki
            && tx.try_send(Line { at, level, text }).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Encode one push request: a stream per level, entries in time order.
pub fn encode_push(
    service: &str,
    version: &str,
    lines: &mut [(chrono::DateTime<chrono::Utc>, &'static str, String)],
) -> Vec<u8> {
    use prost::Message as _;
    lines.sort_by_key(|l| l.0);
    let mut streams: Vec<proto::StreamAdapter> = Vec::new();
    for (at, level, text) in lines.iter() {
        let labels = format!("{{service=\"{service}\", level=\"{level}\", version=\"{version}\"}}");
        let entry = proto::EntryAdapter {
            timestamp: Some(proto::Timestamp {
                seconds: at.timestamp(),
                nanos: at.timestamp_subsec_nanos() as i32,
            }),
            line: text.clone(),
        };
        match streams.iter_mut().find(|s| s.labels == labels) {
            Some(s) => s.entries.push(entry),
            None => streams.push(proto::StreamAdapter {
                labels,
                entries: vec![entry],
                hash: 0,
            }),
        }
    }
    let raw = proto::PushRequest { streams }.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

async fn push_loop(
    url: String,
    service: String,
    version: String,
    mut rx: mpsc::Receiver<Line>,
    dropped: Arc<AtomicU64>,
) {
    let endpoint = format!("{}/loki/api/v1/push", url.trim_end_matches('/'));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loki: cannot build HTTP client: {e}");
            return;
        }
    };
    let mut warned = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![(first.at, first.level, first.text)];
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(l)) => batch.push((l.at, l.level, l.text)),
                _ => break,
            }
        }
        let body = encode_push(&service, &version, &mut batch);
        let res = client
            .post(&endpoint)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match res {
            Ok(_) => warned = false,
            Err(e) => {
                dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                // Not through tracing: that would feed this very queue.
                if !warned {
                    eprintln!(
                        "loki: push to {endpoint} failed, dropping logs until it answers: {e}"
                    );
                    warned = true;
                }
            }
        }
    }
}
