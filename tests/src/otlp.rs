//! A local OTLP/HTTP trace receiver: decodes the protobuf the services
//! export (we cannot run a collector here) and keeps what it saw.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

/// (service.name, span name, kind, trace id as hex)
pub type Seen = Arc<Mutex<Vec<(String, String, i32, String)>>>;

pub async fn otlp_receiver() -> anyhow::Result<(String, Seen)> {
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
