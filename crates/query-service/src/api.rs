//! Read API: list with filters and keyset pagination, one todo (optionally as
//! of a past time), and its history.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use contracts::{Priority, TodoEvent};
use serde::{Deserialize, Serialize};
use service_kit::ApiError;
use service_kit::auth::{Principal, roles};
use service_kit::extract::{ApiQuery, IdPath};
use todo_domain::Todo;
use todo_store::StoreError;
use todo_store::read::{self, CursorValue, ListFilter, Page, SortKey};
use uuid::Uuid;

use crate::AppState;

pub const MAX_LIMIT: i64 = 100;
pub const DEFAULT_LIMIT: i64 = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    completed: Option<bool>,
    /// Comma-separated; matches any.
    priority: Option<String>,
    /// Comma-separated; a todo must carry all of them.
    tag: Option<String>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the title.
    q: Option<String>,
    /// `created_at`, `updated_at`, `due_date`, `priority` or `title`; prefix `-` for descending.
    sort: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    /// Whose todos: the caller's by default; another user's needs the
    /// `support` role (or `admin`).
    owner: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    s: SortKey,
    d: bool,
    v: CursorValue,
    id: Uuid,
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(s: &str) -> Result<Cursor, ApiError> {
    let bad = || {
        ApiError::field(
            "cursor",
            "not a cursor issued by this API; start again without 'cursor'",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    // A forged cursor with a NUL would reach Postgres, which refuses it.
    match &cursor.v {
        CursorValue::Text(t) if t.contains('\0') => Err(bad()),
        _ => Ok(cursor),
    }
}

fn parse_sort(raw: Option<&str>) -> Result<(SortKey, bool), ApiError> {
    let raw = raw.unwrap_or("-created_at");
    let (desc, name) = match raw.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, raw),
    };
    let key = match name {
        "created_at" => SortKey::CreatedAt,
        "updated_at" => SortKey::UpdatedAt,
        "due_date" => SortKey::DueDate,
        "priority" => SortKey::Priority,
        "title" => SortKey::Title,
        _ => {
            return Err(ApiError::field(
                "sort",
                format!(
                    "unknown sort '{raw}'; use created_at, updated_at, due_date, priority or title, with '-' for descending"
                ),
            ));
        }
    };
    Ok((key, desc))
}

fn parse_tags(raw: &str) -> Result<Vec<String>, ApiError> {
    let tags: Vec<String> = raw.split(',').map(|t| t.trim().to_string()).collect();
    for t in &tags {
        let ok = !t.is_empty()
            && t.len() <= 32
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(ApiError::field(
                "tag",
                format!("'{t}' is not a tag (1 to 32 of a-z, 0-9, '-')"),
            ));
        }
    }
    if tags.len() > 10 {
        return Err(ApiError::field("tag", "at most 10 tags"));
    }
    Ok(tags)
}

#[derive(Serialize)]
pub struct ListResponse {
    items: Vec<Todo>,
    next_cursor: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ListResponse>, ApiError> {
    let owner = match p.owner.as_deref() {
        None => principal.subject.as_str(),
        Some(o) if o.is_empty() || o.chars().count() > 255 || o.chars().any(char::is_control) => {
            return Err(ApiError::field(
                "owner",
                "must be a user id of 1 to 255 printable characters",
            ));
        }
        Some(o) if o == principal.subject => o,
        Some(o) => {
            principal
                .require_role(roles::SUPPORT)
                .map_err(|_| {
                    ApiError::Forbidden(format!(
                        "listing another user's todos ('owner') needs the 'support' or 'admin' role; the token grants [{}]",
                        principal.roles.join(", ")
                    ))
                })?;
            o
        }
    };
    let (sort, descending) = parse_sort(p.sort.as_deref())?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => {
            let c = decode_cursor(c)?;
            if c.s != sort || c.d != descending {
                return Err(ApiError::field(
                    "cursor",
                    "was issued for a different sort; keep 'sort' unchanged while paging",
                ));
            }
            Some((c.v, c.id))
        }
    };
    let priorities = match p.priority.as_deref() {
        None => vec![],
        Some(raw) => raw
            .split(',')
            .map(|s| {
                Priority::parse(s.trim()).ok_or_else(|| {
                    ApiError::field(
                        "priority",
                        format!("'{s}' is not one of low, medium, high, urgent"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let tags = p
        .tag
        .as_deref()
        .map(parse_tags)
        .transpose()?
        .unwrap_or_default();
    if let Some(q) = &p.q {
        if q.chars().count() > 200 {
            return Err(ApiError::field("q", "at most 200 characters"));
        }
        // Titles hold none, and Postgres refuses a NUL in a query (a 500).
        if q.chars().any(char::is_control) {
            return Err(ApiError::field("q", "must not contain control characters"));
        }
    }
    if let (Some(b), Some(a)) = (p.due_before, p.due_after)
        && a >= b
    {
        return Err(ApiError::field(
            "due_after",
            "must be earlier than due_before",
        ));
    }
    let filter = ListFilter {
        completed: p.completed,
        priorities,
        tags,
        due_before: p.due_before,
        due_after: p.due_after,
        text: p.q,
    };
    let page = Page {
        sort,
        descending,
        after,
        limit,
    };
    let mut items = read::list(&app.pool, owner, &filter, &page)
        .await
        .map_err(|e| ApiError::database(e, StoreError::unavailable))?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|t| {
            encode_cursor(&Cursor {
                s: sort,
                d: descending,
                v: sort.value_of(t),
                id: t.id,
            })
        })
    } else {
        None
    };
    Ok(Json(ListResponse { items, next_cursor }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    as_of: Option<DateTime<Utc>>,
}

fn with_etag(todo: &Todo) -> Response {
    let mut resp = Json(todo).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", todo.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    ApiQuery(p): ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("todo {id} not found"));
    match p.as_of {
        None => {
            let todo = read::get(&app.pool, id)
                .await
                .map_err(|e| ApiError::database(e, StoreError::unavailable))?
                .ok_or_else(not_found)?;
            // Someone else's todo is "not found" for a plain user: a 403
            // would confirm that the id exists.
            if !principal.may_read(&todo.owner) {
                return Err(not_found());
            }
            Ok(with_etag(&todo))
        }
        Some(as_of) => {
            let events = readable_history(&app, &principal, id).await?;
            let state = todo_domain::fold(events.iter().filter(|e| e.occurred_at <= as_of));
            match state {
                Some(t) if !t.deleted => Ok(with_etag(&t)),
                Some(_) => Err(ApiError::NotFound(format!(
                    "todo {id} was deleted at {as_of}"
                ))),
                None => Err(ApiError::NotFound(format!(
                    "todo {id} did not exist at {as_of}"
                ))),
            }
        }
    }
}

async fn readable_history(
    app: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Vec<TodoEvent>, ApiError> {
    let events = read::history(&app.pool, id)
        .await
        .map_err(|e| ApiError::database(e, StoreError::unavailable))?;
    match events.first() {
        Some(first) if principal.may_read(&first.user_id) => Ok(events),
        _ => Err(ApiError::NotFound(format!("todo {id} not found"))),
    }
}

#[derive(Serialize)]
pub struct HistoryResponse {
    todo_id: Uuid,
    events: Vec<TodoEvent>,
}

pub async fn history(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
) -> Result<Json<HistoryResponse>, ApiError> {
    let events = readable_history(&app, &principal, id).await?;
    Ok(Json(HistoryResponse {
        todo_id: id,
        events,
    }))
}
