//! `GET /v1/admin/audit`: the audit trail, for the `admin` role only.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Principal, roles};
use service_kit::extract::ApiQuery;
use service_kit::problem::ApiError;
use todo_store::audit::{AuditQuery, AuditRow};

use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this caller (token subject, or `anonymous`).
    actor: Option<String>,
    /// Only this service (`command-service`, `observer`, …).
    service: Option<String>,
    /// RFC 3339 lower bound (inclusive) and upper bound (exclusive) of `at`.
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// Page: the `next_before_id` of the previous page.
    before_id: Option<i64>,
    /// 1–500, default 100.
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct AuditPage {
    items: Vec<AuditRow>,
    /// Pass as `before_id` for the next (older) page; absent on the last.
    next_before_id: Option<i64>,
}

pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require_role(roles::ADMIN)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    if let (Some(s), Some(u)) = (p.since, p.until)
        && s >= u
    {
        return Err(ApiError::field("until", "must be after 'since'"));
    }
    if p.before_id.is_some_and(|b| b < 1) {
        return Err(ApiError::field("before_id", "must be a positive id"));
    }
    let items = todo_store::audit::query(
        &app.pool,
        &AuditQuery {
            actor: p.actor,
            service: p.service,
            since: p.since,
            until: p.until,
            before_id: p.before_id,
            limit,
        },
    )
    .await
    .map_err(|e| ApiError::database(e, todo_store::StoreError::unavailable))?;
    let next_before_id = (items.len() as i64 == limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage {
        items,
        next_before_id,
    }))
}
