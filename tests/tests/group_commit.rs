//! Group commit under contention: with one committer and large batches,
//! concurrent writes share statements, and each request still gets exactly
//! the outcome it would have had alone.

use std::collections::BTreeMap;

use serde_json::json;
use system_tests::Platform;

#[tokio::test]
async fn batched_writes_keep_per_request_outcomes() -> anyhow::Result<()> {
    // One worker and big batches: as much batching as possible.
    let p = Platform::start_with(
        &[
            ("GROUP_COMMIT_WORKERS", "1"),
            ("GROUP_COMMIT_MAX_BATCH", "256"),
        ],
        &[],
        false,
    )
    .await?;
    let cmd = p.command.base_url();
    let http = reqwest::Client::new();
    let first = p.api.create("gc", json!({"title": "contended"})).await?;
    assert_eq!(first.status, 201);
    let id = first.body["id"].as_str().unwrap_or_default().to_string();

    // 30 updates racing on version 1, 30 creates, and 10 retries of one
    // idempotent create, all at once.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (http, cmd, id) = (http.clone(), cmd.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .patch(format!("{cmd}/v1/todos/{id}"))
                .header("x-user-id", "gc")
                .header("if-match", "\"1\"")
                .json(&json!({"title": format!("update {i}")}))
                .send()
                .await?;
            anyhow::Ok(("update", r.status().as_u16(), String::new()))
        }));
    }
    for i in 0..30 {
        let (http, cmd) = (http.clone(), cmd.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{cmd}/v1/todos"))
                .header("x-user-id", "gc")
                .json(&json!({"title": format!("create {i}")}))
                .send()
                .await?;
            anyhow::Ok(("create", r.status().as_u16(), String::new()))
        }));
    }
    for _ in 0..10 {
        let (http, cmd) = (http.clone(), cmd.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{cmd}/v1/todos"))
                .header("x-user-id", "gc")
                .header("idempotency-key", "gc-once")
                .json(&json!({"title": "exactly once"}))
                .send()
                .await?;
            let status = r.status().as_u16();
            let body = r.text().await?;
            anyhow::Ok(("idempotent", status, body))
        }));
    }
    let mut counts: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    let mut idem_bodies = Vec::new();
    for t in tasks {
        let (kind, status, body) = t.await??;
        *counts.entry((kind, status)).or_default() += 1;
        if kind == "idempotent" && status == 201 {
            idem_bodies.push(body);
        }
    }
    assert_eq!(counts.get(&("update", 200)), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&("update", 409)), Some(&29), "{counts:?}");
    assert_eq!(counts.get(&("create", 201)), Some(&30), "{counts:?}");
    // Every retry of the idempotent create answers with the first response
    // (201 with the same body), or 409 while the first is still in flight.
    let idem_ok = counts.get(&("idempotent", 201)).copied().unwrap_or(0);
    let idem_busy = counts.get(&("idempotent", 409)).copied().unwrap_or(0);
    assert_eq!(idem_ok + idem_busy, 10, "{counts:?}");
    assert!(idem_ok >= 1);
    assert!(
        idem_bodies.windows(2).all(|w| w[0] == w[1]),
        "{idem_bodies:?}"
    );

    let pool = p.stack.pool().await?;
    let (events, streams): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT stream_id) FROM events")
            .fetch_one(&pool)
            .await?;
    // first create + its one winning update, 30 creates, one idempotent create
    assert_eq!(streams, 1 + 30 + 1);
    assert_eq!(events, 2 + 30 + 1);
    Ok(())
}
