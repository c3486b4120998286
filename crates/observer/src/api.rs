//! The observer's router: the status page, `/api/v1/*`, `/metrics`, health
//! and `/openapi.json`, behind the middleware every service has (trace
//! context and server spans, the RED metrics, catch-panic). Errors are
//! service-kit's problem+json; response bodies are `observer-api` types.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use observer_api::lag::LagState;
use observer_api::slos::SlosQuery;
use service_kit::extract::ApiQuery;
use service_kit::problem::ApiError;

use crate::{AppState, canary_api, metrics, page, report, slos};

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
        .route("/metrics", get(get_metrics))
        .merge(canary_api::routes(&state))
        .merge(service_kit::health::routes(
            service_kit::health::Readiness::new(),
        ))
        .merge(service_kit::openapi::route(OPENAPI))
        .method_not_allowed_fallback(service_kit::problem::method_not_allowed)
        .fallback(service_kit::problem::not_found_fallback)
        .layer(axum::middleware::from_fn(service_kit::errors::catch_panic))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            service_kit::metrics::track_http,
        ))
        .layer(axum::middleware::from_fn(service_kit::trace::trace_http))
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

async fn get_metrics(State(s): State<AppState>) -> Response {
    let lag = s.lag.read().await;
    let slo = s.slo_snapshot.read().await;
    let mut body = metrics::render(
        lag.enabled.then_some(&lag.snapshot),
        lag.snapshot_duration_seconds,
        slo.as_ref(),
    );
    if let Some(c) = &s.rollouts {
        body.push_str(&metrics::render_canaries(&c.gauges().await, &c.metrics()));
    }
    body.push_str(&metrics::render_breakers(&s.breakers.all()));
    body.push_str(&metrics::render_http(&s.http_exposition));
    body.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
