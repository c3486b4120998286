//! The blue-green load hook: synthetic traffic to green's preview route
//! while it is analysed (green takes no user traffic, so without it there
//! would be nothing to compare with blue's live requests).
//!
//! The request mix is `todoctl load`'s (create, update, complete, read), at
//! a fixed rate, for `duration_secs` from when the hook starts (a rollout's
//! start, or an observer restart during its analysis). The kinds follow
//! each other in a fixed, interleaved order rather than at random, so a
//! short analysis still sees the whole mix. The hook stops when its
//! [`LoadHookGuard`] is dropped: the rollout finished, or was replaced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use canary::LoadHook;
use tokio_util::sync::CancellationToken;

/// Stops the hook's traffic when dropped.
pub(super) struct LoadHookGuard {
    stop: CancellationToken,
}

impl Drop for LoadHookGuard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The kind of the `i`-th request for `mix` (create, update, complete,
/// read): a smooth weighted round robin over the shares.
fn kind(mix: &[u32; 4], i: u64) -> usize {
    let total: u64 = mix.iter().map(|&m| u64::from(m)).sum();
    if total == 0 {
        return 0;
    }
    // The request's position in one round of `total`, spread with a stride
    // coprime to `total` so kinds interleave.
    let mut stride = total / 2 + 1;
    while gcd(stride, total) != 1 {
        stride += 1;
    }
    let mut p = (i.wrapping_mul(stride)) % total;
    for (k, &m) in mix.iter().enumerate() {
        if p < u64::from(m) {
            return k;
        }
        p -= u64::from(m);
    }
    0
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Start sending `hook`'s traffic; it runs until the guard is dropped or
/// `duration_secs` has passed.
pub(super) fn start(rollout: &str, hook: &LoadHook) -> LoadHookGuard {
    let stop = CancellationToken::new();
    let sent = Arc::new(AtomicU64::new(0));
    let guard = LoadHookGuard { stop: stop.clone() };
    let hook = hook.clone();
    let rollout = rollout.to_string();
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(canary = %rollout, error = %e, "load hook: no HTTP client");
                return;
            }
        };
        tracing::info!(canary = %rollout, url = %hook.url, rate = hook.rate, duration_secs = hook.duration_secs, "load hook started");
        let ids: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let mut mix = hook.mix;
        if hook.query_url.is_none() {
            mix[3] = 0; // reads go to the query API; none without its URL
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / hook.rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let started = Instant::now();
        let mut i = 0u64;
        while started.elapsed() < Duration::from_secs(hook.duration_secs) {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            i += 1;
            let known = ids
                .lock()
                .ok()
                .and_then(|v| (!v.is_empty()).then(|| v[(i as usize) % v.len()].clone()));
            let base = hook.url.trim_end_matches('/');
            let user = format!("preview-load-{}", i % 10);
            let req = match (kind(&mix, i), known) {
                (1, Some(id)) => http
                    .patch(format!("{base}/v1/todos/{id}"))
                    .json(&serde_json::json!({"title": format!("preview edit {i}")})),
                (2, Some(id)) => http.post(format!("{base}/v1/todos/{id}/complete")),
                (3, Some(id)) => match &hook.query_url {
                    Some(q) => http.get(format!("{}/v1/todos/{id}", q.trim_end_matches('/'))),
                    None => continue,
                },
                _ => http
                    .post(format!("{base}/v1/todos"))
                    .json(&serde_json::json!({
                        "title": format!("preview load {i}"),
                        "tags": ["load", "preview"],
                    })),
            };
            let (ids, sent) = (ids.clone(), sent.clone());
            let req = req.header("x-user-id", user);
            // The todo ids of creates are remembered for updates, completes
            // and reads (at most 1,000: the mix needs some, not all).
            tokio::spawn(async move {
                if let Ok(r) = req.send().await
                    && r.status().as_u16() == 201
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && let (Some(id), Ok(mut ids)) = (v["id"].as_str(), ids.lock())
                    && ids.len() < 1_000
                {
                    ids.push(id.to_string());
                }
                sent.fetch_add(1, Ordering::Relaxed);
            });
        }
        tracing::info!(canary = %rollout, sent = sent.load(Ordering::Relaxed), "load hook stopped");
    });
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_kept_and_interleaved() {
        let mix = [40, 25, 15, 20];
        let mut counts = [0u32; 4];
        let first: Vec<usize> = (0..8).map(|i| kind(&mix, i)).collect();
        for i in 0..100 {
            counts[kind(&mix, i)] += 1;
        }
        assert_eq!(counts, mix);
        // Interleaved: not a run of 40 creates first.
        assert!(first.iter().any(|&k| k != 0), "{first:?}");
        assert_eq!((0..10).map(|i| kind(&[1, 0, 0, 0], i)).sum::<usize>(), 0);
    }
}
