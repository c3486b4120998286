//! Extractors whose rejections are problem+json naming the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldProblem};

/// Largest accepted JSON body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// What the router reads at most (`DefaultBodyLimit`). Bodies between the two
/// limits are read to the end and then refused with a clean 413: closing a
/// connection with unread data makes the kernel reset it, and the client would
/// see a broken pipe instead of the problem response.
pub const DRAIN_BODY_BYTES: usize = 1024 * 1024;

fn path_of<E>(err: &serde_path_to_error::Error<E>) -> String {
    let p = err.path().to_string();
    // "." is the root; "?" means serde could not tell (a syntax error).
    if p == "." || p == "?" {
        String::new()
    } else {
        p.replace('.', "/")
    }
}

/// Turn a serde error at a path into a field problem. serde reports an unknown
/// field at the parent path, so the field name is pulled out of the message.
fn problem_from<E: std::fmt::Display>(err: serde_path_to_error::Error<E>) -> FieldProblem {
    let mut field = path_of(&err);
    let message = err.inner().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(name) = rest.split('`').next() {
            field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}/{name}")
            };
        }
    } else if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
    {
        field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}/{name}")
        };
    }
    // serde_json appends " at line L column C"; the field path says more.
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    FieldProblem::new(field, message)
}

/// JSON body: requires `Content-Type: application/json`, bounded size, strict
/// types (the target type should `deny_unknown_fields`).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json"
            && !(mime.starts_with("application/") && mime.ends_with("+json"))
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected Content-Type: application/json, got '{ct}'"
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "request body is larger than {MAX_BODY_BYTES} bytes"
                ))
            } else {
                ApiError::field("body", e.body_text())
            }
        })?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "request body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                bytes.len()
            )));
        }
        if bytes.is_empty() {
            return Err(ApiError::field(
                "body",
                "request body is empty; send a JSON object",
            ));
        }
        // serde would accept a struct written as a JSON array; we do not.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::field("body", "must be a JSON object"));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(de).map_err(|e| {
            let p = problem_from(e);
            let field = if p.field.is_empty() {
                "body".to_string()
            } else {
                p.field
            };
            ApiError::BadRequest {
                detail: format!("invalid '{field}': {}", p.message),
                errors: vec![FieldProblem::new(field, p.message)],
            }
        })?;
        Ok(ApiJson(value))
    }
}

/// Query string into a typed struct; unknown parameters are rejected when the
/// struct says `deny_unknown_fields`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let p = problem_from(e);
                ApiError::BadRequest {
                    detail: format!("invalid query parameter '{}': {}", p.field, p.message),
                    errors: vec![p],
                }
            })
    }
}

/// A `{id}` path segment that must be a UUID.
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::field("id", e.body_text()))?;
        uuid::Uuid::parse_str(&raw).map(IdPath).map_err(|_| {
            ApiError::field(
                "id",
                format!(
                    "'{}' is not a UUID",
                    raw.chars().take(64).collect::<String>()
                ),
            )
        })
    }
}
