//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;

pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Named dependency checks, run concurrently with a timeout each.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check<F, Fut>(mut self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(f()) as CheckFuture)));
        self
    }

    pub async fn run(&self) -> (bool, serde_json::Value) {
        let futs = self.checks.iter().map(|(name, check)| {
            let fut = check();
            async move {
                let r = match tokio::time::timeout(Duration::from_secs(2), fut).await {
                    Ok(r) => r,
                    Err(_) => Err("timed out after 2s".to_string()),
                };
                (*name, r)
            }
        });
        let results = futures_join_all(futs).await;
        let ok = results.iter().all(|(_, r)| r.is_ok());
        let checks: serde_json::Map<String, serde_json::Value> = results
            .into_iter()
            .map(|(n, r)| {
                (
                    n.to_string(),
                    serde_json::Value::String(
                        r.err().map_or("ok".into(), |e| format!("error: {e}")),
                    ),
                )
            })
            .collect();
        (
            ok,
            serde_json::json!({ "status": if ok { "ready" } else { "not ready" }, "checks": checks }),
        )
    }
}

async fn futures_join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "alive" }))
}

pub async fn readyz(readiness: Readiness) -> impl IntoResponse {
    let (ok, body) = readiness.run().await;
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

/// Routes `/healthz` and `/readyz` for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(readiness: Readiness) -> axum::Router<S> {
    axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route(
            "/readyz",
            axum::routing::get(move || readyz(readiness.clone())),
        )
}
