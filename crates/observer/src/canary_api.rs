//! `/api/v1/canaries`: rollout status, the decision log, and the operator
//! actions (`promote`, `pause`, `resume`, `abort`, `rollback`, and `start`
//! with a reason to override the error-budget gate). Actions need
//! an authenticated caller with the `operator` role (401 without a caller,
//! 403 without the role); the caller's subject is recorded in the log.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use service_kit::auth::Principal;
use service_kit::extract::ApiQuery;
use service_kit::problem::ApiError;

use crate::AppState;
use crate::rollouts::{ActError, Action, Controller};
use observer_api::canaries::{ActionBody, HistoryQuery};

pub fn routes(state: &AppState) -> Router<AppState> {
    let mut actions = Router::new()
        .route("/api/v1/canaries/{name}/{action}", post(act))
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            service_kit::rate_limit::access_guard,
        ));
    // Outermost: refused actions (401, 403) are audited too.
    if let Some(a) = &state.auditor {
        actions = actions.route_layer(axum::middleware::from_fn_with_state(
            a.clone(),
            service_kit::audit::audit_requests,
        ));
    }
    Router::new()
        .route("/api/v1/canaries", get(list))
        .route("/api/v1/canaries/{name}", get(show))
        .route("/api/v1/canaries/{name}/decisions", get(history))
        .merge(actions)
}

fn controller(s: &AppState) -> Result<&Controller, ApiError> {
    s.rollouts.as_deref().ok_or_else(|| {
        ApiError::NotFound(
            "canary analysis is not configured on this observer (set canary_dir and database_url)"
                .into(),
        )
    })
}

async fn list(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(controller(&s)?.list().await).into_response())
}

async fn show(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    match controller(&s)?.get(&name).await {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError::NotFound(format!("no canary named '{name}'"))),
    }
}

async fn history(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let c = controller(&s)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    if c.get(&name).await.is_none() {
        return Err(ApiError::NotFound(format!("no canary named '{name}'")));
    }
    let rows = c
        .decisions(&name, limit, q.action.as_deref())
        .await
        .map_err(|e| ApiError::Unavailable {
            detail: format!("reading the decision log: {e:#}"),
            retry_after_secs: 5,
        })?;
    Ok(axum::Json(rows).into_response())
}

async fn act(
    State(s): State<AppState>,
    Path((name, action)): Path<(String, String)>,
    who: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = controller(&s)?;
    who.require_role(service_kit::auth::roles::OPERATOR)?;
    let Some(action) = Action::parse(&action) else {
        return Err(ApiError::NotFound(format!(
            "no action '{action}' (use promote, pause, resume, abort, rollback or start)"
        )));
    };
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::field("body", e.to_string()))?
    };
    if body.reason.as_ref().is_some_and(|r| r.len() > 1000) {
        return Err(ApiError::field("reason", "at most 1000 characters"));
    }
    match c
        .act(&name, action, &who.subject, body.reason.as_deref())
        .await
    {
        Ok(v) => Ok(axum::Json(v).into_response()),
        Err(ActError::NotFound(n)) => Err(ApiError::NotFound(format!("no canary named '{n}'"))),
        Err(ActError::Conflict(why)) => Err(ApiError::Conflict(why)),
        Err(ActError::Driver(why)) => Err(ApiError::Unavailable {
            detail: format!(
                "the action is recorded but the rollout driver failed ({why}); the observer keeps retrying"
            ),
            retry_after_secs: 1,
        }),
    }
}
