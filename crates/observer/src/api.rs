//! The observer's routes: the status page and `/api/v1/*`. service-kit's
//! `ServerBuilder` adds `/metrics` (its families from `metrics::Live`),
//! health and `/openapi.json`, and puts them behind the middleware every
//! service has (trace context and server spans, the RED metrics,
//! catch-panic, the body limit). Errors are service-kit's problem+json;
//! response bodies are `observer-api` types.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use observer_api::lag::LagState;
use observer_api::slos::SlosQuery;
use service_kit::extract::ApiQuery;
use service_kit::problem::ApiError;

use crate::{AppState, canary_api, page, report, slos};

/// The observer's OpenAPI document (checked against the router by
/// `tests/openapi.rs` and against the running observer by
/// `tests/tests/schemathesis.rs`).
pub const OPENAPI: &str = include_str!("../openapi.json");

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(page::routes())
        .route("/api/v1/lag", get(get_lag))
        .route("/api/v1/slos", get(get_slos))
        .route("/api/v1/alerts", get(get_alerts))
        .route("/api/v1/report", get(get_report))
        .merge(canary_api::routes(&state))
        .layer(axum::Extension(state.guard.authenticator()))
        .with_state(state)
}

async fn get_lag(State(s): State<AppState>) -> axum::Json<LagState> {
    let mut lag = s.lag.read().await.clone();
    let fresh = s.freshness.read().await;
    for g in &mut lag.snapshot.groups {
        g.projection_freshness_p99_seconds = fresh.get(&g.group).copied();
    }
    axum::Json(lag)
}

async fn get_slos(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SlosQuery>,
) -> Result<Response, ApiError> {
    let Some(client) = s.prom.clone() else {
        return Err(ApiError::NotFound(
            "SLO evaluation is not configured: set slo_dir and prometheus_url".into(),
        ));
    };
    Ok(match q.at {
        Some(at) if !at.is_finite() || at <= 0.0 => {
            return Err(ApiError::field(
                "at",
                "must be a positive Unix time in seconds",
            ));
        }
        Some(at) => axum::Json(slos::evaluate_all(&client, &s.slos, at).await).into_response(),
        None => match &*s.slo_snapshot.read().await {
            Some(snap) => axum::Json(snap).into_response(),
            None => axum::Json(slos::evaluate_all(&client, &s.slos, slos::now_secs()).await)
                .into_response(),
        },
    })
}

async fn get_alerts(State(s): State<AppState>) -> Response {
    axum::Json(s.pager.lock().await.active()).into_response()
}

async fn get_report(State(s): State<AppState>) -> Result<Response, ApiError> {
    if let Some(r) = &*s.report.read().await {
        return Ok(axum::Json(r).into_response());
    }
    match &*s.slo_snapshot.read().await {
        Some(snap) => Ok(axum::Json(report::build(snap)).into_response()),
        None => Err(ApiError::NotFound(
            "no SLO evaluation yet: the first evaluation has not finished (or SLO evaluation is not configured)".into(),
        )),
    }
}
