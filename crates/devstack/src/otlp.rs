//! A local OTLP/HTTP trace receiver: decodes the protobuf the services
//! export (no collector runs here) and keeps what it saw. Used by the
//! telemetry tests and as the Tempo stand-in of the compose parity run.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

/// (service.name, span name, kind, trace id as hex)
pub type Seen = Arc<Mutex<Vec<(String, String, i32, String)>>>;

/// `POST /v1/traces` (OTLP/HTTP protobuf) recording into `seen`.
pub fn router(seen: Seen) -> axum::Router {
    axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = seen.clone();
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
    )
}

/// A receiver on a random loopback port: its base URL and what it saw.
pub async fn receiver() -> anyhow::Result<(String, Seen)> {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = router(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}
