//! Acceptance 1, 2, 3 and 8 of the core issue: real Postgres, real broker,
//! services as separate processes.

use std::time::Duration;

use serde_json::json;
use system_tests::Platform;

#[tokio::test]
async fn created_todo_becomes_visible_in_the_query_service() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let r = p
        .api
        .create(
            "alice",
            json!({"title": "  Write the runbook ", "priority": "high", "tags": ["ops", "docs"]}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["title"], "Write the runbook");
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(r.headers["location"], format!("/v1/todos/{id}"));

    let seen = p.api.wait_version("alice", &id, 1).await?;
    assert_eq!(seen.body["title"], "Write the runbook");
    assert_eq!(seen.body["priority"], "high");

    let list = p
        .api
        .wait_for("alice", "/v1/todos", Duration::from_secs(10), |r| {
            r.body["items"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await?;
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    // Another user sees nothing of alice's.
    let other = p.api.get("bob", "/v1/todos").await?;
    assert_eq!(other.body["items"], json!([]));
    let other = p.api.get("bob", &format!("/v1/todos/{id}")).await?;
    assert_eq!(other.status, 404);
    Ok(())
}

#[tokio::test]
async fn concurrent_updates_with_the_same_expected_version_one_wins() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    let r = p.api.create("alice", json!({"title": "contended"})).await?;
    let id = r.body["id"].as_str().expect("id").to_string();
    for round in 0..5 {
        let version = 1 + round;
        let reqs = (0..8).map(|i| {
            let req = p
                .api
                .http
                .patch(format!("{}/v1/todos/{id}", p.api.command))
                .header("if-match", format!("\"{version}\""))
                .json(&json!({"title": format!("writer {i} round {round}")}));
            p.api.send(req, "alice")
        });
        let replies = futures::future::join_all(reqs).await;
        let statuses: Vec<u16> = replies
            .into_iter()
            .map(|r| r.map(|r| r.status).unwrap_or(0))
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            7,
            "round {round}: {statuses:?}"
        );
    }
    let pool = p.stack.pool().await?;
    let events = todo_store::command::load_stream(&pool, id.parse()?).await?;
    assert_eq!(
        events.len(),
        6,
        "one create and exactly one update per round"
    );
    Ok(())
}

#[tokio::test]
async fn idempotent_retry_replays_the_first_response_and_writes_one_event() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    let body = json!({"title": "pay invoice", "tags": ["money"]});
    let send = |body: serde_json::Value, key: &str| {
        let req = p
            .api
            .http
            .post(format!("{}/v1/todos", p.api.command))
            .header("idempotency-key", key)
            .json(&body);
        p.api.send(req, "alice")
    };
    let first = send(body.clone(), "key-1").await?;
    assert_eq!(first.status, 201);
    // Retries, including concurrent ones, get the identical response.
    let retries = futures::future::join_all((0..5).map(|_| send(body.clone(), "key-1"))).await;
    for r in retries {
        let r = r?;
        assert_eq!(r.status, 201);
        assert_eq!(r.raw, first.raw, "byte-identical body");
        assert_eq!(r.headers["etag"], first.headers["etag"]);
        assert_eq!(r.headers["location"], first.headers["location"]);
        assert_eq!(r.headers["idempotent-replayed"], "true");
    }
    // Same key, different body: 422.
    let other = send(json!({"title": "something else"}), "key-1").await?;
    assert_eq!(other.status, 422, "{}", other.raw);
    assert_eq!(other.content_type(), "application/problem+json");
    // The key is per user: bob may use it too.
    let bob = p
        .api
        .send(
            p.api
                .http
                .post(format!("{}/v1/todos", p.api.command))
                .header("idempotency-key", "key-1")
                .json(&body),
            "bob",
        )
        .await?;
    assert_eq!(bob.status, 201);
    assert_ne!(bob.body["id"], first.body["id"]);

    let pool = p.stack.pool().await?;
    let all = todo_store::command::all_events(&pool).await?;
    let alice: Vec<_> = all.iter().filter(|e| e.user_id == "alice").collect();
    assert_eq!(alice.len(), 1, "one event for alice's five requests");
    Ok(())
}

#[tokio::test]
async fn as_of_returns_the_state_at_that_time_and_history_lists_every_event() -> anyhow::Result<()>
{
    let p = Platform::start_with(&[], &[], false).await?;
    let r = p
        .api
        .create("alice", json!({"title": "v1", "priority": "low"}))
        .await?;
    let id = r.body["id"].as_str().expect("id").to_string();
    let created_at =
        chrono::DateTime::parse_from_rfc3339(r.body["created_at"].as_str().expect("created_at"))?;
    p.api.wait_version("alice", &id, 1).await?;
    // Each event gets a distinct timestamp; remember a point between them.
    let between_1_2 = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = p
        .api
        .send(
            p.api
                .http
                .patch(format!("{}/v1/todos/{id}", p.api.command))
                .json(&json!({"title": "v2", "priority": "urgent"})),
            "alice",
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.raw);
    let between_2_3 = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = p
        .api
        .send(
            p.api
                .http
                .post(format!("{}/v1/todos/{id}/complete", p.api.command)),
            "alice",
        )
        .await?;
    assert_eq!(r.status, 200);
    p.api.wait_version("alice", &id, 3).await?;

    let enc = |t: chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B")
    };
    let at1 = p
        .api
        .get(
            "alice",
            &format!("/v1/todos/{id}?as_of={}", enc(between_1_2)),
        )
        .await?;
    assert_eq!(
        (
            at1.status,
            at1.body["title"].as_str(),
            at1.body["completed"].as_bool()
        ),
        (200, Some("v1"), Some(false))
    );
    let at2 = p
        .api
        .get(
            "alice",
            &format!("/v1/todos/{id}?as_of={}", enc(between_2_3)),
        )
        .await?;
    assert_eq!(
        (
            at2.body["title"].as_str(),
            at2.body["priority"].as_str(),
            at2.body["completed"].as_bool()
        ),
        (Some("v2"), Some("urgent"), Some(false))
    );
    let now = p
        .api
        .get(
            "alice",
            &format!("/v1/todos/{id}?as_of={}", enc(chrono::Utc::now())),
        )
        .await?;
    assert_eq!(now.body["completed"], true);
    let before = p
        .api
        .get(
            "alice",
            &format!(
                "/v1/todos/{id}?as_of={}",
                enc(created_at.to_utc() - chrono::Duration::seconds(1))
            ),
        )
        .await?;
    assert_eq!(before.status, 404);
    assert_eq!(before.content_type(), "application/problem+json");

    let h = p
        .api
        .get("alice", &format!("/v1/todos/{id}/history"))
        .await?;
    let types: Vec<_> = h.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["todo.created", "todo.updated", "todo.completed"]);
    assert_eq!(
        p.api
            .get("bob", &format!("/v1/todos/{id}/history"))
            .await?
            .status,
        404
    );
    Ok(())
}
