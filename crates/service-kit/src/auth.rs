//! Who is calling. The extractor asks an [`Authenticator`] found in the request
//! extensions; today there is the explicit dev mode, and the OIDC verifier will
//! be another implementation of the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;

use crate::problem::ApiError;

pub const USER_ID_HEADER: &str = "x-user-id";

/// An authenticated caller: the token's subject and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Principal, ApiError>> + Send + 'a>>;

pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a>;
}

/// Installed as an extension on the router: `.layer(Extension(shared))`.
pub type SharedAuthenticator = Arc<dyn Authenticator>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Refuse every request: the safe default until OIDC is configured.
    #[default]
    Disabled,
    /// Accept `X-User-Id` or an unsigned bearer token's `sub`. Local use only.
    Dev,
}

pub fn authenticator(mode: AuthMode) -> SharedAuthenticator {
    match mode {
        AuthMode::Disabled => Arc::new(Disabled),
        AuthMode::Dev => {
            tracing::warn!(
                "auth_mode=dev: callers are trusted by X-User-Id or unsigned tokens; never use in production"
            );
            Arc::new(DevAuthenticator)
        }
    }
}

struct Disabled;

impl Authenticator for Disabled {
    fn authenticate<'a>(&'a self, _parts: &'a Parts) -> AuthFuture<'a> {
        Box::pin(async {
            Err(ApiError::Unauthorized(
                "no authenticator is configured on this server (set auth_mode=dev for local use)"
                    .into(),
            ))
        })
    }
}

/// Dev mode: trusts `X-User-Id`, or the `sub` of a bearer JWT whose signature
/// is NOT verified.
pub struct DevAuthenticator;

fn valid_subject(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_control()) {
        return Err(ApiError::Unauthorized(
            "user id must be 1 to 255 printable characters".into(),
        ));
    }
    Ok(s.to_string())
}

fn subject_from_unsigned_jwt(token: &str) -> Result<Principal, ApiError> {
    let bad = |why: &str| ApiError::Unauthorized(format!("bearer token: {why}"));
    let mut parts = token.split('.');
    let (_header, payload) = match (parts.next(), parts.next()) {
        (Some(h), Some(p)) => (h, p),
        _ => return Err(bad("not a JWT (expected header.payload.signature)")),
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("payload is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| bad("payload is not JSON"))?;
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .ok_or_else(|| bad("no 'sub' claim"))?;
    let roles = claims
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Principal {
        subject: valid_subject(sub)?,
        roles,
    })
}

impl Authenticator for DevAuthenticator {
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        Box::pin(async move {
            if let Some(auth) = parts.headers.get(axum::http::header::AUTHORIZATION) {
                let auth = auth
                    .to_str()
                    .map_err(|_| ApiError::Unauthorized("Authorization is not ASCII".into()))?;
                let token = auth.strip_prefix("Bearer ").ok_or_else(|| {
                    ApiError::Unauthorized("Authorization must be 'Bearer <token>'".into())
                })?;
                return subject_from_unsigned_jwt(token.trim());
            }
            if let Some(id) = parts.headers.get(USER_ID_HEADER) {
                let id = id
                    .to_str()
                    .map_err(|_| ApiError::Unauthorized("X-User-Id is not ASCII".into()))?;
                return Ok(Principal {
                    subject: valid_subject(id)?,
                    roles: vec![],
                });
            }
            Err(ApiError::Unauthorized(
                "send 'Authorization: Bearer <token>' (or X-User-Id in dev mode)".into(),
            ))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<SharedAuthenticator>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("no authenticator installed on the router"))
            })?;
        auth.authenticate(parts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_jwt_subject() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"alice","roles":["admin"]}"#);
        let p =
            subject_from_unsigned_jwt(&format!("eyJhbGciOiJub25lIn0.{payload}.")).expect("valid");
        assert_eq!(p.subject, "alice");
        assert_eq!(p.roles, ["admin"]);
        assert!(subject_from_unsigned_jwt("garbage").is_err());
    }
}
