//! A steady mixed load whose clients misbehave the way real ones do: they
//! give up after 50 ms to 5 s, hang up in the middle of a request, and
//! retry with the same Idempotency-Key. Every logical write is kept in a
//! ledger so that nothing accepted can go missing unnoticed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::platform::Transitions;
use crate::schedule::Rng;

/// What became of one logical write (one Idempotency-Key).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 201 with this todo id.
    Accepted(String),
    /// No definite answer yet (timeout, hang-up, 503): retried later with
    /// the same key.
    Pending,
    /// A definite refusal (4xx).
    Refused(u16),
}

#[derive(Debug, Clone)]
pub struct Write {
    pub user: String,
    pub body: serde_json::Value,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub writes: HashMap<String, Write>,
    /// Every answer by status (0: no answer: timeout or hang-up).
    pub statuses: BTreeMap<u16, u64>,
    pub violations: Vec<String>,
    /// Readiness samples taken away from fault transitions: (ready, write ok).
    pub readiness_samples: u64,
}

pub type Shared = Arc<Mutex<Ledger>>;

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// Send one attempt of the write `key`; record what came back.
pub async fn attempt(
    http: &reqwest::Client,
    command: &str,
    ledger: &Shared,
    key: &str,
    timeout: Duration,
) -> Option<u16> {
    let (user, body) = {
        let l = lock(ledger);
        let w = l.writes.get(key)?;
        (w.user.clone(), w.body.clone())
    };
    let resp = http
        .post(format!("{command}/v1/todos"))
        .header("x-user-id", &user)
        .header("idempotency-key", key)
        .json(&body)
        .timeout(timeout)
        .send()
        .await;
    let (status, id, detail) = match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = tokio::time::timeout(timeout, r.text())
                .await
                .ok()
                .and_then(Result::ok);
            match text {
                Some(t) => {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    (status, v["id"].as_str().map(str::to_string), t)
                }
                None => (0, None, String::new()),
            }
        }
        Err(_) => (0, None, String::new()),
    };
    let mut l = lock(ledger);
    *l.statuses.entry(status).or_default() += 1;
    let previous = l.writes.get(key).map(|w| w.outcome.clone());
    let next = match (status, id) {
        (201, Some(id)) => {
            if let Some(Outcome::Accepted(before)) = &previous
                && *before != id
            {
                l.violations.push(format!(
                    "(b) key {key}: a retry answered 201 with todo {id}, an earlier answer said {before}"
                ));
            }
            Outcome::Accepted(id)
        }
        (201, None) => {
            l.violations
                .push(format!("key {key}: 201 without an id: {detail}"));
            Outcome::Pending
        }
        (500..=502 | 504..=599, _) => {
            l.violations
                .push(format!("key {key}: {status} answered: {detail}"));
            Outcome::Pending
        }
        (400..=499, _) if status != 408 && status != 429 => Outcome::Refused(status),
        _ => Outcome::Pending,
    };
    // An accepted write stays accepted whatever a later attempt says.
    let keep_accepted =
        matches!(previous, Some(Outcome::Accepted(_))) && !matches!(next, Outcome::Accepted(_));
    if !keep_accepted && let Some(w) = l.writes.get_mut(key) {
        w.outcome = next;
    }
    Some(status)
}

/// Register a new logical write and return its key.
pub fn new_write(ledger: &Shared, user: &str, key: String, title: String) -> String {
    lock(ledger).writes.insert(
        key.clone(),
        Write {
            user: user.to_string(),
            body: json!({ "title": title, "tags": ["chaos"] }),
            outcome: Outcome::Pending,
        },
    );
    key
}

pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    pub ledger: Shared,
}

pub struct Endpoints {
    pub command: String,
    pub query: String,
}

impl Load {
    /// `workers` clients with their own seeded behaviour, plus one readiness
    /// sampler; all write into one ledger.
    pub fn start(seed: u64, workers: usize, ep: Endpoints, transitions: Transitions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger: Shared = Arc::default();
        let http = reqwest::Client::new();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (stop, ledger, http) = (stop.clone(), ledger.clone(), http.clone());
            let (command, query) = (ep.command.clone(), ep.query.clone());
            handles.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ (0xC1A0_5000 + w as u64));
                let user = format!("chaos-{w}");
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if rng.chance(0.3) {
                        let r = http
                            .get(format!("{query}/v1/todos?limit=5"))
                            .header("x-user-id", &user)
                            .timeout(rng.log_ms(50, 5000))
                            .send()
                            .await;
                        if let Ok(r) = r
                            && r.status().is_server_error()
                            && r.status() != 503
                        {
                            let s = r.status().as_u16();
                            let mut l = lock(&ledger);
                            l.violations
                                .push(format!("query service answered {s} to a list"));
                        }
                        continue;
                    }
                    let key = new_write(
                        &ledger,
                        &user,
                        format!("chaos-{seed}-{w}-{i}"),
                        format!("w{w} #{i}"),
                    );
                    for _try in 0..4 {
                        // One request in ten hangs up mid-request.
                        let timeout = if rng.chance(0.1) {
                            rng.ms(5, 50)
                        } else {
                            rng.log_ms(50, 5000)
                        };
                        let status = attempt(&http, &command, &ledger, &key, timeout).await;
                        let settled = matches!(
                            lock(&ledger).writes.get(&key).map(|w| &w.outcome),
                            Some(Outcome::Accepted(_) | Outcome::Refused(_))
                        );
                        if settled || stop.load(Ordering::Relaxed) || !rng.chance(0.6) {
                            break;
                        }
                        let wait = if status == Some(503) {
                            rng.ms(100, 1000)
                        } else {
                            rng.ms(10, 300)
                        };
                        tokio::time::sleep(wait).await;
                    }
                    tokio::time::sleep(rng.ms(0, 40)).await;
                }
            }));
        }
        // (c): /readyz says 200 only when a write would be accepted. Samples
        // taken across a fault's start or end prove nothing and are skipped.
        {
            let (stop, ledger, http, command) = (
                stop.clone(),
                ledger.clone(),
                http.clone(),
                ep.command.clone(),
            );
            handles.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let t0 = Instant::now();
                    let ready = http
                        .get(format!("{command}/readyz"))
                        .timeout(Duration::from_secs(3))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    if !ready {
                        continue;
                    }
                    let key = new_write(
                        &ledger,
                        "chaos-ready",
                        format!("chaos-ready-{seed}-{n}"),
                        format!("ready #{n}"),
                    );
                    let status =
                        attempt(&http, &command, &ledger, &key, Duration::from_secs(3)).await;
                    if transitions.any_between(t0, Instant::now(), Duration::from_millis(500)) {
                        continue;
                    }
                    let mut l = lock(&ledger);
                    l.readiness_samples += 1;
                    if status == Some(503) {
                        l.violations.push(format!(
                            "(c) /readyz answered 200 and a write just after it got 503 (key {key})"
                        ));
                    }
                }
            }));
        }
        Self {
            stop,
            workers: handles,
            ledger,
        }
    }

    /// Stop the clients (requests in flight finish or time out).
    pub async fn stop(self) -> Shared {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        self.ledger
    }
}
