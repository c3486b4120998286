//! OIDC bearer tokens: JWS compact serialization signed with RS256 or ES256,
//! verified against the issuer's JWKS, then `iss`, `aud`, `exp` and `nbf`.
//!
//! Signatures are checked with OpenSSL through the `openssl` crate, which is
//! already linked for native-tls: no second crypto stack in the build.
//!
//! What is deliberately refused: `alg: none`, every HMAC algorithm (a public
//! key must never become a shared secret), any algorithm other than RS256 and
//! ES256, a token whose `alg` does not match the key its `kid` names, `crit`
//! headers, RSA keys under 2048 bits. Keys come only from the configured JWKS
//! URL; `jku`, `x5u` and `jwk` headers in a token are ignored.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::request::Parts;
use base64::Engine;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use openssl::sign::Verifier;
use serde::Deserialize;

use super::{AuthFuture, Authenticator, Principal, valid_subject};
use crate::problem::ApiError;

/// Longest accepted bearer token. Real access tokens are a few KiB at most.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest JWKS document read from the issuer.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MIN_RSA_BITS: u32 = 2048;

/// `auth_oidc` table of a service config (env `<PREFIX>_AUTH_OIDC__ISSUER`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Expected `iss`, compared exactly.
    pub issuer: String,
    /// This API's identifier: `aud` must be it or contain it.
    pub audience: String,
    /// Where the issuer publishes its signing keys (`jwks_uri` in its
    /// discovery document).
    pub jwks_url: String,
    /// Claim holding the roles: an array of strings or a space-separated
    /// string. A dotted path reaches into objects (`realm_access.roles`).
    #[serde(default = "defaults::roles_claim")]
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "defaults::leeway_secs")]
    pub leeway_secs: u64,
    /// An unknown `kid` triggers a JWKS fetch at most this often, so a
    /// stream of forged kids cannot hammer the issuer.
    #[serde(default = "defaults::jwks_min_refresh_secs")]
    pub jwks_min_refresh_secs: u64,
    /// Keys older than this are re-fetched on the next request, so a key the
    /// issuer withdrew stops being accepted.
    #[serde(default = "defaults::jwks_max_age_secs")]
    pub jwks_max_age_secs: u64,
    /// Timeout of one JWKS fetch.
    #[serde(default = "defaults::jwks_timeout_ms")]
    pub jwks_timeout_ms: u64,
}

mod defaults {
    pub fn roles_claim() -> String {
        "roles".into()
    }
    pub fn leeway_secs() -> u64 {
        30
    }
    pub fn jwks_min_refresh_secs() -> u64 {
        30
    }
    pub fn jwks_max_age_secs() -> u64 {
        300
    }
    pub fn jwks_timeout_ms() -> u64 {
        5_000
    }
}

impl OidcConfig {
    /// Problems that would make every token fail, named by config key.
    pub fn check(&self) -> Result<(), String> {
        match self.problems().into_iter().next() {
            Some((key, message)) => Err(format!("config key 'auth_oidc.{key}': {message}")),
            None => Ok(()),
        }
    }

    /// Every problem as (key under `auth_oidc`, message), for `--check-config`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.issuer.trim().is_empty() {
            out.push(("issuer", "must not be empty".to_string()));
        }
        if self.audience.trim().is_empty() {
            out.push(("audience", "must not be empty".to_string()));
        }
        match reqwest::Url::parse(&self.jwks_url) {
            Err(e) => out.push(("jwks_url", format!("'{}' is not a URL: {e}", self.jwks_url))),
            Ok(url) if !matches!(url.scheme(), "https" | "http") => {
                out.push(("jwks_url", "must be an http(s) URL".to_string()))
            }
            Ok(_) => {}
        }
        if self.roles_claim.is_empty() {
            out.push(("roles_claim", "must not be empty".to_string()));
        }
        if self.leeway_secs > 600 {
            out.push(("leeway_secs", "must be at most 600".to_string()));
        }
        if self.jwks_timeout_ms == 0 {
            out.push(("jwks_timeout_ms", "must be at least 1".to_string()));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

enum KeyMaterial {
    Rsa(PKey<Public>),
    Ec(EcKey<Public>),
}

struct Key {
    kid: Option<String>,
    alg: Alg,
    material: KeyMaterial,
}

impl Key {
    fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa(pkey) => Verifier::new(MessageDigest::sha256(), pkey)
                .and_then(|mut v| {
                    v.update(signing_input)?;
                    v.verify(signature)
                })
                .unwrap_or(false),
            KeyMaterial::Ec(key) => {
                // JWS carries ES256 as r || s, 32 bytes each (RFC 7518 §3.4).
                if signature.len() != 64 {
                    return false;
                }
                let sig = BigNum::from_slice(&signature[..32])
                    .and_then(|r| Ok((r, BigNum::from_slice(&signature[32..])?)))
                    .and_then(|(r, s)| EcdsaSig::from_private_components(r, s));
                let digest = openssl::sha::sha256(signing_input);
                sig.and_then(|sig| sig.verify(&digest, key))
                    .unwrap_or(false)
            }
        }
    }
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "not base64url".to_string())
}

fn parse_jwk(jwk: Jwk) -> Result<Key, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!(
            "use '{}' is not 'sig'",
            jwk.use_.unwrap_or_default()
        ));
    }
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| format!("no '{name}'"));
    let (alg, material) = match jwk.kty.as_str() {
        "RSA" => {
            let n = BigNum::from_slice(&b64(&need(jwk.n, "n")?)?).map_err(|e| e.to_string())?;
            let e = BigNum::from_slice(&b64(&need(jwk.e, "e")?)?).map_err(|e| e.to_string())?;
            let rsa = Rsa::from_public_components(n, e).map_err(|e| e.to_string())?;
            if rsa.size() * 8 < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {} bits is below {MIN_RSA_BITS}",
                    rsa.size() * 8
                ));
            }
            let pkey = PKey::from_rsa(rsa).map_err(|e| e.to_string())?;
            (Alg::Rs256, KeyMaterial::Rsa(pkey))
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(format!("curve {:?} is not supported (P-256 only)", jwk.crv));
            }
            let x = b64(&need(jwk.x, "x")?)?;
            let y = b64(&need(jwk.y, "y")?)?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            let group =
                EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| e.to_string())?;
            let x = BigNum::from_slice(&x).map_err(|e| e.to_string())?;
            let y = BigNum::from_slice(&y).map_err(|e| e.to_string())?;
            // Fails for a point that is not on the curve.
            let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y)
                .map_err(|e| format!("not a valid P-256 point: {e}"))?;
            (Alg::Es256, KeyMaterial::Ec(key))
        }
        other => return Err(format!("kty '{other}' is not supported")),
    };
    if let Some(declared) = jwk.alg.as_deref()
        && declared != alg.name()
    {
        return Err(format!(
            "declares alg '{declared}', only {} is supported for this key type",
            alg.name()
        ));
    }
    Ok(Key {
        kid: jwk.kid,
        alg,
        material,
    })
}

/// Parse a JWKS document. Keys we cannot use are skipped (and logged): an
/// issuer may publish encryption keys or other algorithms next to ours.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<serde_json::Value>,
    }
    let set: Jwks =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for (i, raw) in set.keys.into_iter().enumerate() {
        let parsed = serde_json::from_value::<Jwk>(raw)
            .map_err(|e| e.to_string())
            .and_then(parse_jwk);
        match parsed {
            Ok(k) => keys.push(k),
            Err(why) => tracing::warn!(index = i, why, "skipping a JWKS key"),
        }
    }
    Ok(keys)
}

struct KeyCache {
    keys: Vec<Arc<Key>>,
    loaded_at: Option<Instant>,
}

/// Verifies OIDC access tokens against the issuer's published keys.
pub struct OidcAuthenticator {
    config: OidcConfig,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    /// When the last fetch was attempted; held across the fetch so that
    /// concurrent misses wait for one fetch instead of starting their own.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// A decoded token whose signature has not been checked yet.
struct Unverified<'a> {
    alg: Alg,
    kid: Option<String>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
    claims: serde_json::Map<String, serde_json::Value>,
}

fn unauthorized(why: impl std::fmt::Display) -> ApiError {
    ApiError::Unauthorized(format!("bearer token: {why}"))
}

fn decode(token: &str) -> Result<Unverified<'_>, ApiError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthorized(format!("longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthorized(
            "not a signed JWT (expected header.payload.signature)",
        ));
    };
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
        crit: Option<serde_json::Value>,
    }
    let header: Header =
        serde_json::from_slice(&b64(h).map_err(|why| unauthorized(format!("header is {why}")))?)
            .map_err(|e| unauthorized(format!("header is not a JOSE header: {e}")))?;
    let alg = match header.alg.as_str() {
        "RS256" => Alg::Rs256,
        "ES256" => Alg::Es256,
        "none" | "None" | "NONE" => {
            return Err(unauthorized("alg 'none' (unsigned) is not accepted"));
        }
        a if a.starts_with("HS") => {
            return Err(unauthorized(format!(
                "alg '{a}' (a shared secret) is not accepted; use RS256 or ES256"
            )));
        }
        a => {
            return Err(unauthorized(format!(
                "alg '{a}' is not supported; use RS256 or ES256"
            )));
        }
    };
    if header.crit.is_some() {
        return Err(unauthorized(
            "header has 'crit' extensions, none are supported",
        ));
    }
    let signature = b64(s).map_err(|why| unauthorized(format!("signature is {why}")))?;
    let claims = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(
        &b64(p).map_err(|why| unauthorized(format!("payload is {why}")))?,
    )
    .map_err(|_| unauthorized("payload is not a JSON object"))?;
    Ok(Unverified {
        alg,
        kid: header.kid,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
        claims,
    })
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn numeric_claim(
    claims: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<f64>, ApiError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| unauthorized(format!("claim '{name}' is not a NumericDate"))),
    }
}

fn roles_at(claims: &serde_json::Map<String, serde_json::Value>, path: &str) -> Vec<String> {
    let mut segments = path.split('.');
    let mut cur = segments.next().and_then(|first| claims.get(first));
    for seg in segments {
        cur = cur.and_then(|v| v.get(seg));
    }
    match cur {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => vec![],
    }
}

impl OidcAuthenticator {
    pub fn new(config: OidcConfig) -> anyhow::Result<Self> {
        config.check().map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.jwks_timeout_ms))
            .build()?;
        Ok(Self {
            config,
            http,
            cache: RwLock::new(KeyCache {
                keys: vec![],
                loaded_at: None,
            }),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    fn cached(&self) -> (Vec<Arc<Key>>, Option<Instant>) {
        let c = self.cache.read().unwrap_or_else(|p| p.into_inner());
        (c.keys.clone(), c.loaded_at)
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let resp = self
            .http
            .get(&self.config.jwks_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
        }
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
        }
        parse_jwks(&bytes)
    }

    /// Fetch the JWKS unless a fetch was attempted within
    /// `jwks_min_refresh_secs`. Returns after any fetch in progress finished.
    async fn refresh(&self) {
        let mut last = self.last_fetch.lock().await;
        let min = Duration::from_secs(self.config.jwks_min_refresh_secs);
        if last.is_some_and(|t| t.elapsed() < min) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %self.config.jwks_url, "loaded JWKS");
                let mut c = self.cache.write().unwrap_or_else(|p| p.into_inner());
                c.keys = keys.into_iter().map(Arc::new).collect();
                c.loaded_at = Some(Instant::now());
            }
            Err(why) => {
                tracing::warn!(why, url = %self.config.jwks_url, "fetching JWKS failed; keeping the keys we had");
            }
        }
    }

    /// The key a token names, re-fetching the JWKS when the `kid` is unknown
    /// or the cache is older than `jwks_max_age_secs`.
    async fn key_for(&self, kid: Option<&str>, alg: Alg) -> Result<Arc<Key>, ApiError> {
        let pick = |keys: &[Arc<Key>]| -> Option<Arc<Key>> {
            match kid {
                Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
                None => {
                    // No kid: only unambiguous when one key fits the alg.
                    let mut fit = keys.iter().filter(|k| k.alg == alg);
                    match (fit.next(), fit.next()) {
                        (Some(k), None) => Some(k.clone()),
                        _ => None,
                    }
                }
            }
        };
        let (keys, loaded_at) = self.cached();
        let max_age = Duration::from_secs(self.config.jwks_max_age_secs);
        let fresh = loaded_at.is_some_and(|t| t.elapsed() < max_age);
        let mut found = pick(&keys);
        if found.is_none() || !fresh {
            self.refresh().await;
            let (keys, loaded_at) = self.cached();
            if loaded_at.is_none() {
                return Err(ApiError::Unavailable {
                    detail:
                        "the identity provider's signing keys could not be fetched; retry later"
                            .into(),
                    retry_after_secs: self.config.jwks_min_refresh_secs.clamp(1, 60) as u32,
                });
            }
            found = pick(&keys);
        }
        let key = found.ok_or_else(|| match kid {
            Some(kid) => unauthorized(format!("kid '{kid}' is not a signing key of the issuer")),
            None => unauthorized("no 'kid' header and the issuer has more than one key"),
        })?;
        if key.alg != alg {
            return Err(unauthorized(format!(
                "alg '{}' does not match the {} key '{}'",
                alg.name(),
                key.alg.name(),
                key.kid.as_deref().unwrap_or("")
            )));
        }
        Ok(key)
    }

    async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let t = decode(token)?;
        let key = self.key_for(t.kid.as_deref(), t.alg).await?;
        if !key.verify(t.signing_input, &t.signature) {
            return Err(unauthorized("signature does not verify"));
        }
        self.check_claims(&t.claims, now_secs())
    }

    fn check_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: f64,
    ) -> Result<Principal, ApiError> {
        let leeway = self.config.leeway_secs as f64;
        match claims.get("iss").and_then(|v| v.as_str()) {
            Some(iss) if iss == self.config.issuer => {}
            Some(iss) => {
                return Err(unauthorized(format!(
                    "issuer '{iss}' is not the configured issuer"
                )));
            }
            None => return Err(unauthorized("no 'iss' claim")),
        }
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == self.config.audience,
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .any(|v| v.as_str() == Some(self.config.audience.as_str())),
            _ => return Err(unauthorized("no 'aud' claim")),
        };
        if !aud_ok {
            return Err(unauthorized(format!(
                "audience does not include '{}'",
                self.config.audience
            )));
        }
        let exp = numeric_claim(claims, "exp")?.ok_or_else(|| unauthorized("no 'exp' claim"))?;
        if now > exp + leeway {
            return Err(unauthorized(format!(
                "expired {}s ago",
                (now - exp).round() as i64
            )));
        }
        if let Some(nbf) = numeric_claim(claims, "nbf")?
            && now + leeway < nbf
        {
            return Err(unauthorized(format!(
                "not valid for another {}s (nbf)",
                (nbf - now).round() as i64
            )));
        }
        let sub = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .ok_or_else(|| unauthorized("no 'sub' claim"))?;
        Ok(Principal {
            subject: valid_subject(sub)?,
            roles: roles_at(claims, &self.config.roles_claim),
        })
    }
}

impl Authenticator for OidcAuthenticator {
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        Box::pin(async move {
            let token = super::bearer_token(parts)?.ok_or_else(|| {
                ApiError::Unauthorized("send 'Authorization: Bearer <access token>'".into())
            })?;
            self.verify(token).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.test".into(),
            audience: "todo-api".into(),
            jwks_url: "http://127.0.0.1:9/jwks".into(),
            roles_claim: "realm_access.roles".into(),
            leeway_secs: 10,
            jwks_min_refresh_secs: 30,
            jwks_max_age_secs: 300,
            jwks_timeout_ms: 100,
        }
    }

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    #[test]
    fn refused_algorithms_never_reach_a_key() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for (alg, want) in [
            ("none", "alg 'none'"),
            ("HS256", "shared secret"),
            ("RS512", "not supported"),
        ] {
            let token = format!(
                "{}.{}.",
                enc(&format!(r#"{{"alg":"{alg}"}}"#)),
                enc(r#"{"sub":"a"}"#)
            );
            let err = decode(&token)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "{alg}: {err}");
        }
        assert!(decode("a.b").is_err());
        assert!(decode("a.b.c.d").is_err());
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let a = OidcAuthenticator::new(config()).expect("valid config");
        let ok = claims(serde_json::json!({
            "iss": "https://idp.test", "aud": ["other", "todo-api"], "sub": "alice",
            "exp": 1000, "nbf": 900, "realm_access": {"roles": ["support"]}
        }));
        let p = a.check_claims(&ok, 1005.0).expect("within leeway");
        assert_eq!(p.subject, "alice");
        assert_eq!(p.roles, ["support"]);
        assert!(a.check_claims(&ok, 1011.0).is_err(), "expired");
        assert!(a.check_claims(&ok, 880.0).is_err(), "not yet valid");
        let mut wrong = ok.clone();
        wrong.insert("aud".into(), "other".into());
        assert!(a.check_claims(&wrong, 950.0).is_err());
        let mut wrong = ok.clone();
        wrong.insert("iss".into(), "https://evil.test".into());
        assert!(a.check_claims(&wrong, 950.0).is_err());
        let mut wrong = ok;
        wrong.remove("exp");
        assert!(a.check_claims(&wrong, 950.0).is_err());
    }

    #[test]
    fn unusable_jwks_keys_are_skipped() {
        let keys = parse_jwks(
            br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},
                {"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
        )
        .expect("document parses");
        assert!(keys.is_empty());
        assert!(parse_jwks(b"[]").is_err());
    }
}
