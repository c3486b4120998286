//! Health, readiness, Postgres outages and graceful shutdown.

use std::time::Duration;

use serde_json::json;
use system_tests::{Platform, Service, reply};

#[tokio::test]
async fn postgres_down_gives_503_with_retry_after_and_recovers() -> anyhow::Result<()> {
    let mut p = Platform::start_with(&[], &[], false).await?;
    for base in [&p.api.command, &p.api.query] {
        let r = reply(p.api.http.get(format!("{base}/readyz")).send().await?).await?;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["checks"]["postgres"], "ok");
        assert_eq!(r.body["checks"]["kafka"], "ok");
    }
    let before = p
        .api
        .create("alice", json!({"title": "before the outage"}))
        .await?;
    assert_eq!(before.status, 201);

    p.stack.postgres.stop();
    let r = p
        .api
        .create("alice", json!({"title": "during the outage"}))
        .await?;
    assert_eq!(r.status, 503, "{}", r.raw);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.content_type(), "application/problem+json");
    let r = p.api.get("alice", "/v1/todos").await?;
    assert_eq!(r.status, 503, "{}", r.raw);
    let ready = reply(
        p.api
            .http
            .get(format!("{}/readyz", p.api.command))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body["checks"]["postgres"]
            .as_str()
            .is_some_and(|s| s.starts_with("error"))
    );
    let live = reply(
        p.api
            .http
            .get(format!("{}/healthz", p.api.command))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(live.status, 200, "liveness does not depend on Postgres");

    p.stack.postgres.restart().await?;
    let after = devstack::wait_until(
        "writes to succeed again",
        Duration::from_secs(30),
        || async {
            p.api
                .create("alice", json!({"title": "after the outage"}))
                .await
                .map(|r| r.status == 201)
                .unwrap_or(false)
        },
    )
    .await;
    after?;
    let id = before.body["id"].as_str().unwrap_or_default();
    p.api.wait_version("alice", id, 1).await?;
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() -> anyhow::Result<()> {
    let p = Platform::start_with(&[], &[], false).await?;
    // A slow instance: every request takes 700 ms.
    let mut slow = p
        .stack
        .spawn(Service::Command, &[("FAULT_LATENCY_MS", "700")])
        .await?;
    let url = format!("{}/v1/todos", slow.base_url());
    let http = p.api.http.clone();
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("x-user-id", "alice")
            .json(&json!({"title": "in flight"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Wait until the server is handling it: the scrape itself is one active
    // request, the slow write the second.
    let metrics_url = format!("{}/metrics", slow.base_url());
    devstack::wait_until("the write to be in flight", Duration::from_secs(10), || {
        let url = metrics_url.clone();
        async move {
            let text = reqwest::get(url).await.ok().map(|r| r.text());
            let Some(text) = text else { return false };
            let text = text.await.unwrap_or_default();
            text.lines().any(|l| {
                l.starts_with("http_server_active_requests{")
                    && l.rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v >= 2.0)
            })
        }
    })
    .await?;
    let code = slow.stop(Duration::from_secs(15)).await?;
    assert_eq!(in_flight.await??, 201, "the in-flight request completed");
    assert_eq!(code, Some(0), "clean exit after SIGTERM");
    Ok(())
}

/// Issue 13: a second `todoctl stack up` on ports another process holds
/// refuses to start, naming the port, its flag and the holder, instead of
/// reporting "The platform is up" while talking to the other instance.
#[tokio::test]
async fn stack_up_refuses_ports_another_process_holds() -> anyhow::Result<()> {
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = held.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let out = tokio::process::Command::new(devstack::workspace_bin("todoctl")?)
        .args(["stack", "up", "--smoke", "--dir"])
        .arg(dir.path())
        .args(["--command-port", &port.to_string()])
        .args([
            "--query-port",
            "0",
            "--processor-port",
            "0",
            "--postgres-port",
            "0",
        ])
        .args(["--broker-port", "0", "--observer-port", "0"])
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "started anyway: {stdout}{stderr}");
    assert!(!stdout.contains("The platform is up"), "{stdout}");
    let want = format!(
        "port {port} (--command-port) is in use by pid {}",
        std::process::id()
    );
    assert!(stderr.contains(&want), "want {want:?} in: {stderr}");
    drop(held);
    Ok(())
}

/// Issue 18: `todoctl bench --write-path-only --with-relay` charges each
/// process for the CPU it spent writing and publishing (the produce side of
/// "downstream of the write", without consumers), and counts the phase until
/// the relay has published every write. A probe that lost its process (the
/// broker, the PostgreSQL tree) reads zero here. With `--statements` it
/// also names the database's costliest statements of the phase.
#[tokio::test]
async fn bench_charges_the_write_side_to_each_process() -> anyhow::Result<()> {
    let out = tokio::process::Command::new(devstack::workspace_bin("todoctl")?)
        .args(["bench", "--write-path-only", "--with-relay", "--statements"])
        .args([
            "--duration-secs",
            "2",
            "--concurrency",
            "2",
            "--output",
            "json",
        ])
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(r["mode"], "write side (relay publishing, no consumers)");
    assert_eq!(r["write_errors"], 0, "{r}");
    let writes = r["write_latency"]["count"].as_u64().unwrap_or(0);
    assert!(writes > 0, "{r}");
    let cpu = &r["cpu"];
    // One event per write; a write committed as the load generator stopped
    // has no answer counted, so up to one per client more.
    let events = cpu["events"].as_u64().unwrap_or(0);
    assert!(
        (writes..=writes + 2).contains(&events),
        "{events} events for {writes} writes: {r}"
    );
    for process in ["command service", "broker (tansu)", "PostgreSQL"] {
        let row = cpu["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|x| x["process"] == process))
            .unwrap_or_else(|| panic!("no {process} row: {r}"));
        assert!(
            row["cpu_secs"].as_f64().unwrap_or(0.0) > 0.0,
            "{process}: {row}"
        );
        assert!(
            row["per_1k_events"].as_f64().unwrap_or(0.0) > 0.0,
            "{process}: {row}"
        );
    }
    // The write statement (events + outbox) and the relay's step, counted
    // in this phase only (pgbench ran before it, into the same database).
    let statements = r["statements"].as_array().cloned().unwrap_or_default();
    for wanted in ["INSERT INTO events", "DELETE FROM outbox"] {
        let s = statements
            .iter()
            .find(|s| s["query"].as_str().is_some_and(|q| q.contains(wanted)))
            .unwrap_or_else(|| panic!("no statement with {wanted:?}: {r}"));
        assert!(s["calls"].as_i64().unwrap_or(0) > 0, "{s}");
        assert!(s["ms_per_1k_events"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    }
    assert!(
        !statements.iter().any(|s| s["query"]
            .as_str()
            .is_some_and(|q| q.contains("bench_insert"))),
        "pgbench's statements leaked into the phase: {r}"
    );
    Ok(())
}
