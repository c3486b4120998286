//! A real Prometheus scrapes every service; the expositions pass
//! `promtool check metrics`; RED metrics split by `version` (stable/canary).

use std::time::Duration;

use devstack::prometheus::{Prometheus, PrometheusOptions};
use serde_json::json;
use system_tests::{Api, Platform, Service, promtool_check_metrics};

/// The families a service registers: the HTTP RED set and the sets of the
/// components it runs, nothing it never emits (before issue 14 every service
/// registered every family, todo counters in the event processor included).
fn families_of(service: &str) -> Vec<&'static str> {
    use contracts::metrics as m;
    let own = match service {
        "command-service" => vec![
            m::KAFKA_MESSAGES_PRODUCED,
            m::KAFKA_MESSAGES_FAILED,
            m::OUTBOX_BACKLOG,
            m::OUTBOX_OLDEST_AGE,
            m::TODOS_CREATED,
            m::TODOS_COMPLETED,
            m::WRITES_SHED,
            m::CIRCUIT_BREAKER_STATE,
            m::DEPENDENCY_CALLS,
        ],
        "query-service" => vec![
            m::KAFKA_MESSAGES_CONSUMED,
            m::KAFKA_MESSAGES_FAILED,
            m::DLQ_MESSAGES,
            m::PROJECTION_FRESHNESS,
            m::PROJECTION_EVENTS_HELD,
        ],
        "event-processor" => vec![
            m::KAFKA_MESSAGES_CONSUMED,
            m::KAFKA_MESSAGES_FAILED,
            m::DLQ_MESSAGES,
            m::KAFKA_MESSAGES_PRODUCED,
            m::TODOS_OVERDUE,
            m::USERS_ACTIVE,
        ],
        other => panic!("no families listed for {other}"),
    };
    [
        m::HTTP_SERVER_REQUEST_DURATION,
        m::HTTP_SERVER_ACTIVE_REQUESTS,
        m::DB_POOL_CONNECTIONS,
        m::DB_POOL_IDLE,
        m::DB_POOL_MAX,
    ]
    .into_iter()
    .chain(own)
    .map(|d| d.name)
    .collect()
}

async fn query(
    http: &reqwest::Client,
    prom: &str,
    q: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let v: serde_json::Value = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(v["status"] == "success", "query {q} failed: {v}");
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn prometheus_scrapes_every_service_and_red_metrics_split_by_version() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let canary = p
        .stack
        .spawn(
            Service::Command,
            &[("VERSION", "canary"), ("RELAY_ENABLED", "false")],
        )
        .await?;
    let canary_api = Api::new(&canary, &p.query);
    for i in 0..5 {
        assert_eq!(
            p.api
                .create("alice", json!({"title": format!("stable {i}")}))
                .await?
                .status,
            201
        );
        assert_eq!(
            canary_api
                .create("alice", json!({"title": format!("canary {i}")}))
                .await?
                .status,
            201
        );
    }
    let processor = p.processor.as_ref().expect("platform runs the processor");
    let targets = [&p.command, &canary, &p.query, processor];

    for t in targets {
        let text = p
            .api
            .http
            .get(format!("{}/metrics", t.base_url()))
            .header("accept", "text/plain;version=0.0.4")
            .send()
            .await?
            .text()
            .await?;
        let (ok, problems) = promtool_check_metrics(&text).await?;
        assert!(
            ok && problems.trim().is_empty(),
            "{}: promtool check metrics: {problems}",
            t.name
        );
        // The default exposition is OpenMetrics.
        let om = p
            .api
            .http
            .get(format!("{}/metrics", t.base_url()))
            .send()
            .await?;
        assert!(
            om.headers()["content-type"]
                .to_str()?
                .starts_with("application/openmetrics-text")
        );
        let om = om.text().await?;
        assert!(om.ends_with("# EOF\n"));
        // A family without samples yet is not exposed at all, so this is
        // "nothing else", not "all of these".
        let registered = families_of(&t.name);
        let foreign: Vec<&str> = om
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .filter(|f| !registered.contains(f))
            .collect();
        assert!(foreign.is_empty(), "{}: exposes {foreign:?}", t.name);
    }

    let prom = Prometheus::start(PrometheusOptions {
        targets: targets
            .iter()
            .map(|t| format!("127.0.0.1:{}", t.port))
            .collect(),
        ..Default::default()
    })
    .await?;
    let http = reqwest::Client::new();
    let red = r#"sum by (version) (http_server_request_duration_seconds_count{service="command-service",route="/v1/todos",method="POST",status_class="2xx"})"#;
    let mut last = vec![];
    let ready = devstack::wait_until(
        "Prometheus to scrape both versions",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), prom.url());
            async move {
                let up = query(&http, &url, "sum(up)")
                    .await
                    .ok()
                    .and_then(|r| r.first()?["value"][1].as_str()?.parse::<f64>().ok());
                let by_version = query(&http, &url, red).await.unwrap_or_default();
                up == Some(4.0) && by_version.len() == 2
            }
        },
    )
    .await;
    if ready.is_err() {
        last = query(&http, &prom.url(), red).await.unwrap_or_default();
    }
    assert!(ready.is_ok(), "RED by version: {last:?}");
    let by_version = query(&http, &prom.url(), red).await?;
    for v in by_version {
        let version = v["metric"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(version == "stable" || version == "canary", "{v}");
        let count: f64 = v["value"][1].as_str().unwrap_or("0").parse()?;
        assert!(count >= 5.0, "{version}: {count} requests");
    }
    // The gauges behind the infrastructure and business dashboards: every
    // service's pool, and alice as the one active user (the processor
    // recounts every 15 s).
    for (q, want) in [
        ("count(db_pool_max_connections > 0)", 4.0),
        ("max(users_active)", 1.0),
        ("max(todos_overdue)", 0.0),
    ] {
        let ready = devstack::wait_until(q, Duration::from_secs(45), || {
            let (http, url) = (http.clone(), prom.url());
            async move {
                let got = query(&http, &url, q)
                    .await
                    .ok()
                    .and_then(|r| r.first()?["value"][1].as_str()?.parse::<f64>().ok());
                got == Some(want)
            }
        })
        .await;
        let last = query(&http, &prom.url(), q).await.unwrap_or_default();
        assert!(ready.is_ok(), "{q}: want {want}, got {last:?}");
    }
    Ok(())
}
