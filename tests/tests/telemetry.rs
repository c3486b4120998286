//! Traces across every hop of the write path, checked by a local OTLP/HTTP
//! receiver that decodes the protobuf the services export.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use prost::Message as _;
use serde_json::json;
use system_tests::otlp::{otlp_receiver, traced_stack};
use system_tests::{Api, Service, Stack};

/// A fresh trace id and a `traceparent` that continues it.
fn new_trace() -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent = &uuid::Uuid::new_v4().simple().to_string()[..16];
    (trace_id.clone(), format!("00-{trace_id}-{parent}-01"))
}

/// `POST /v1/todos` as alice, inside the caller's trace.
async fn post_traced(
    api: &Api,
    traceparent: &str,
    title: &str,
) -> anyhow::Result<system_tests::Reply> {
    api.send(
        api.http
            .post(format!("{}/v1/todos", api.command))
            .header("traceparent", traceparent)
            .json(&json!({ "title": title })),
        "alice",
    )
    .await
}

#[tokio::test]
async fn one_request_makes_one_trace_across_command_relay_projection_and_processor()
-> anyhow::Result<()> {
    let (stack, seen) = traced_stack(&[]).await?;
    let command = stack.spawn(Service::Command, &[]).await?;
    let query = stack.spawn(Service::Query, &[]).await?;
    let _processor = stack.spawn(Service::Processor, &[]).await?;
    let api = Api::new(&command, &query);

    let (trace_id, traceparent) = new_trace();
    let r = post_traced(&api, &traceparent, "traced").await?;
    assert_eq!(r.status, 201, "{}", r.raw);
    api.wait_version("alice", r.body["id"].as_str().unwrap_or_default(), 1)
        .await?;

    // SpanKind: 2 server, 3 client, 4 producer, 5 consumer.
    let want: BTreeSet<(String, String, i32)> = [
        ("command-service", "POST /v1/todos", 2),
        ("command-service", "todo-events publish", 4),
        ("query-service", "todo-events project", 5),
        ("event-processor", "todo-events process", 5),
    ]
    .into_iter()
    .map(|(s, n, k)| (s.to_string(), n.to_string(), k))
    .collect();
    let got = || -> BTreeSet<(String, String, i32)> {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, _, _, t)| *t == trace_id)
            .map(|(s, n, k, _)| (s.clone(), n.clone(), *k))
            .collect()
    };
    let waited = devstack::wait_until(
        "spans of every hop to arrive",
        Duration::from_secs(30),
        || {
            let have = got();
            let ok = want.is_subset(&have);
            async move { ok }
        },
    )
    .await;
    assert!(
        waited.is_ok(),
        "missing spans for trace {trace_id}: want {want:?}, got {:?}",
        got()
    );
    Ok(())
}

/// Loki's push messages, written out here independently of the service's
/// encoder so that a mismatch with Loki's `push.proto` shows up.
mod loki {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// (labels, line) of every entry pushed.
type Lines = Arc<Mutex<Vec<(String, String)>>>;

async fn loki_receiver() -> anyhow::Result<(String, Lines)> {
    let seen: Lines = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/loki/api/v1/push",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                if headers.get("content-type").and_then(|v| v.to_str().ok())
                    != Some("application/x-protobuf")
                {
                    return axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
                }
                let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let Ok(req) = loki::PushRequest::decode(raw.as_slice()) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
                for s in req.streams {
                    for e in s.entries {
                        out.push((s.labels.clone(), e.line));
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

#[tokio::test]
async fn log_lines_reach_loki_with_the_trace_id_and_bounded_labels() -> anyhow::Result<()> {
    let (otlp, _spans) = otlp_receiver().await?;
    let (loki_url, lines) = loki_receiver().await?;
    let mut stack = Stack::start().await?;
    stack.wiring.common_env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
        ("LOKI_URL".into(), loki_url),
    ];
    let command = stack.spawn(Service::Command, &[]).await?;
    let query = stack.spawn(Service::Query, &[]).await?;
    let api = Api::new(&command, &query);
    let (trace_id, traceparent) = new_trace();
    let r = post_traced(&api, &traceparent, "logged").await?;
    assert_eq!(r.status, 201);

    let find = || -> Option<(String, serde_json::Value)> {
        lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|(labels, line)| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                (v["trace_id"] == trace_id.as_str() && v["route"] == "/v1/todos")
                    .then(|| (labels.clone(), v))
            })
    };
    let waited = devstack::wait_until(
        "the access log line to reach Loki",
        Duration::from_secs(30),
        || {
            let found = find().is_some();
            async move { found }
        },
    )
    .await;
    assert!(
        waited.is_ok(),
        "no line with trace id {trace_id}; got {} lines",
        lines.lock().map(|l| l.len()).unwrap_or(0)
    );
    let (labels, line) = find().expect("found above");
    assert_eq!(
        labels, r#"{service="command-service", level="info", version="stable"}"#,
        "only bounded labels"
    );
    assert_eq!(line["status"], 201);
    assert_eq!(line["service"], "command-service");
    assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16));
    // Every label set seen is one of the bounded ones.
    for (labels, _) in lines.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(
            labels.starts_with("{service=\"") && labels.matches('=').count() == 3,
            "{labels}"
        );
    }
    Ok(())
}

/// Sentry envelopes received: the JSON items of each.
type Envelopes = Arc<Mutex<Vec<serde_json::Value>>>;

async fn sentry_receiver() -> anyhow::Result<(String, Envelopes)> {
    let seen: Envelopes = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/api/{project}/envelope/",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                // An envelope is newline-delimited: a header, then item headers
                // each followed by its payload. Keep every JSON line.
                let text = String::from_utf8_lossy(&body).to_string();
                let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
                for line in text.lines() {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                        out.push(v);
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://public@{addr}/42"), seen))
}

/// Command and query services exporting traces and reporting to a local
/// Sentry endpoint, the command service with the fault flag `fault` at 1.0.
async fn traced_with_sentry(fault: &str) -> anyhow::Result<SentryRig> {
    let (otlp, _spans) = otlp_receiver().await?;
    let (dsn, envelopes) = sentry_receiver().await?;
    let mut stack = Stack::start().await?;
    stack.wiring.common_env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
        ("SENTRY_DSN".into(), dsn),
    ];
    let command = stack.spawn(Service::Command, &[(fault, "1.0")]).await?;
    let query = stack.spawn(Service::Query, &[]).await?;
    let api = Api::new(&command, &query);
    Ok(SentryRig {
        _servers: (stack, command, query),
        api,
        envelopes,
    })
}

/// Keeps the servers running while a test uses the API and the envelopes.
struct SentryRig {
    _servers: (
        Stack,
        system_tests::ServiceProcess,
        system_tests::ServiceProcess,
    ),
    api: Api,
    envelopes: Envelopes,
}

#[tokio::test]
async fn a_forced_5xx_reaches_sentry_with_the_trace_id() -> anyhow::Result<()> {
    // A bad build on purpose: every request fails.
    let SentryRig {
        _servers,
        api,
        envelopes,
    } = traced_with_sentry("FAULT_ERROR_RATE").await?;
    let (trace_id, traceparent) = new_trace();
    let r = post_traced(&api, &traceparent, "doomed").await?;
    assert_eq!(r.status, 500);
    assert_eq!(r.content_type(), "application/problem+json");
    assert!(
        !r.raw.contains("injected"),
        "5xx bodies stay generic: {}",
        r.raw
    );

    let event = || -> Option<serde_json::Value> {
        envelopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|v| v["tags"]["trace_id"] == trace_id.as_str())
            .cloned()
    };
    let waited = devstack::wait_until("the error to reach Sentry", Duration::from_secs(30), || {
        let found = event().is_some();
        async move { found }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no Sentry event tagged with trace id {trace_id}: {:?}",
        envelopes.lock().map(|e| e.clone())
    );
    let ev = event().expect("found above");
    // Sentry omits the level when it is the default, "error".
    assert!(ev["level"].is_null() || ev["level"] == "error", "{ev}");
    assert_eq!(ev["tags"]["service"], "command-service");
    assert!(ev["message"].to_string().contains("injected fault"), "{ev}");
    Ok(())
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_reaches_sentry_with_the_trace_id() -> anyhow::Result<()>
{
    let SentryRig {
        _servers,
        api,
        envelopes,
    } = traced_with_sentry("FAULT_PANIC_RATE").await?;
    let (trace_id, traceparent) = new_trace();
    let r = post_traced(&api, &traceparent, "boom").await?;
    assert_eq!(r.status, 500, "{}", r.raw);
    assert_eq!(r.content_type(), "application/problem+json");
    // The process survived the panic and keeps serving.
    let health = api
        .http
        .get(format!("{}/healthz", api.command))
        .send()
        .await?;
    assert!(health.status().is_success());

    let panic_event = || -> Option<serde_json::Value> {
        envelopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|v| {
                v["tags"]["trace_id"] == trace_id.as_str()
                    && v.to_string().contains("injected panic")
            })
            .cloned()
    };
    let waited = devstack::wait_until("the panic to reach Sentry", Duration::from_secs(30), || {
        let found = panic_event().is_some();
        async move { found }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no Sentry panic event tagged {trace_id}: {:?}",
        envelopes.lock().map(|e| e.clone())
    );
    Ok(())
}

/// Sampling by `OTEL_TRACES_SAMPLER`: with `parentbased_traceidratio` and a
/// ratio of 0, requests that start a trace, or continue an unsampled one,
/// export nothing, while a caller's sampled trace is kept (request span and
/// the relay's publish span).
#[tokio::test]
async fn ratio_zero_exports_no_spans_of_its_own_but_keeps_a_sampled_parents_trace()
-> anyhow::Result<()> {
    let (stack, seen) = traced_stack(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ])
    .await?;
    let command = stack.spawn(Service::Command, &[]).await?;
    let query = stack.spawn(Service::Query, &[]).await?;
    let api = Api::new(&command, &query);

    // A root request (no traceparent) and one whose caller did not sample.
    let root = api.create("alice", json!({ "title": "root" })).await?;
    assert_eq!(root.status, 201, "{}", root.raw);
    let (unsampled_id, sampled_parent) = new_trace();
    // Same trace and parent, the sampled flag cleared.
    let unsampled_parent = format!("{}-00", &sampled_parent[..sampled_parent.len() - 3]);
    let r = post_traced(&api, &unsampled_parent, "unsampled parent").await?;
    assert_eq!(r.status, 201, "{}", r.raw);
    // Then a sampled caller.
    let (trace_id, traceparent) = new_trace();
    let r = post_traced(&api, &traceparent, "sampled parent").await?;
    assert_eq!(r.status, 201, "{}", r.raw);

    let want: BTreeSet<(String, String, i32)> = [
        ("command-service", "POST /v1/todos", 2),
        ("command-service", "todo-events publish", 4),
    ]
    .into_iter()
    .map(|(s, n, k)| (s.to_string(), n.to_string(), k))
    .collect();
    let all = || seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let waited = devstack::wait_until(
        "the sampled trace's request and publish spans",
        Duration::from_secs(30),
        || {
            let have: BTreeSet<(String, String, i32)> = all()
                .into_iter()
                .filter(|(_, _, _, t)| *t == trace_id)
                .map(|(s, n, k, _)| (s, n, k))
                .collect();
            let ok = want.is_subset(&have);
            async move { ok }
        },
    )
    .await;
    assert!(
        waited.is_ok(),
        "the sampled parent's trace {trace_id} was not exported: got {:?}",
        all()
    );
    // The readiness probes and the two other requests were handled, and
    // relayed, before the sampled one (the relay publishes in outbox order),
    // and the batch exporter sends spans in the order they ended: had any of
    // them been sampled, it would have arrived by now.
    let others: Vec<_> = all()
        .into_iter()
        .filter(|(s, _, _, t)| s == "command-service" && *t != trace_id)
        .collect();
    assert!(
        others.is_empty(),
        "spans exported for traces the sampler should drop (unsampled parent {unsampled_id}): {others:?}"
    );
    Ok(())
}
