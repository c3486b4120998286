//! HTTP handlers: parse, authenticate, then `execute` one command.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use contracts::{Priority, topics};
use serde::{Deserialize, Serialize};
use service_kit::auth::Principal;
use service_kit::extract::{ApiJson, IdPath};
use service_kit::{ApiError, FieldProblem};
use sha2::{Digest, Sha256};
use todo_domain::{Command, Context, CreateTodo, DomainError, UpdateTodo};
use todo_store::StoreError;
use todo_store::command::{self as store, IdempotencyRecord, NewEvent, Write};
use uuid::Uuid;

use crate::AppState;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "contracts::double_option::serialize",
        deserialize_with = "contracts::double_option::deserialize"
    )]
    pub due_date: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let fingerprint = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let cmd = Command::Create(CreateTodo {
        title: body.title,
        description: body.description,
        priority: body.priority,
        due_date: body.due_date,
        tags: body.tags,
    });
    execute(
        &app,
        &principal,
        &headers,
        None,
        cmd,
        ("POST", "/v1/todos", fingerprint),
    )
    .await
}

pub async fn update(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Response, ApiError> {
    let fingerprint = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let cmd = Command::Update(UpdateTodo {
        title: body.title,
        description: body.description,
        priority: body.priority,
        due_date: body.due_date,
        tags: body.tags,
    });
    execute(
        &app,
        &principal,
        &headers,
        Some(id),
        cmd,
        ("PATCH", "/v1/todos/{id}", fingerprint),
    )
    .await
}

pub async fn complete(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    execute(
        &app,
        &principal,
        &headers,
        Some(id),
        Command::Complete,
        ("POST", "/v1/todos/{id}/complete", vec![]),
    )
    .await
}

pub async fn reopen(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    execute(
        &app,
        &principal,
        &headers,
        Some(id),
        Command::Reopen,
        ("POST", "/v1/todos/{id}/reopen", vec![]),
    )
    .await
}

pub async fn delete(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    execute(
        &app,
        &principal,
        &headers,
        Some(id),
        Command::Delete,
        ("DELETE", "/v1/todos/{id}", vec![]),
    )
    .await
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(s.to_string()))
}

/// `If-Match: "3"` (also `W/"3"` or `3`) → expected stream version 3.
fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::field("If-Match", "must be ASCII"))?
        .trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    match s.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(ApiError::field(
            "If-Match",
            format!("expected an ETag like \"3\" (the todo's version), got '{s}'"),
        )),
    }
}

fn domain_error(e: DomainError) -> ApiError {
    match e {
        DomainError::Invalid(errors) => ApiError::Validation(
            errors
                .into_iter()
                .map(|f| FieldProblem::new(f.field, f.message))
                .collect(),
        ),
        DomainError::NotFound => ApiError::NotFound("todo not found".into()),
        DomainError::AlreadyExists => ApiError::Conflict("todo already exists".into()),
        DomainError::InvalidTransition(why) => ApiError::Conflict(why.into()),
    }
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(detail) => {
            tracing::warn!(detail, "postgres unavailable");
            ApiError::Unavailable {
                detail: "the database is unavailable; retry later".into(),
                retry_after_secs: 1,
            }
        }
        other => ApiError::Internal(anyhow::Error::new(other)),
    }
}

fn replay(rec: &IdempotencyRecord) -> Response {
    let mut resp =
        Response::builder().status(StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK));
    if !rec.body.is_empty() {
        resp = resp.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(etag) = &rec.etag {
        resp = resp.header(header::ETAG, etag);
    }
    if let Some(loc) = &rec.location {
        resp = resp.header(header::LOCATION, loc);
    }
    resp.header(IDEMPOTENT_REPLAYED, "true")
        .body(Body::from(rec.body.clone()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn check_replay(rec: &IdempotencyRecord, hash: &[u8]) -> Result<Response, ApiError> {
    if rec.request_hash == hash {
        Ok(replay(rec))
    } else {
        Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key".into(),
        ))
    }
}

const MAX_ATTEMPTS: usize = 3;

/// [`execute_once`] behind the Postgres circuit breaker: while it is open,
/// requests get 503 at once instead of each waiting for a pool timeout.
async fn execute(
    app: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: Option<Uuid>,
    cmd: Command,
    request: (&str, &str, Vec<u8>),
) -> Result<Response, ApiError> {
    // Dropped at the await (request timeout, client gone), the call counts
    // as a failure.
    app.pg_breaker
        .call(
            execute_once(app, principal, headers, id, cmd, request),
            |e| matches!(e, ApiError::Unavailable { .. }),
        )
        .await
        .map_err(|open| ApiError::Unavailable {
            detail: format!("the database is unavailable ({open}); retry later"),
            retry_after_secs: open.retry_after.as_secs().max(1) as u32,
        })?
}

async fn execute_once(
    app: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: Option<Uuid>,
    cmd: Command,
    (method, route, fingerprint): (&str, &str, Vec<u8>),
) -> Result<Response, ApiError> {
    let idem_key = idempotency_key(headers)?;
    let expected = expected_version(headers)?;
    // The request's span (a child of the caller's traceparent) is the parent
    // of everything downstream: relay, projection, event processor.
    let trace = telemetry::trace::context_of(
        &tracing::Span::current(),
        service_kit::trace::from_headers(headers).as_ref(),
    );
    let hash: Vec<u8> = {
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b" ");
        h.update(route.as_bytes());
        h.update(b" ");
        h.update(id.map(|i| i.to_string()).unwrap_or_default().as_bytes());
        h.update(b"\n");
        h.update(&fingerprint);
        h.finalize().to_vec()
    };
    if let Some(key) = &idem_key
        && let Some(rec) = store::find_idempotency(&app.pool, &principal.subject, key)
            .await
            .map_err(store_error)?
    {
        return check_replay(&rec, &hash);
    }
    let todo_id = id.unwrap_or_else(Uuid::now_v7);
    for attempt in 1..=MAX_ATTEMPTS {
        let history = if id.is_some() {
            store::load_stream(&app.pool, todo_id)
                .await
                .map_err(store_error)?
        } else {
            vec![]
        };
        let state = todo_domain::fold(&history);
        let current_version = state.as_ref().map_or(0, |t| t.version);
        if let (Some(expected), Some(t)) = (expected, &state)
            && expected != t.version
            && !t.deleted
            && t.owner == principal.subject
        {
            return Err(ApiError::Conflict(format!(
                "version conflict: If-Match expects version {expected}, the todo is at version {}",
                t.version
            )));
        }
        // Postgres keeps microseconds: truncate so that every copy of the event agrees.
        let ctx = Context {
            user_id: principal.subject.clone(),
            todo_id,
            now: Utc::now().trunc_subsecs(6),
        };
        let decided = todo_domain::handle(state.as_ref(), &cmd, &ctx).map_err(domain_error)?;
        let events =
            todo_domain::envelope(decided, &ctx, current_version, trace.clone(), Uuid::new_v4);
        let after = events.iter().fold(state, todo_domain::apply);
        let wrote_events = !events.is_empty();
        let mut new_events = Vec::with_capacity(events.len());
        for event in events {
            let record = contracts::schema::encode_todo_event(&event).map_err(|err| {
                ApiError::Internal(anyhow::anyhow!("event failed its own schema: {err}"))
            })?;
            new_events.push(NewEvent {
                event,
                topic: topics::TODO_EVENTS,
                record,
            });
        }
        let (status, body, etag, location) = match (&cmd, &after) {
            (Command::Delete, _) => (StatusCode::NO_CONTENT, vec![], None, None),
            (c, Some(t)) => {
                let body = serde_json::to_vec(t).map_err(anyhow::Error::from)?;
                let status = if matches!(c, Command::Create(_)) {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let location =
                    matches!(c, Command::Create(_)).then(|| format!("/v1/todos/{todo_id}"));
                (status, body, Some(format!("\"{}\"", t.version)), location)
            }
            (_, None) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "command produced no state"
                )));
            }
        };
        let record = IdempotencyRecord {
            request_hash: hash.clone(),
            status: status.as_u16(),
            body,
            etag,
            location,
        };
        // The answer is built now so that the record can move into the write.
        let mut resp = replay(&record);
        resp.headers_mut().remove(IDEMPOTENT_REPLAYED);
        let write = Write {
            events: new_events,
            idempotency: idem_key
                .clone()
                .map(|k| (principal.subject.clone(), k, record)),
        };
        let appended = match &app.committer {
            Some(c) => c.append(write).await,
            None => store::append(&app.pool, &write).await,
        };
        match appended {
            Ok(()) => {
                if wrote_events {
                    app.outbox_wake.committed();
                }
                match cmd {
                    Command::Create(_) => app.metrics.todos_created.inc(),
                    Command::Complete => app.metrics.todos_completed.inc(),
                    _ => 0,
                };
                return Ok(resp);
            }
            Err(StoreError::Conflict) if expected.is_none() && attempt < MAX_ATTEMPTS => continue,
            Err(StoreError::Conflict) => {
                return Err(ApiError::Conflict(
                    "version conflict: another change to this todo committed first; reload and retry".into(),
                ));
            }
            Err(StoreError::IdempotencyRace) => {
                let key = idem_key.as_deref().unwrap_or_default();
                return match store::find_idempotency(&app.pool, &principal.subject, key)
                    .await
                    .map_err(store_error)?
                {
                    Some(rec) => check_replay(&rec, &hash),
                    None => Err(ApiError::Conflict(
                        "a concurrent request with this Idempotency-Key failed; retry".into(),
                    )),
                };
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ApiError::Conflict(
        "version conflict persisted after retries; reload and retry".into(),
    ))
}

/// Fault injection (off unless configured): a share of requests fail with 500,
/// and every request can be slowed, so demos and canary tests can produce a
/// bad build on purpose.
/// Load shedding: with the outbox backlog past its bound (the broker is
/// not keeping up), refuse writes with 503 + `Retry-After` rather than let
/// the backlog, and the time to deliver each accepted write, grow without
/// limit.
pub async fn shed_load(
    State(app): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let bound = app.config.shed_outbox_backlog;
    let backlog = app
        .outbox_backlog
        .load(std::sync::atomic::Ordering::Relaxed);
    if bound > 0 && backlog >= bound {
        app.metrics.writes_shed.inc();
        return ApiError::Unavailable {
            detail: format!(
                "{backlog} events are waiting to be published (bound {bound}); writes resume when the broker catches up"
            ),
            retry_after_secs: 5,
        }
        .into_response();
    }
    next.run(req).await
}

pub async fn inject_faults(
    State(app): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if app.config.fault_latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(
            app.config.fault_latency_ms,
        ))
        .await;
    }
    if app.config.fault_panic_rate > 0.0 && rand::random::<f64>() < app.config.fault_panic_rate {
        // Deliberate: the fault flag exists to prove panics are contained.
        panic!("injected panic (fault_panic_rate)");
    }
    if app.config.fault_error_rate > 0.0 && rand::random::<f64>() < app.config.fault_error_rate {
        let mut resp = ApiError::Internal(anyhow::anyhow!("injected fault (fault_error_rate)"))
            .into_response();
        resp.headers_mut()
            .insert("x-injected-fault", HeaderValue::from_static("true"));
        return resp;
    }
    next.run(req).await
}
