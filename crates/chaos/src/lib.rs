//! Seeded fault schedules over the real processes of the platform.
//!
//! A seed draws a [`Schedule`] of faults (freezes, crashes and clean
//! restarts of PostgreSQL, the broker, each service and the observer) that
//! runs under a steady mixed load of misbehaving clients ([`load`]). With
//! every fault healed, the invariants of docs/reliability.md are checked:
//!
//! - (a) writes succeed again within 10 s of the last fault ending;
//! - (b) every 201 is in the event store exactly once and in the read model
//!   within 10 s, and the read model holds nothing that was not accepted;
//! - (c) `/readyz` answers 200 only when a write would be accepted;
//! - (d) no impossible state is left: breakers closed, in-flight gauges back
//!   to their idle value, no outbox row stuck;
//! - (e) the observer's lag and SLO views return to the truth.
//!
//! The same seed replays the same schedule (the load's timing is the
//! machine's, so a failure may need a few replays).

pub mod load;
pub mod platform;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub use schedule::{Fault, Schedule, Target};

use load::{Endpoints, Load, Outcome};
use platform::Platform;

/// Seeds CI runs on every change (each with a schedule of 20 s). Between
/// them every kind of fault hits every process, and seeds 7 and 33 include
/// the sequence that once disabled writes for good: the database stopped,
/// then back but frozen while the breaker's probe is in flight (asserted
/// below).
pub const CI_SEEDS: [u64; 3] = [7, 10, 33];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ci_seeds_walk_the_frozen_probe_sequence_and_hit_every_process() {
        let length = Duration::from_secs(20);
        let steps: Vec<Fault> = CI_SEEDS
            .iter()
            .flat_map(|s| Schedule::generate(*s, length).steps)
            .map(|s| s.fault)
            .collect();
        assert!(
            steps
                .iter()
                .any(|f| matches!(f, Fault::PgRestartFrozen { frozen, .. }
            if *frozen > Duration::from_millis(platform::BREAKER_OPEN_MS + 500)))
        );
        for t in Target::ALL {
            let hit = steps.iter().any(|f| match f {
                Fault::Freeze { target, .. }
                | Fault::Kill { target, .. }
                | Fault::Restart { target, .. } => *target == t,
                Fault::PgRestartFrozen { .. } => t == Target::Postgres,
            });
            assert!(hit, "no CI seed hits {}", t.name());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Length of the fault schedule.
    pub length: Duration,
    /// Concurrent clients.
    pub workers: usize,
}

#[derive(Debug)]
pub struct Report {
    pub schedule: Schedule,
    pub violations: Vec<String>,
    /// Accepted writes, answers by status, readiness samples.
    pub accepted: usize,
    pub statuses: BTreeMap<u16, u64>,
    pub readiness_samples: u64,
    pub recovered_in: Option<Duration>,
    pub log_dir: std::path::PathBuf,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.schedule)?;
        writeln!(
            f,
            "accepted writes: {}; answers by status: {:?}; readiness samples: {}; writes back after the last fault in {}",
            self.accepted,
            self.statuses,
            self.readiness_samples,
            self.recovered_in
                .map_or("never".to_string(), |d| format!("{:.2}s", d.as_secs_f64()))
        )?;
        if self.violations.is_empty() {
            writeln!(f, "all invariants hold")
        } else {
            writeln!(f, "{} invariant violation(s):", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  - {v}")?;
            }
            writeln!(f, "process logs: {}", self.log_dir.display())?;
            writeln!(f, "replay: todoctl chaos --seed {}", self.schedule.seed)
        }
    }
}

/// Run one schedule; `progress` gets a line per step.
pub async fn run(repo: &Path, opts: &Options, progress: &dyn Fn(&str)) -> anyhow::Result<Report> {
    let schedule = Schedule::generate(opts.seed, opts.length);
    progress(&schedule.to_string());
    let mut p = Platform::start(repo).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let command = p.url(Target::Command);
    let baseline = idle_gauges(&http, &p).await?;
    let load = Load::start(
        opts.seed,
        opts.workers,
        Endpoints {
            command: command.clone(),
            query: p.url(Target::Query),
        },
        p.transitions.clone(),
    );
    let start = Instant::now();
    for step in &schedule.steps {
        if let Some(wait) = step.at.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        progress(&format!(
            "+{:>5.1}s  {}",
            start.elapsed().as_secs_f64(),
            step.fault
        ));
        p.apply(&step.fault).await?;
    }
    let healed = Instant::now();
    progress("every fault healed; checking the invariants");
    let ledger = load.stop().await;
    let mut violations =
        std::mem::take(&mut ledger.lock().unwrap_or_else(|e| e.into_inner()).violations);

    // (a) Writes succeed again within 10 s of the last fault ending.
    let mut recovered_in = None;
    let mut n = 0;
    while healed.elapsed() < Duration::from_secs(10) {
        n += 1;
        let key = load::new_write(
            &ledger,
            "chaos-after",
            format!("chaos-after-{}-{n}", opts.seed),
            format!("after #{n}"),
        );
        if load::attempt(&http, &command, &ledger, &key, Duration::from_secs(2)).await == Some(201)
        {
            recovered_in = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if recovered_in.is_none() {
        violations.push("(a) no write was accepted within 10 s of the last fault ending".into());
    }

    // Settle every write without a definite answer by retrying it with its key.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: Vec<String> = ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writes
            .iter()
            .filter(|(_, w)| w.outcome == Outcome::Pending)
            .map(|(k, _)| k.clone())
            .collect();
        if pending.is_empty() || Instant::now() > deadline {
            if !pending.is_empty() {
                violations.push(format!(
                    "(a) {} writes still unanswered 20 s after healing, e.g. {}",
                    pending.len(),
                    pending[0]
                ));
            }
            break;
        }
        for key in pending {
            load::attempt(&http, &command, &ledger, &key, Duration::from_secs(5)).await;
        }
    }
    let (accepted, statuses, readiness_samples) = {
        let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        violations.extend(l.violations.iter().cloned());
        let accepted: BTreeSet<String> = l
            .writes
            .values()
            .filter_map(|w| match &w.outcome {
                Outcome::Accepted(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let refused: Vec<String> = l
            .writes
            .iter()
            .filter_map(|(k, w)| match w.outcome {
                Outcome::Refused(s) => Some(format!("{k}: {s}")),
                _ => None,
            })
            .collect();
        if !refused.is_empty() {
            violations.push(format!(
                "(b) valid writes were refused with a 4xx: {refused:?}"
            ));
        }
        (accepted, l.statuses.clone(), l.readiness_samples)
    };

    check_store(&p, &accepted, &mut violations).await?;
    check_state(&http, &p, &baseline, &mut violations).await?;
    check_observer(&http, &p, healed, &mut violations).await;
    p.clean = violations.is_empty();
    Ok(Report {
        schedule,
        violations,
        accepted: accepted.len(),
        statuses,
        readiness_samples,
        recovered_in,
        log_dir: p.log_dir().to_path_buf(),
    })
}

/// (b) Every accepted write is in the event store exactly once and in the
/// read model within 10 s; the read model holds only accepted writes.
async fn check_store(
    p: &Platform,
    accepted: &BTreeSet<String>,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
    let pool = p.stack.pool().await?;
    let created: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id::text, count(*) FROM events WHERE event_type = 'todo.created' AND user_id LIKE 'chaos-%' GROUP BY stream_id",
    )
    .fetch_all(&pool)
    .await
    .context("reading the event store")?;
    let in_store: BTreeMap<String, i64> = created.into_iter().collect();
    for id in accepted {
        match in_store.get(id) {
            Some(1) => {}
            Some(n) => violations.push(format!(
                "(b) todo {id} was created {n} times in the event store"
            )),
            None => violations.push(format!(
                "(b) todo {id} was answered 201 but is not in the event store"
            )),
        }
    }
    let extra: Vec<&String> = in_store
        .keys()
        .filter(|id| !accepted.contains(*id))
        .collect();
    if !extra.is_empty() {
        violations.push(format!(
            "(b) {} todos in the event store were never answered 201 (even after retries with their key), e.g. {}",
            extra.len(),
            extra[0]
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let missing = loop {
        let read: Vec<(String,)> =
            sqlx::query_as("SELECT id::text FROM read_todos WHERE owner LIKE 'chaos-%'")
                .fetch_all(&pool)
                .await?;
        let read: BTreeSet<String> = read.into_iter().map(|(id,)| id).collect();
        let missing: Vec<String> = accepted.difference(&read).cloned().collect();
        let unknown: Vec<&String> = read.difference(accepted).collect();
        if !unknown.is_empty() {
            violations.push(format!(
                "(b) the read model holds {} todos that were not accepted, e.g. {}",
                unknown.len(),
                unknown[0]
            ));
            break missing;
        }
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if !missing.is_empty() {
        violations.push(format!(
            "(b) {} accepted todos not in the read model 10 s after the last write, e.g. {}",
            missing.len(),
            missing[0]
        ));
    }
    Ok(())
}

/// In-flight gauges and breaker states per service, from `/metrics`.
type Gauges = BTreeMap<String, f64>;

async fn gauges(http: &reqwest::Client, url: &str) -> Option<Gauges> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|l| {
                l.starts_with("http_server_active_requests")
                    || l.starts_with("circuit_breaker_state")
            })
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

const SERVICES: [Target; 4] = [
    Target::Command,
    Target::Query,
    Target::Processor,
    Target::Observer,
];

async fn idle_gauges(
    http: &reqwest::Client,
    p: &Platform,
) -> anyhow::Result<BTreeMap<Target, Gauges>> {
    let mut out = BTreeMap::new();
    for t in SERVICES {
        let g = gauges(http, &p.url(t))
            .await
            .with_context(|| format!("{} /metrics", t.name()))?;
        out.insert(t, g);
    }
    Ok(out)
}

/// (c) and (d): once healthy and idle, nothing is left in an impossible state.
async fn check_state(
    http: &reqwest::Client,
    p: &Platform,
    baseline: &BTreeMap<Target, Gauges>,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
    let pool = p.stack.pool().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last.clear();
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await?;
        if outbox > 0 {
            last.push(format!("(d) {outbox} outbox rows not published"));
        }
        for t in SERVICES {
            let Some(now) = gauges(http, &p.url(t)).await else {
                last.push(format!("(d) {} does not answer /metrics", t.name()));
                continue;
            };
            for (k, v) in &now {
                let idle = baseline
                    .get(&t)
                    .and_then(|b| b.get(k))
                    .copied()
                    .unwrap_or(0.0);
                let bad = if k.starts_with("circuit_breaker_state") {
                    *v != 0.0
                } else {
                    *v != idle
                };
                if bad {
                    last.push(format!(
                        "(d) {}: {k} is {v} once healed and idle (want {})",
                        t.name(),
                        if k.starts_with("circuit") { 0.0 } else { idle }
                    ));
                }
            }
        }
        let ready = http
            .get(format!("{}/readyz", p.url(Target::Command)))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if !ready {
            last.push("(c) the command service is not ready once healed".into());
        }
        if last.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    violations.extend(last);
    Ok(())
}

/// (e) The observer's views return to the truth: every consumer group has
/// caught up (the read model is complete, so its lag is 0) and the SLOs were
/// evaluated after the last fault with Prometheus up.
async fn check_observer(
    http: &reqwest::Client,
    p: &Platform,
    healed: Instant,
    violations: &mut Vec<String>,
) {
    let observer = p.url(Target::Observer);
    let healed_at_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
        - healed.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last.clear();
        match http.get(format!("{observer}/api/v1/lag")).send().await {
            Ok(r) => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let groups = v
                    .get("groups")
                    .or_else(|| v.pointer("/snapshot/groups"))
                    .and_then(|g| g.as_array())
                    .cloned()
                    .unwrap_or_default();
                for want in ["query-service", "event-processor"] {
                    match groups.iter().find(|g| g["group"] == want) {
                        Some(g) if g["lag_messages"].as_i64() == Some(0) => {}
                        Some(g) => last.push(format!(
                            "(e) observer: group {want} lag {} once caught up",
                            g["lag_messages"]
                        )),
                        None => last.push(format!("(e) observer: no group {want} in the lag view")),
                    }
                }
            }
            Err(e) => last.push(format!("(e) observer /api/v1/lag: {e}")),
        }
        match http.get(format!("{observer}/api/v1/slos")).send().await {
            Ok(r) => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let at = v["evaluated_at"].as_f64().unwrap_or(0.0);
                if at < healed_at_unix {
                    last.push("(e) observer: no SLO evaluation since the last fault".into());
                } else if v["backend"]["status"] != "up" {
                    last.push(format!(
                        "(e) observer: Prometheus {} in the SLO view",
                        v["backend"]["status"]
                    ));
                }
            }
            Err(e) => last.push(format!("(e) observer /api/v1/slos: {e}")),
        }
        if last.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    violations.extend(last);
}
