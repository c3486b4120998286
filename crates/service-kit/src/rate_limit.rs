//! The access guard in front of every `/v1` route: a per-client-address rate
//! limit, authentication (once per request), then a per-user rate limit.
//!
//! The limiter is GCRA (the generic cell rate algorithm, a token bucket that
//! stores one instant per key): `rps` is the sustained rate, `burst` how many
//! requests may arrive at once. Over the limit the answer is 429
//! problem+json with `Retry-After` (whole seconds, rounded up).
//!
//! State is per process: N replicas allow N times the configured rate. That
//! bounds abuse of one replica's CPU and database pool, which is what it is
//! for; a global quota belongs in the gateway.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderName;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::SharedAuthenticator;
use crate::problem::ApiError;

/// `rate_limit` table of a service config (env `<PREFIX>_RATE_LIMIT__PER_USER_RPS`, …).
/// A rate of 0 turns that limit off; both are off by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per authenticated subject.
    #[serde(default)]
    pub per_user_rps: f64,
    /// Requests a subject may send at once (default: `per_user_rps`, at least 1).
    #[serde(default)]
    pub per_user_burst: u32,
    /// Sustained requests per second per client address (IPv6 per /64),
    /// counted before authentication, so bad tokens are limited too.
    #[serde(default)]
    pub per_ip_rps: f64,
    #[serde(default)]
    pub per_ip_burst: u32,
    /// Take the client address from this header's last entry (e.g.
    /// `x-forwarded-for`) instead of the TCP peer. Only set it behind a proxy
    /// that overwrites or appends to that header; otherwise clients choose
    /// their own address.
    #[serde(default)]
    pub client_ip_header: Option<String>,
    /// Most keys tracked per limit. Idle keys are dropped when it fills; if
    /// it is still full, new keys are refused until some go idle.
    #[serde(default = "default_max_tracked_keys")]
    pub max_tracked_keys: usize,
}

fn default_max_tracked_keys() -> usize {
    100_000
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_user_rps: 0.0,
            per_user_burst: 0,
            per_ip_rps: 0.0,
            per_ip_burst: 0,
            client_ip_header: None,
            max_tracked_keys: default_max_tracked_keys(),
        }
    }
}

impl RateLimitConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        match self.problems().into_iter().next() {
            Some((key, message)) => anyhow::bail!("config key 'rate_limit.{key}' {message}"),
            None => Ok(()),
        }
    }

    /// Every problem as (key under `rate_limit`, message), for `--check-config`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("per_user_rps", self.per_user_rps),
            ("per_ip_rps", self.per_ip_rps),
        ] {
            if !v.is_finite() || !(0.0..=1e6).contains(&v) {
                out.push((key, format!("must be between 0 (off) and 1000000, got {v}")));
            }
        }
        if let Some(h) = &self.client_ip_header
            && HeaderName::try_from(h.as_str()).is_err()
        {
            out.push(("client_ip_header", format!("'{h}' is not a header name")));
        }
        if self.max_tracked_keys == 0 {
            out.push(("max_tracked_keys", "must be at least 1".to_string()));
        }
        out
    }
}

/// One GCRA limit over keys of type `K`.
pub struct Gcra<K> {
    /// Time one request "costs": 1 / rate.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: burst × interval.
    tolerance: Duration,
    max_keys: usize,
    tat: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq> Gcra<K> {
    /// `None` when `rps` is 0 (the limit is off).
    pub fn new(rps: f64, burst: u32, max_keys: usize) -> Option<Self> {
        if rps <= 0.0 || !rps.is_finite() {
            return None;
        }
        let burst = if burst == 0 {
            rps.ceil().max(1.0) as u32
        } else {
            burst
        };
        let interval = Duration::from_secs_f64(1.0 / rps);
        Some(Self {
            interval,
            tolerance: interval.saturating_mul(burst),
            max_keys: max_keys.max(1),
            tat: Mutex::new(HashMap::new()),
        })
    }

    /// Count one request for `key` at `now`; `Err(wait)` when it is over the
    /// limit and may be retried after `wait`.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.get(&key).copied().unwrap_or(now).max(now);
        let next = tat + self.interval;
        let horizon = now + self.tolerance;
        if next > horizon {
            return Err(next - horizon);
        }
        if map.len() >= self.max_keys && !map.contains_key(&key) {
            // A key whose arrival time has passed is as good as new: drop it.
            map.retain(|_, t| *t > now);
            if map.len() >= self.max_keys {
                return Err(self.interval.max(Duration::from_secs(1)));
            }
        }
        map.insert(key, next);
        Ok(())
    }
}

/// Authenticator and limits, the state of [`access_guard`].
#[derive(Clone)]
pub struct AccessGuard {
    auth: SharedAuthenticator,
    per_ip: Option<Arc<Gcra<IpAddr>>>,
    per_user: Option<Arc<Gcra<String>>>,
    client_ip_header: Option<HeaderName>,
}

impl AccessGuard {
    pub fn new(auth: SharedAuthenticator, config: &RateLimitConfig) -> anyhow::Result<Self> {
        config.check()?;
        let client_ip_header = config
            .client_ip_header
            .as_deref()
            .map(HeaderName::try_from)
            .transpose()?;
        Ok(Self {
            auth,
            per_ip: Gcra::new(
                config.per_ip_rps,
                config.per_ip_burst,
                config.max_tracked_keys,
            )
            .map(Arc::new),
            per_user: Gcra::new(
                config.per_user_rps,
                config.per_user_burst,
                config.max_tracked_keys,
            )
            .map(Arc::new),
            client_ip_header,
        })
    }

    pub fn authenticator(&self) -> SharedAuthenticator {
        self.auth.clone()
    }

    fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let from_header = self.client_ip_header.as_ref().and_then(|h| {
            let v = parts.headers.get_all(h).iter().next_back()?.to_str().ok()?;
            v.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        let ip = from_header.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })?;
        Some(match ip {
            // One IPv6 host usually owns a whole /64: limit the prefix.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
    }
}

fn too_many(what: &str, wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
    ApiError::TooManyRequests {
        detail: format!("rate limit for this {what} exceeded; retry after {secs}s"),
        retry_after_secs: secs,
    }
    .into_response()
}

/// Middleware (`from_fn_with_state(guard, access_guard)`) for routes that
/// need a caller: limits by address, authenticates, limits by subject, and
/// leaves the [`Principal`](crate::auth::Principal) in the request extensions
/// for the handler's extractor.
pub async fn access_guard(State(g): State<AccessGuard>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let now = Instant::now();
    if let Some(limit) = &g.per_ip
        && let Some(ip) = g.client_ip(&parts)
        && let Err(wait) = limit.check(ip, now)
    {
        return too_many("client address", wait);
    }
    let principal = match g.auth.authenticate(&parts).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(limit) = &g.per_user
        && let Err(wait) = limit.check(principal.subject.clone(), now)
    {
        return too_many("user", wait);
    }
    parts.extensions.insert(principal.clone());
    let mut resp = next.run(Request::from_parts(parts, body)).await;
    // For the audit trail outside this layer.
    resp.extensions_mut().insert(principal);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let g = Gcra::new(10.0, 3, 100).expect("on");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(g.check("a", t0).is_ok());
        }
        let wait = g.check("a", t0).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(100));
        assert!(g.check("b", t0).is_ok(), "other keys are unaffected");
        assert!(g.check("a", t0 + Duration::from_millis(100)).is_ok());
        assert!(g.check("a", t0 + Duration::from_millis(100)).is_err());
        assert!(Gcra::<&str>::new(0.0, 5, 10).is_none(), "0 is off");
    }

    #[test]
    fn a_full_table_drops_idle_keys_first() {
        let g = Gcra::new(1.0, 1, 2).expect("on");
        let t0 = Instant::now();
        assert!(g.check(1, t0).is_ok());
        assert!(g.check(2, t0).is_ok());
        assert!(g.check(3, t0).is_err(), "full, nobody idle");
        assert!(g.check(3, t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn config_errors_name_the_key() {
        let c = RateLimitConfig {
            per_ip_rps: -1.0,
            ..Default::default()
        };
        let err = c.check().expect_err("negative");
        assert!(err.to_string().contains("rate_limit.per_ip_rps"), "{err}");
    }
}
