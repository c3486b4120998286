//! Who is calling, and what they may do. The extractor asks an
//! [`Authenticator`] found in the request extensions (or takes the principal
//! the access guard already authenticated): OIDC bearer tokens verified
//! against the issuer's JWKS in production, the explicit dev mode locally.
//!
//! Roles (see `docs/security.md`): `user` acts on its own todos, `support`
//! reads any todo, `operator` drives canary actions, `admin` holds every role.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;

use crate::problem::ApiError;

mod oidc;

pub use oidc::{MAX_TOKEN_BYTES, OidcAuthenticator, OidcConfig};

pub const USER_ID_HEADER: &str = "x-user-id";

/// Role names as they appear in the token's roles claim.
pub mod roles {
    /// Acts on its own todos. Every authenticated caller is a user.
    pub const USER: &str = "user";
    /// Reads any user's todos (customer support); writes only its own.
    pub const SUPPORT: &str = "support";
    /// Mutating canary actions: promote, pause, resume, rollback.
    pub const OPERATOR: &str = "operator";
    /// Holds every role.
    pub const ADMIN: &str = "admin";
}

/// An authenticated caller: the token's subject and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
}

impl Principal {
    /// Whether the caller holds `role`; `admin` holds every role, and every
    /// authenticated caller is a `user`.
    pub fn has_role(&self, role: &str) -> bool {
        role == roles::USER || self.roles.iter().any(|r| r == role || r == roles::ADMIN)
    }

    /// 403 problem+json naming the missing role unless the caller has it.
    pub fn require_role(&self, role: &str) -> Result<(), ApiError> {
        if self.has_role(role) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "this needs the '{role}' role; the token grants [{}]",
            self.roles.join(", ")
        )))
    }

    /// `support` and `admin` may read todos of any user.
    pub fn can_read_any(&self) -> bool {
        self.has_role(roles::SUPPORT)
    }

    /// Whether this caller may read what `owner` owns.
    pub fn may_read(&self, owner: &str) -> bool {
        self.subject == owner || self.can_read_any()
    }
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
    /// Verify bearer tokens against an OIDC issuer's JWKS (`auth_oidc` table).
    Oidc,
}

/// Check that the auth settings of a service config fit together.
pub fn check_config(mode: AuthMode, oidc: Option<&OidcConfig>) -> anyhow::Result<()> {
    match (mode, oidc) {
        (AuthMode::Oidc, None) => anyhow::bail!(
            "auth_mode=oidc needs the 'auth_oidc' table: auth_oidc.issuer, auth_oidc.audience and auth_oidc.jwks_url (env <PREFIX>_AUTH_OIDC__ISSUER, …)"
        ),
        (AuthMode::Oidc, Some(c)) => c.check().map_err(anyhow::Error::msg),
        _ => Ok(()),
    }
}

/// Build the authenticator a config asks for. Dev mode warns: it trusts
/// whatever the caller claims to be.
pub fn authenticator(
    mode: AuthMode,
    oidc: Option<&OidcConfig>,
) -> anyhow::Result<SharedAuthenticator> {
    check_config(mode, oidc)?;
    Ok(match (mode, oidc) {
        (AuthMode::Oidc, Some(c)) => {
            tracing::info!(issuer = %c.issuer, audience = %c.audience, jwks_url = %c.jwks_url, "auth_mode=oidc");
            Arc::new(OidcAuthenticator::new(c.clone())?)
        }
        (AuthMode::Dev, _) => {
            tracing::warn!(
                "auth_mode=dev: callers are trusted by X-User-Id or unsigned tokens; never use in production"
            );
            Arc::new(DevAuthenticator)
        }
        _ => Arc::new(Disabled),
    })
}

/// The token of `Authorization: Bearer <token>`, `None` without the header.
pub(crate) fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(auth) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let auth = auth
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization is not ASCII".into()))?;
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("Authorization must be 'Bearer <token>'".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "Authorization must be 'Bearer <token>'".into(),
        ));
    }
    Ok(Some(token.trim()))
}

struct Disabled;

impl Authenticator for Disabled {
    fn authenticate<'a>(&'a self, _parts: &'a Parts) -> AuthFuture<'a> {
        Box::pin(async {
            Err(ApiError::Unauthorized(
                "authentication is disabled on this server (set auth_mode=oidc, or auth_mode=dev for local use)"
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
            if let Some(token) = bearer_token(parts)? {
                return subject_from_unsigned_jwt(token);
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
        // Already authenticated by the access guard (rate limiting needs the
        // subject before the handler runs): verify a token once per request.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
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

    #[test]
    fn oidc_mode_without_its_table_is_a_config_error() {
        let err = check_config(AuthMode::Oidc, None).expect_err("needs auth_oidc");
        assert!(err.to_string().contains("auth_oidc.issuer"), "{err}");
        assert!(check_config(AuthMode::Dev, None).is_ok());
    }

    #[test]
    fn roles_admin_holds_all_and_everyone_is_a_user() {
        let p = |roles: &[&str]| Principal {
            subject: "a".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        };
        assert!(p(&[]).has_role(roles::USER));
        assert!(!p(&[]).can_read_any());
        assert!(p(&["support"]).can_read_any());
        assert!(!p(&["support"]).has_role(roles::OPERATOR));
        assert!(p(&["admin"]).has_role(roles::OPERATOR));
        assert!(p(&["admin"]).can_read_any());
        assert!(p(&[]).may_read("a") && !p(&[]).may_read("b"));
        let err = p(&["user"]).require_role(roles::OPERATOR).expect_err("403");
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(err.to_string().contains("'operator'"), "{err}");
    }
}
