//! Stand-ins for the images that have no local program here (Grafana, Loki,
//! Tempo, promtail): each listens on the service's address and the ports its
//! image serves, speaks the same protocol there, and serves `/metrics` so
//! Prometheus' scrape of it is real.
//!
//! The Tempo stand-in decodes OTLP/HTTP on 4318 and, like a gRPC-only port,
//! refuses HTTP/1 on 4317: a service exporting OTLP/HTTP to 4317 loses its
//! traces here exactly as it would against Tempo.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::routing::{get, post};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

use crate::otlp::Seen;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Grafana,
    Loki,
    Tempo,
    Promtail,
}

impl Kind {
    pub fn for_image(repo: &str) -> Option<Self> {
        match repo {
            "grafana/grafana" => Some(Self::Grafana),
            "grafana/loki" => Some(Self::Loki),
            "grafana/tempo" => Some(Self::Tempo),
            "grafana/promtail" => Some(Self::Promtail),
            _ => None,
        }
    }

    /// What the stand-in serves, for the run's report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Grafana => {
                "stand-in: /api/health and /metrics on :3000 (no Grafana binary here; provisioning is checked separately)"
            }
            Self::Loki => {
                "stand-in: /ready, /metrics and the push API on :3100 (no Loki binary here)"
            }
            Self::Tempo => {
                "stand-in: OTLP/HTTP decoder on :4318, gRPC-only :4317 (HTTP/1 refused), /ready and /metrics on :3200 (no Tempo binary here)"
            }
            Self::Promtail => {
                "stand-in: /ready and /metrics on :9080 (no promtail binary and no Docker socket to read logs from here)"
            }
        }
    }

    /// The port whose answer means "up".
    pub fn main_port(self) -> u16 {
        match self {
            Self::Grafana => 3000,
            Self::Loki => 3100,
            Self::Tempo => 3200,
            Self::Promtail => 9080,
        }
    }
}

fn metrics(name: &'static str, hits: Arc<AtomicU64>) -> axum::Router {
    let ok = |body: &'static str| move || async move { body };
    let counted = hits.clone();
    axum::Router::new()
        .route("/ready", get(ok("ready\n")))
        .route(
            "/metrics",
            get(move || {
                let n = counted.load(Ordering::Relaxed);
                async move {
                    format!(
                        "# HELP standin_requests_total Requests the {name} stand-in received.\n# TYPE standin_requests_total counter\nstandin_requests_total{{standin=\"{name}\"}} {n}\n"
                    )
                }
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    next.run(req).await
                }
            },
        ))
}

async fn serve(addr: &str, port: u16, app: axum::Router) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind((addr, port))
        .await
        .map_err(|e| anyhow::anyhow!("stand-in cannot listen on {addr}:{port}: {e}"))?;
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

/// A port that speaks only HTTP/2 with prior knowledge (gRPC): anything else
/// gets an HTTP/2 GOAWAY (PROTOCOL_ERROR) and the connection is closed, as
/// a Go gRPC server does.
async fn grpc_only(addr: &str, port: u16) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind((addr, port))
        .await
        .map_err(|e| anyhow::anyhow!("stand-in cannot listen on {addr}:{port}: {e}"))?;
    Ok(tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 24];
                let _ = sock.read(&mut buf).await;
                // GOAWAY: length 8, type 7, flags 0, stream 0, last stream 0, PROTOCOL_ERROR (1).
                let goaway = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                let _ = sock.write_all(&goaway).await;
                let _ = sock.shutdown().await;
            });
        }
    }))
}

/// Start the stand-in on `addr`; Tempo's decoded spans go to `spans`.
pub async fn start(kind: Kind, addr: &str, spans: Seen) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let hits = Arc::new(AtomicU64::new(0));
    Ok(match kind {
        Kind::Grafana => {
            let app = metrics("grafana", hits)
                .route("/api/health", get(|| async { axum::Json(health_body()) }));
            vec![serve(addr, 3000, app).await?]
        }
        Kind::Loki => {
            let pushes = hits.clone();
            let app = metrics("loki", hits).route(
                "/loki/api/v1/push",
                post(move || {
                    pushes.fetch_add(1, Ordering::Relaxed);
                    async { axum::http::StatusCode::NO_CONTENT }
                }),
            );
            vec![serve(addr, 3100, app).await?]
        }
        Kind::Tempo => vec![
            serve(addr, 3200, metrics("tempo", hits)).await?,
            serve(addr, 4318, crate::otlp::router(spans)).await?,
            grpc_only(addr, 4317).await?,
        ],
        Kind::Promtail => vec![serve(addr, 9080, metrics("promtail", hits)).await?],
    })
}

fn health_body() -> std::collections::BTreeMap<&'static str, &'static str> {
    [("database", "ok"), ("version", "stand-in")].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What makes the parity run catch an exporter on the wrong port: Tempo's
    /// 4318 takes OTLP/HTTP, its 4317 refuses it.
    #[tokio::test]
    async fn tempo_takes_otlp_http_on_4318_and_refuses_it_on_4317() {
        let addr = "127.0.77.9";
        let spans = Seen::default();
        let _tasks = start(Kind::Tempo, addr, spans.clone())
            .await
            .expect("starts");
        let http = reqwest::Client::new();
        let body = {
            use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
            use prost::Message as _;
            ExportTraceServiceRequest::default().encode_to_vec()
        };
        let post = |port: u16| {
            http.post(format!("http://{addr}:{port}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
        };
        assert!(
            post(4318)
                .await
                .expect("4318 answers")
                .status()
                .is_success()
        );
        assert!(
            post(4317).await.is_err(),
            "4317 is gRPC only: HTTP/1 gets no answer"
        );
        let ready = http
            .get(format!("http://{addr}:3200/ready"))
            .send()
            .await
            .expect("ready");
        assert!(ready.status().is_success());
    }
}
