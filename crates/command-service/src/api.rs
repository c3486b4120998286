//! HTTP handlers: parse and authenticate a request, turn it into a command
//! and its [`Metadata`], [`execute`](crate::application::Commands::execute)
//! it, and turn the [`Outcome`] into a response.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use chrono::{DateTime, Utc};
use contracts::Priority;
use serde::{Deserialize, Serialize};
use service_kit::auth::Principal;
use service_kit::extract::{ApiJson, IdPath};
use service_kit::{ApiError, FieldProblem};
use sha2::{Digest, Sha256};
use todo_domain::{Command, CreateTodo, DomainError, UpdateTodo};
use todo_store::StoreError;
use uuid::Uuid;

use crate::AppState;
use crate::application::{CommandError, Idempotency, Metadata, Outcome, Reply};

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

/// A body becomes the domain's input field by field: both bodies carry the
/// same five fields as the input they stand for.
macro_rules! body_into_input {
    ($body:ident => $input:ident) => {
        impl From<$body> for $input {
            fn from(body: $body) -> Self {
                $input {
                    title: body.title,
                    description: body.description,
                    priority: body.priority,
                    due_date: body.due_date,
                    tags: body.tags,
                }
            }
        }
    };
}

body_into_input!(CreateBody => CreateTodo);
body_into_input!(PatchBody => UpdateTodo);

pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let request = Request::new("POST", "/v1/todos", None, &body)?;
    let command = Command::Create(body.into());
    execute(&app, &principal, &headers, request, command).await
}

pub async fn update(
    State(app): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Response, ApiError> {
    let request = Request::new("PATCH", "/v1/todos/{id}", Some(id), &body)?;
    let command = Command::Update(body.into());
    execute(&app, &principal, &headers, request, command).await
}

/// The commands without a body, each on its own route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Complete,
    Reopen,
    Delete,
}

impl Transition {
    fn command(self) -> Command {
        match self {
            Transition::Complete => Command::Complete,
            Transition::Reopen => Command::Reopen,
            Transition::Delete => Command::Delete,
        }
    }

    /// Method and route template, as the router serves them and as the
    /// idempotency fingerprint names them.
    fn request(self) -> (&'static str, &'static str) {
        match self {
            Transition::Complete => ("POST", "/v1/todos/{id}/complete"),
            Transition::Reopen => ("POST", "/v1/todos/{id}/reopen"),
            Transition::Delete => ("DELETE", "/v1/todos/{id}"),
        }
    }
}

/// The handler of `transition`, on the method of its route.
pub fn transition(transition: Transition) -> MethodRouter<AppState> {
    let handler = move |State(app): State<AppState>,
                        principal: Principal,
                        IdPath(id): IdPath,
                        headers: HeaderMap| async move {
        let (method, route) = transition.request();
        let request = Request {
            method,
            route,
            id: Some(id),
            body: vec![],
        };
        execute(&app, &principal, &headers, request, transition.command()).await
    };
    match transition {
        Transition::Delete => axum::routing::delete(handler),
        Transition::Complete | Transition::Reopen => axum::routing::post(handler),
    }
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

/// A request as its idempotency key is bound to it: method, route template,
/// todo and body.
struct Request {
    method: &'static str,
    route: &'static str,
    id: Option<Uuid>,
    body: Vec<u8>,
}

impl Request {
    fn new(
        method: &'static str,
        route: &'static str,
        id: Option<Uuid>,
        body: &impl Serialize,
    ) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(body).map_err(anyhow::Error::from)?;
        Ok(Self {
            method,
            route,
            id,
            body,
        })
    }

    fn hash(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(self.method.as_bytes());
        h.update(b" ");
        h.update(self.route.as_bytes());
        h.update(b" ");
        h.update(
            self.id
                .map(|i| i.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(b"\n");
        h.update(&self.body);
        h.finalize().to_vec()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Refused(DomainError::Invalid(errors)) => ApiError::Validation(
                errors
                    .into_iter()
                    .map(|f| FieldProblem::new(f.field, f.message))
                    .collect(),
            ),
            CommandError::Refused(DomainError::NotFound) => {
                ApiError::NotFound("todo not found".into())
            }
            CommandError::Refused(DomainError::AlreadyExists) => {
                ApiError::Conflict("todo already exists".into())
            }
            CommandError::Refused(DomainError::InvalidTransition(why)) => {
                ApiError::Conflict(why.into())
            }
            e @ (CommandError::VersionMismatch { .. }
            | CommandError::ConcurrentChange
            | CommandError::KeyRaceLost) => ApiError::Conflict(e.to_string()),
            e @ CommandError::KeyReused => ApiError::Unprocessable(e.to_string()),
            CommandError::Store(e) => ApiError::database(e, StoreError::unavailable),
            CommandError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// The response carrying `reply`; a replayed one says so in a header.
fn respond(reply: Reply, replayed: bool) -> Response {
    let mut resp =
        Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK));
    if !reply.body.is_empty() {
        resp = resp.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(etag) = &reply.etag {
        resp = resp.header(header::ETAG, etag);
    }
    if let Some(loc) = &reply.location {
        resp = resp.header(header::LOCATION, loc);
    }
    if replayed {
        resp = resp.header(IDEMPOTENT_REPLAYED, "true");
    }
    resp.body(Body::from(reply.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// One command behind the Postgres circuit breaker: while it is open,
/// requests get 503 at once instead of each waiting for a pool timeout.
async fn execute(
    app: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    request: Request,
    command: Command,
) -> Result<Response, ApiError> {
    let once = async {
        let idempotency = idempotency_key(headers)?.map(|key| Idempotency {
            key,
            request_hash: request.hash(),
        });
        let metadata = Metadata {
            user_id: principal.subject.clone(),
            expected_version: expected_version(headers)?,
            idempotency,
            // The request's span (a child of the caller's traceparent) is the
            // parent of everything downstream: relay, projection, event
            // processor.
            trace: telemetry::trace::context_of(
                &tracing::Span::current(),
                service_kit::trace::from_headers(headers).as_ref(),
            ),
        };
        Ok(
            match app
                .commands()
                .execute(request.id, command, metadata)
                .await?
            {
                Outcome::Committed { reply, .. } => respond(reply, false),
                Outcome::Replayed(reply) => respond(reply, true),
            },
        )
    };
    // Dropped at the await (request timeout, client gone), the call counts
    // as a failure.
    app.pg_breaker
        .call(once, |e| matches!(e, ApiError::Unavailable { .. }))
        .await
        .map_err(|open| ApiError::Unavailable {
            detail: format!("the database is unavailable ({open}); retry later"),
            retry_after_secs: open.retry_after.as_secs().max(1) as u32,
        })?
}

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

/// Fault injection (off unless configured): a share of requests fail with 500,
/// and every request can be slowed, so demos and canary tests can produce a
/// bad build on purpose.
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
