//! OIDC bearer tokens and RBAC against the real services: the test is the
//! identity provider (it generates RSA and P-256 keys, serves their JWKS from
//! a local HTTP server and signs tokens), and the command and query services
//! run with `auth_mode=oidc` pointed at it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{Value, json};
use system_tests::{Platform, Reply, reply};

const ISSUER: &str = "https://idp.test/realms/todo";
const AUDIENCE: &str = "todo-api";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

enum Material {
    Rsa(PKey<Private>),
    Ec(EcKey<Private>),
}

/// A signing key of the test's identity provider.
struct TestKey {
    kid: String,
    material: Material,
}

impl TestKey {
    fn rsa(kid: &str) -> anyhow::Result<Self> {
        Ok(Self {
            kid: kid.into(),
            material: Material::Rsa(PKey::from_rsa(Rsa::generate(2048)?)?),
        })
    }

    fn ec(kid: &str) -> anyhow::Result<Self> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        Ok(Self {
            kid: kid.into(),
            material: Material::Ec(EcKey::generate(&group)?),
        })
    }

    fn alg(&self) -> &'static str {
        match self.material {
            Material::Rsa(_) => "RS256",
            Material::Ec(_) => "ES256",
        }
    }

    fn jwk(&self) -> anyhow::Result<Value> {
        Ok(match &self.material {
            Material::Rsa(k) => {
                let rsa = k.rsa()?;
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())})
            }
            Material::Ec(k) => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
                let mut ctx = BigNumContext::new()?;
                k.public_key()
                    .affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
                json!({"kty": "EC", "kid": self.kid, "use": "sig", "crv": "P-256",
                       "x": b64(&x.to_vec_padded(32)?), "y": b64(&y.to_vec_padded(32)?)})
            }
        })
    }

    /// A compact JWS over `claims` with this key, `header` merged over
    /// `{alg, kid, typ}`.
    fn sign_with(&self, header: Value, claims: &Value) -> anyhow::Result<String> {
        let mut h = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        if let (Some(h), Value::Object(extra)) = (h.as_object_mut(), header) {
            h.extend(extra);
        }
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&h)?),
            b64(&serde_json::to_vec(claims)?)
        );
        let sig = match &self.material {
            Material::Rsa(k) => {
                let mut s = Signer::new(MessageDigest::sha256(), k)?;
                s.update(input.as_bytes())?;
                s.sign_to_vec()?
            }
            Material::Ec(k) => {
                let sig = EcdsaSig::sign(&openssl::sha::sha256(input.as_bytes()), k)?;
                let mut raw = sig.r().to_vec_padded(32)?;
                raw.extend(sig.s().to_vec_padded(32)?);
                raw
            }
        };
        Ok(format!("{input}.{}", b64(&sig)))
    }

    fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign_with(json!({}), claims)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims of a valid token for `sub` with `roles`.
fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({"iss": ISSUER, "aud": [AUDIENCE, "account"], "sub": sub, "roles": roles,
           "iat": now(), "nbf": now() - 5, "exp": now() + 300})
}

/// The identity provider's JWKS endpoint: a real HTTP server whose key set
/// the test can change while the services run.
struct Jwks {
    keys: Arc<RwLock<Vec<Value>>>,
    url: String,
}

impl Jwks {
    async fn serve(initial: Vec<Value>) -> anyhow::Result<Self> {
        let keys = Arc::new(RwLock::new(initial));
        let shared = keys.clone();
        let app = axum::Router::new().route(
            "/protocol/openid-connect/certs",
            axum::routing::get(move || {
                let keys = shared.read().map(|k| k.clone()).unwrap_or_default();
                async move { axum::Json(json!({ "keys": keys })) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!(
            "http://{}/protocol/openid-connect/certs",
            listener.local_addr()?
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { keys, url })
    }

    fn add(&self, jwk: Value) {
        if let Ok(mut k) = self.keys.write() {
            k.push(jwk);
        }
    }
}

async fn send(req: reqwest::RequestBuilder, token: Option<&str>) -> anyhow::Result<Reply> {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    reply(req.send().await?).await
}

fn assert_problem(r: &Reply, status: u16, detail_has: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.raw);
    assert_eq!(r.content_type(), "application/problem+json", "{what}");
    assert_eq!(r.body["status"], status, "{what}: {}", r.raw);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(detail_has),
        "{what}: detail '{detail}' should mention '{detail_has}'"
    );
    if status == 401 {
        assert_eq!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{what}"
        );
    }
}

/// Start the platform with OIDC auth against `jwks`.
async fn platform(jwks: &Jwks) -> anyhow::Result<Platform> {
    let env = [
        ("AUTH_MODE", "oidc"),
        ("AUTH_OIDC__ISSUER", ISSUER),
        ("AUTH_OIDC__AUDIENCE", AUDIENCE),
        ("AUTH_OIDC__JWKS_URL", jwks.url.as_str()),
        ("AUTH_OIDC__LEEWAY_SECS", "5"),
        // Rotation is picked up within a second instead of the default 30.
        ("AUTH_OIDC__JWKS_MIN_REFRESH_SECS", "1"),
    ];
    Platform::start_with(&env, &env, false).await
}

#[tokio::test]
async fn tokens_are_verified_against_the_issuers_jwks() -> anyhow::Result<()> {
    let rsa = TestKey::rsa("rsa-1")?;
    let ec = TestKey::ec("ec-1")?;
    let jwks = Jwks::serve(vec![rsa.jwk()?, ec.jwk()?]).await?;
    let p = platform(&jwks).await?;
    let http = &p.api.http;
    let list = |base: &str| http.get(format!("{base}/v1/todos"));
    let create = |base: &str| {
        http.post(format!("{base}/v1/todos"))
            .json(&json!({"title": "signed"}))
    };

    // Valid tokens of both algorithms are accepted, by both services.
    let r = send(
        create(&p.api.command),
        Some(&rsa.sign(&claims("alice", &[]))?),
    )
    .await?;
    assert_eq!(r.status, 201, "RS256 token: {}", r.raw);
    assert_eq!(r.body["owner"], "alice");
    let r = send(list(&p.api.query), Some(&ec.sign(&claims("alice", &[]))?)).await?;
    assert_eq!(r.status, 200, "ES256 token: {}", r.raw);
    let r = send(
        create(&p.api.command),
        Some(&ec.sign(&claims("erin", &[]))?),
    )
    .await?;
    assert_eq!(
        r.status, 201,
        "ES256 token on the command service: {}",
        r.raw
    );

    // Every way a token can be wrong is a 401 problem naming why.
    let expired = {
        let mut c = claims("alice", &[]);
        c["exp"] = json!(now() - 120);
        c["nbf"] = json!(now() - 600);
        rsa.sign(&c)?
    };
    let not_yet = {
        let mut c = claims("alice", &[]);
        c["nbf"] = json!(now() + 600);
        rsa.sign(&c)?
    };
    let wrong_iss = {
        let mut c = claims("alice", &[]);
        c["iss"] = json!("https://evil.test/realms/todo");
        rsa.sign(&c)?
    };
    let wrong_aud = {
        let mut c = claims("alice", &[]);
        c["aud"] = json!("some-other-api");
        ec.sign(&c)?
    };
    // Signed by a key the issuer never published, under a published kid.
    let forged = TestKey::rsa("rsa-1")?.sign(&claims("alice", &["admin"]))?;
    let tampered = {
        let good = rsa.sign(&claims("alice", &[]))?;
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = b64(&serde_json::to_vec(&claims("alice", &["admin"]))?);
        parts.join(".")
    };
    let unknown_kid = TestKey::rsa("rsa-unknown")?.sign(&claims("alice", &[]))?;
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_vec(&claims("alice", &["admin"]))?)
    );
    // HS256 keyed with the RSA public key: the classic algorithm confusion.
    let hs256 = {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","kid":"rsa-1"}"#),
            b64(&serde_json::to_vec(&claims("alice", &[]))?)
        );
        let secret = PKey::hmac(&serde_json::to_vec(&rsa.jwk()?)?)?;
        let mut s = Signer::new(MessageDigest::sha256(), &secret)?;
        s.update(input.as_bytes())?;
        format!("{input}.{}", b64(&s.sign_to_vec()?))
    };
    // An ES256 signature presented under the RSA key's kid.
    let mismatch = ec.sign_with(json!({"kid": "rsa-1"}), &claims("alice", &[]))?;
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("missing token", None, "Bearer"),
        ("expired", Some(&expired), "expired"),
        ("not yet valid", Some(&not_yet), "nbf"),
        ("wrong issuer", Some(&wrong_iss), "issuer"),
        ("wrong audience", Some(&wrong_aud), "audience"),
        ("bad signature", Some(&forged), "signature"),
        ("tampered payload", Some(&tampered), "signature"),
        ("unknown kid", Some(&unknown_kid), "rsa-unknown"),
        ("alg none", Some(&alg_none), "none"),
        ("HS256", Some(&hs256), "HS256"),
        ("alg/key mismatch", Some(&mismatch), "does not match"),
        ("garbage", Some("not.a.jwt"), "bearer token"),
    ];
    for (what, token, why) in &cases {
        let r = send(list(&p.api.query), *token).await?;
        assert_problem(&r, 401, why, &format!("query, {what}"));
        let r = send(create(&p.api.command), *token).await?;
        assert_problem(&r, 401, why, &format!("command, {what}"));
    }
    // Dev-mode headers mean nothing under OIDC.
    let r = send(list(&p.api.query).header("x-user-id", "alice"), None).await?;
    assert_problem(&r, 401, "Bearer", "X-User-Id under oidc");

    // Key rotation: a key published after start is picked up on its first
    // use (the unknown kid triggers a JWKS refresh, rate-limited to 1/s here).
    let rotated = TestKey::ec("ec-2")?;
    let token = rotated.sign(&claims("alice", &[]))?;
    let r = send(list(&p.api.query), Some(&token)).await?;
    assert_problem(&r, 401, "ec-2", "not yet published");
    jwks.add(rotated.jwk()?);
    let start = std::time::Instant::now();
    loop {
        let r = send(list(&p.api.query), Some(&token)).await?;
        if r.status == 200 {
            break;
        }
        assert_problem(&r, 401, "ec-2", "before the refresh");
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the rotated key was not accepted within 10 s: {}",
            r.raw
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = send(create(&p.api.command), Some(&token)).await?;
    assert_eq!(
        r.status, 201,
        "rotated key on the command service: {}",
        r.raw
    );
    Ok(())
}

#[tokio::test]
async fn users_see_only_their_own_todos_and_roles_widen_reads() -> anyhow::Result<()> {
    let key = TestKey::rsa("rsa-1")?;
    let jwks = Jwks::serve(vec![key.jwk()?]).await?;
    let p = platform(&jwks).await?;
    let http = &p.api.http;
    let alice = key.sign(&claims("alice", &["user"]))?;
    let bob = key.sign(&claims("bob", &["user"]))?;
    let support = key.sign(&claims("sam", &["support"]))?;
    let admin = key.sign(&claims("ada", &["admin"]))?;

    let r = send(
        http.post(format!("{}/v1/todos", p.api.command))
            .json(&json!({"title": "alice's secret"})),
        Some(&alice),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let todo = format!("{}/v1/todos/{id}", p.api.query);

    // Readiness-style wait for the projection, as alice.
    let start = std::time::Instant::now();
    while send(http.get(&todo), Some(&alice)).await?.status != 200 {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "todo never projected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another user: 404 for reads and writes, exactly like a missing id.
    let missing = format!("{}/v1/todos/{}", p.api.query, uuid::Uuid::now_v7());
    let absent = send(http.get(&missing), Some(&bob)).await?;
    assert_problem(&absent, 404, "not found", "bob, a missing todo");
    let r = send(http.get(&todo), Some(&bob)).await?;
    assert_problem(&r, 404, "not found", "bob reads alice's todo");
    assert_eq!(
        r.body["title"], absent.body["title"],
        "same answer as for a missing todo"
    );
    let r = send(http.get(format!("{todo}/history")), Some(&bob)).await?;
    assert_problem(&r, 404, "not found", "bob reads alice's history");
    let r = send(
        http.get(format!("{todo}?as_of=2100-01-01T00:00:00Z")),
        Some(&bob),
    )
    .await?;
    assert_problem(&r, 404, "not found", "bob reads alice's todo as of");
    let r = send(http.get(format!("{}/v1/todos", p.api.query)), Some(&bob)).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"], json!([]), "bob's list is his own");
    let write = format!("{}/v1/todos/{id}", p.api.command);
    let r = send(
        http.patch(&write).json(&json!({"title": "bob was here"})),
        Some(&bob),
    )
    .await?;
    assert_problem(&r, 404, "not found", "bob patches alice's todo");
    let r = send(http.post(format!("{write}/complete")), Some(&bob)).await?;
    assert_problem(&r, 404, "not found", "bob completes alice's todo");
    let r = send(http.delete(&write), Some(&bob)).await?;
    assert_problem(&r, 404, "not found", "bob deletes alice's todo");

    // Role check: listing someone else's todos needs support.
    let others = format!("{}/v1/todos?owner=alice", p.api.query);
    let r = send(http.get(&others), Some(&bob)).await?;
    assert_problem(&r, 403, "'support'", "bob lists alice's todos");

    // Support and admin read any todo; support cannot write it.
    for (who, token) in [("support", &support), ("admin", &admin)] {
        let r = send(http.get(&todo), Some(token)).await?;
        assert_eq!(r.status, 200, "{who} reads: {}", r.raw);
        assert_eq!(r.body["title"], "alice's secret");
        let r = send(http.get(format!("{todo}/history")), Some(token)).await?;
        assert_eq!(r.status, 200, "{who} reads history: {}", r.raw);
        let r = send(http.get(&others), Some(token)).await?;
        assert_eq!(r.status, 200, "{who} lists: {}", r.raw);
        assert_eq!(r.body["items"][0]["id"], id.as_str());
    }
    let r = send(
        http.patch(&write)
            .json(&json!({"title": "support was here"})),
        Some(&support),
    )
    .await?;
    assert_problem(&r, 404, "not found", "support patches alice's todo");
    let r = send(http.get(&todo), Some(&alice)).await?;
    assert_eq!(r.body["title"], "alice's secret", "nobody else changed it");
    Ok(())
}
