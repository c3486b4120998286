//! Exemplars from metrics to traces: a real Prometheus (exemplar storage on,
//! as in compose and the cluster) scrapes the services in OpenMetrics, and
//! the exemplars of the latency histograms name traces that the services
//! exported to the OTLP receiver.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use contracts::metrics as m;
use devstack::prometheus::{Prometheus, PrometheusOptions};
use serde_json::{Value, json};
use system_tests::otlp::{Seen, traced_stack};
use system_tests::{Api, Service, promtool_check_metrics};

/// The `trace_id`s of the exemplars Prometheus holds for `selector` over
/// the last ten minutes.
async fn exemplar_trace_ids(
    http: &reqwest::Client,
    prom: &str,
    selector: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let now = chrono::Utc::now().timestamp();
    let v: Value = http
        .get(format!("{prom}/api/v1/query_exemplars"))
        .query(&[
            ("query", selector.to_string()),
            ("start", (now - 600).to_string()),
            ("end", (now + 60).to_string()),
        ])
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(v["status"] == "success", "query_exemplars {selector}: {v}");
    Ok(v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| Some(e["labels"]["trace_id"].as_str()?.to_string()))
        .collect())
}

fn exported_trace_ids(seen: &Seen, service: &str) -> BTreeSet<String> {
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(s, ..)| s == service)
        .map(|(.., t)| t.clone())
        .collect()
}

/// Waits until Prometheus holds an exemplar of `selector` whose trace the
/// OTLP receiver saw from `service`; returns that trace id.
async fn exemplar_of_an_exported_trace(
    http: &reqwest::Client,
    prom: &Prometheus,
    seen: &Seen,
    service: &str,
    selector: &str,
) -> anyhow::Result<String> {
    let found = Mutex::new(None);
    let last = Mutex::new(BTreeSet::new());
    let url = prom.url();
    let waited = devstack::wait_until(
        "an exemplar whose trace was exported",
        Duration::from_secs(30),
        || {
            let (found, last, url) = (&found, &last, &url);
            async move {
                let Ok(exemplars) = exemplar_trace_ids(http, url, selector).await else {
                    return false;
                };
                let exported = exported_trace_ids(seen, service);
                let hit = exemplars.iter().find(|t| exported.contains(*t)).cloned();
                *last.lock().unwrap_or_else(|e| e.into_inner()) = exemplars;
                let ok = hit.is_some();
                *found.lock().unwrap_or_else(|e| e.into_inner()) = hit;
                ok
            }
        },
    )
    .await;
    let found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    match (waited, found) {
        (Ok(()), Some(trace_id)) => Ok(trace_id),
        _ => anyhow::bail!(
            "{selector}: no exemplar names a trace {service} exported; exemplars {:?}, {} traces exported",
            last.into_inner().unwrap_or_else(|e| e.into_inner()),
            exported_trace_ids(seen, service).len()
        ),
    }
}

#[tokio::test]
async fn latency_exemplars_in_prometheus_name_traces_the_services_exported() -> anyhow::Result<()> {
    let (stack, seen) = traced_stack(&[]).await?;
    let command = stack.spawn(Service::Command, &[]).await?;
    let query = stack.spawn(Service::Query, &[]).await?;
    let api = Api::new(&command, &query);

    let r = api.create("alice", json!({ "title": "exemplar" })).await?;
    assert_eq!(r.status, 201, "{}", r.raw);
    api.wait_version("alice", r.body["id"].as_str().unwrap_or_default(), 1)
        .await?;

    let prom = Prometheus::start(PrometheusOptions {
        targets: vec![
            format!("127.0.0.1:{}", command.port),
            format!("127.0.0.1:{}", query.port),
        ],
        ..Default::default()
    })
    .await?;
    let http = reqwest::Client::new();

    // The write's request span: its exemplar is on the POST route's buckets.
    let request = format!(
        r#"{}{{service="command-service",route="/v1/todos",method="POST"}}"#,
        m::HTTP_SERVER_REQUEST_DURATION.bucket()
    );
    let trace_id =
        exemplar_of_an_exported_trace(&http, &prom, &seen, "command-service", &request).await?;
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    // Exemplars are OpenMetrics only: the classic text stays valid.
    let scrape = |accept: &'static str| {
        let http = http.clone();
        let url = format!("{}/metrics", command.base_url());
        async move {
            http.get(url)
                .header("accept", accept)
                .send()
                .await?
                .text()
                .await
        }
    };
    let om = scrape("application/openmetrics-text;version=1.0.0").await?;
    assert!(om.contains(" # {trace_id=\""), "{om}");
    let classic = scrape("text/plain;version=0.0.4").await?;
    assert!(!classic.contains("trace_id"), "{classic}");
    let (ok, problems) = promtool_check_metrics(&classic).await?;
    assert!(ok && problems.trim().is_empty(), "promtool: {problems}");

    // The projection's freshness: the event's trace, which the query
    // service continued when it projected the event.
    let freshness = format!(
        r#"{}{{service="query-service"}}"#,
        m::PROJECTION_FRESHNESS.bucket()
    );
    exemplar_of_an_exported_trace(&http, &prom, &seen, "query-service", &freshness).await?;
    Ok(())
}
