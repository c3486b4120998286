//! Traces across every hop of the write path, checked by a local OTLP/HTTP
//! receiver that decodes the protobuf the services export.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use serde_json::json;
use system_tests::{Api, Service, Stack};

/// (service.name, span name, kind, trace id as hex)
type Seen = Arc<Mutex<Vec<(String, String, i32, String)>>>;

async fn otlp_receiver() -> anyhow::Result<(String, Seen)> {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        "not an ExportTraceServiceRequest",
                    );
                };
                let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            Value::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            let trace_id: String =
                                span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                            out.push((service.clone(), span.name, span.kind, trace_id));
                        }
                    }
                }
                (axum::http::StatusCode::OK, "")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

#[tokio::test]
async fn one_request_makes_one_trace_across_command_relay_projection_and_processor()
-> anyhow::Result<()> {
    let (otlp, seen) = otlp_receiver().await?;
    let mut stack = Stack::start().await?;
    stack.wiring.common_env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ];
    let command = stack.spawn(Service::Command, &[]).await?;
    let query = stack.spawn(Service::Query, &[]).await?;
    let _processor = stack.spawn(Service::Processor, &[]).await?;
    let api = Api::new(&command, &query);

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let traceparent = format!(
        "00-{trace_id}-{}-01",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let r = api
        .send(
            api.http
                .post(format!("{}/v1/todos", api.command))
                .header("traceparent", &traceparent)
                .json(&json!({"title": "traced"})),
            "alice",
        )
        .await?;
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
