//! Fault injection with real processes, under load: the command service
//! killed with SIGKILL, PostgreSQL restarted, the broker frozen with
//! SIGSTOP. In every case each write that was answered 201 ends up exactly
//! once in the event store and in the read model.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devstack::{Service, wait_until};
use system_tests::Platform;

/// What the load saw: accepted ids, and every status (0: no answer).
#[derive(Default, Clone)]
struct Seen {
    accepted: Vec<String>,
    statuses: BTreeMap<u16, u64>,
    /// `Retry-After` present on every 503.
    retry_after_on_503: bool,
    saw_503: u64,
}

/// Running load: what it has seen so far, and how to stop it.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Stop, wait for every request in flight to be answered, and return
    /// what was seen.
    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `workers` loops creating todos against `url` until stopped.
fn load(url: String, workers: usize, pause: Duration) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen {
        retry_after_on_503: true,
        ..Seen::default()
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut handles = Vec::new();
    for w in 0..workers {
        let (stop, seen, http, url) = (stop.clone(), seen.clone(), http.clone(), url.clone());
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = http
                    .post(format!("{url}/v1/todos"))
                    .header("x-user-id", format!("fault-{w}"))
                    .json(&serde_json::json!({ "title": format!("w{w} #{i}") }))
                    .send()
                    .await;
                let (status, id, retry_after) = match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let retry = r.headers().contains_key("retry-after");
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        (status, body["id"].as_str().map(str::to_string), retry)
                    }
                    Err(_) => (0, None, false),
                };
                {
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    *s.statuses.entry(status).or_default() += 1;
                    if status == 201
                        && let Some(id) = id
                    {
                        s.accepted.push(id);
                    }
                    if status == 503 {
                        s.saw_503 += 1;
                        s.retry_after_on_503 &= retry_after;
                    }
                }
                if status != 201 {
                    // Back off a little on errors, as a client would.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(pause).await;
            }
        }));
    }
    Load {
        stop,
        seen,
        workers: handles,
    }
}

fn accepted(seen: &Mutex<Seen>) -> usize {
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .accepted
        .len()
}

async fn wait_accepted(seen: &Mutex<Seen>, n: usize, what: &str) -> anyhow::Result<()> {
    wait_until(what, Duration::from_secs(60), || {
        let done = accepted(seen) >= n;
        async move { done }
    })
    .await
}

/// Every accepted id: exactly one `created` event in the store, exactly one
/// row in the read model (after the projection caught up). Beyond them only
/// writes whose answer never arrived (`unanswered`, e.g. cut by a kill) may
/// exist, and each of those once too.
async fn assert_exactly_once(p: &Platform, ids: &[String], unanswered: u64) -> anyhow::Result<()> {
    let pool = p.stack.pool().await?;
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|i| i.parse()).collect::<Result<_, _>>()?;
    let unique: std::collections::BTreeSet<_> = uuids.iter().collect();
    assert_eq!(unique.len(), uuids.len(), "an id was answered 201 twice");
    let (events, streams): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT stream_id) FROM events WHERE stream_id = ANY($1)",
    )
    .bind(&uuids)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        streams as usize,
        uuids.len(),
        "accepted writes missing from the event store"
    );
    assert_eq!(
        events as usize,
        uuids.len(),
        "one event per accepted create"
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    let extra = total as u64 - uuids.len() as u64;
    assert!(
        extra <= unanswered,
        "{extra} events beyond the accepted writes, only {unanswered} requests went unanswered"
    );
    wait_until(
        "the read model to hold every accepted todo",
        Duration::from_secs(120),
        || {
            let (pool, uuids) = (pool.clone(), uuids.clone());
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM read_todos WHERE id = ANY($1)")
                    .bind(&uuids)
                    .fetch_one(&pool)
                    .await
                    .is_ok_and(|n| n as usize == uuids.len())
            }
        },
    )
    .await?;
    // Everything in the store reaches the read model, each event once.
    wait_until(
        "the read model to catch up",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM read_todos")
                    .fetch_one(&pool)
                    .await
                    .is_ok_and(|n| n == total)
            }
        },
    )
    .await?;
    let max_version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM read_todos")
        .fetch_one(&pool)
        .await?;
    assert_eq!(max_version, Some(1), "an event was applied twice");
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM read_history")
        .fetch_one(&pool)
        .await?;
    assert_eq!(history, total, "history has duplicates");
    Ok(())
}

#[tokio::test]
async fn kill_9_of_the_command_service_loses_no_accepted_write() -> anyhow::Result<()> {
    let mut p = Platform::start_with(&[], &[], false).await?;
    let url = p.command.base_url();
    let port = p.command.port;
    let l = load(url, 4, Duration::from_millis(5));
    wait_accepted(&l.seen, 100, "100 accepted writes").await?;
    p.command.kill().await?; // SIGKILL, mid-load
    let at_kill = accepted(&l.seen);
    let restarted = p.stack.wiring.spawn_on(Service::Command, port, &[]).await?;
    wait_accepted(&l.seen, at_kill + 100, "writes after the restart").await?;
    let Seen {
        accepted: ids,
        statuses,
        ..
    } = l.finish().await;
    println!(
        "kill -9: {} accepted ({} before the kill); statuses {statuses:?}",
        ids.len(),
        at_kill,
    );
    let unanswered = statuses.get(&0).copied().unwrap_or(0);
    assert_exactly_once(&p, &ids, unanswered).await?;
    drop(restarted);
    Ok(())
}

#[tokio::test]
async fn postgres_restart_under_load_gives_503s_then_recovers_without_500s() -> anyhow::Result<()> {
    let mut p = Platform::start_with(&[], &[], false).await?;
    let l = load(p.command.base_url(), 4, Duration::from_millis(5));
    let seen = l.seen.clone();
    wait_accepted(&seen, 100, "100 accepted writes").await?;
    p.stack.postgres.stop();
    // While it is down, writes are refused with 503 + Retry-After.
    wait_until(
        "503s while Postgres is down",
        Duration::from_secs(30),
        || {
            let n = seen.lock().unwrap_or_else(|e| e.into_inner()).saw_503;
            async move { n >= 5 }
        },
    )
    .await?;
    let before = accepted(&seen);
    p.stack.postgres.restart().await?;
    wait_accepted(&seen, before + 100, "writes after Postgres is back").await?;
    let s = l.finish().await;
    println!("postgres restart: statuses {:?}", s.statuses);
    assert_eq!(s.statuses.get(&500), None, "no 500s: {:?}", s.statuses);
    assert!(s.retry_after_on_503, "every 503 carries Retry-After");
    let other: Vec<_> = s
        .statuses
        .keys()
        .filter(|k| ![201, 503].contains(*k))
        .collect();
    assert!(other.is_empty(), "only 201 and 503: {:?}", s.statuses);
    let ids = s.accepted.clone();
    // The breaker's state is exported.
    let metrics = reqwest::get(format!("{}/metrics", p.command.base_url()))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("circuit_breaker_state{") && metrics.contains("dependency=\"postgres\""),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dependency_calls_total{")
                && l.contains("postgres")
                && l.contains("outcome=\"failed\"")
                && !l.ends_with(" 0")),
        "failed Postgres calls are counted"
    );
    assert_exactly_once(&p, &ids, 0).await
}

#[tokio::test]
async fn frozen_broker_grows_the_outbox_until_writes_are_shed_then_drains() -> anyhow::Result<()> {
    const BOUND: i64 = 150;
    let bound = BOUND.to_string();
    let mut p = Platform::start_with(
        &[
            ("SHED_OUTBOX_BACKLOG", &bound),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "3000"),
        ],
        &[],
        false,
    )
    .await?;
    let pool = p.stack.pool().await?;
    let l = load(p.command.base_url(), 4, Duration::from_millis(20));
    let seen = l.seen.clone();
    wait_accepted(&seen, 50, "50 accepted writes").await?;
    p.stack.broker.pause()?; // SIGSTOP
    wait_until("writes to be shed", Duration::from_secs(60), || {
        let n = seen.lock().unwrap_or_else(|e| e.into_inner()).saw_503;
        async move { n >= 3 }
    })
    .await?;
    let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await?;
    println!("outbox at shedding: {backlog} (bound {BOUND})");
    assert!(backlog >= BOUND, "shed before the bound: {backlog}");
    // Checked every second at ≤ 4 × 50 writes/s: bounded overshoot.
    assert!(backlog <= BOUND + 250, "the outbox kept growing: {backlog}");
    // Shedding holds while the broker is frozen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await?;
    assert!(still <= BOUND + 250, "the outbox kept growing: {still}");

    p.stack.broker.resume()?; // SIGCONT
    wait_until("the outbox to drain", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox")
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == 0)
        }
    })
    .await?;
    let before = accepted(&seen);
    wait_accepted(&seen, before + 20, "writes accepted again").await?;
    let s = l.finish().await;
    println!("frozen broker: statuses {:?}", s.statuses);
    assert!(s.retry_after_on_503, "every 503 carries Retry-After");
    assert_eq!(s.statuses.get(&500), None);
    let ids = s.accepted.clone();
    let metrics = reqwest::get(format!("{}/metrics", p.command.base_url()))
        .await?
        .text()
        .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("writes_shed_total") && !l.ends_with(" 0")),
        "shed writes are counted"
    );
    assert_exactly_once(&p, &ids, 0).await
}
