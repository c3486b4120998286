//! Rate limits against the real services: a burst over the per-user limit
//! gets 429 problem+json with `Retry-After` while another user is served, and
//! the per-address limit keys on the client address (here from
//! `X-Forwarded-For`, as behind the gateway).

use serde_json::json;
use system_tests::{Platform, Reply, reply};

const BURST: usize = 5;

/// Requests a 1/s limit can have refilled since `start` (at least one: the
/// clock may tick between the first and the last check).
fn refills_since(start: std::time::Instant) -> usize {
    start.elapsed().as_secs_f64().ceil().max(1.0) as usize
}

fn assert_limited(r: &Reply, what: &str) {
    assert_eq!(r.status, 429, "{what}: {}", r.raw);
    assert_eq!(r.content_type(), "application/problem+json", "{what}");
    let retry: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=2).contains(&retry),
        "{what}: Retry-After should be 1-2 s at 1 request/s, got {retry}"
    );
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("rate limit"), "{what}: {detail}");
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429_and_others_are_unaffected() -> anyhow::Result<()> {
    let burst = BURST.to_string();
    let p = Platform::start_with(
        &[
            ("RATE_LIMIT__PER_USER_RPS", "1"),
            ("RATE_LIMIT__PER_USER_BURST", &burst),
        ],
        &[
            ("RATE_LIMIT__PER_IP_RPS", "1"),
            ("RATE_LIMIT__PER_IP_BURST", &burst),
            ("RATE_LIMIT__CLIENT_IP_HEADER", "x-forwarded-for"),
        ],
        false,
    )
    .await?;

    // Per user, on the command service: alice sends 3× her burst at once.
    let start = std::time::Instant::now();
    let sends = (0..3 * BURST).map(|i| {
        p.api
            .create("alice", json!({"title": format!("burst {i}")}))
    });
    let replies = futures::future::try_join_all(sends).await?;
    let refills = refills_since(start);
    let created = replies.iter().filter(|r| r.status == 201).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status != 201).collect();
    // The burst, plus what refilled at 1/s while the requests ran (a loaded
    // machine may take longer than a second to deliver them all).
    assert!(
        (BURST..=BURST + refills).contains(&created),
        "created {created} of {} with {refills} possible refills",
        replies.len()
    );
    assert!(!limited.is_empty(), "nothing was rate limited");
    for r in &limited {
        assert_limited(r, "alice over her limit");
    }
    // Bob is a different user: served at once.
    let r = p.api.create("bob", json!({"title": "unaffected"})).await?;
    assert_eq!(r.status, 201, "bob: {}", r.raw);
    // The limited requests did nothing: alice has exactly `created` todos.
    let pool = p.stack.pool().await?;
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE user_id = 'alice'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(events as usize, created, "accepted writes only");

    // Per address, on the query service.
    let get = |ip: &str| {
        p.api
            .http
            .get(format!("{}/v1/todos", p.api.query))
            .header("x-user-id", "carol")
            .header("x-forwarded-for", format!("198.51.100.1, {ip}"))
            .send()
    };
    let start = std::time::Instant::now();
    let statuses = futures::future::try_join_all(
        (0..3 * BURST).map(|_| async { reply(get("203.0.113.7").await?).await }),
    )
    .await?;
    let refills = refills_since(start);
    let served = statuses.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Reply> = statuses.iter().filter(|r| r.status != 200).collect();
    assert!(
        (BURST..=BURST + refills).contains(&served),
        "served {served} of {} with {refills} possible refills",
        statuses.len()
    );
    for r in &limited {
        assert_limited(r, "203.0.113.7 over its limit");
    }
    // Same user, another address: not limited by the first one's usage.
    let r = reply(get("203.0.113.8").await?).await?;
    assert_eq!(r.status, 200, "another address: {}", r.raw);
    // Health and metrics are never limited.
    for path in ["/healthz", "/metrics"] {
        let r = p
            .api
            .http
            .get(format!("{}{path}", p.api.query))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await?;
        assert_eq!(r.status(), 200, "{path}");
    }
    Ok(())
}
