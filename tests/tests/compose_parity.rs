//! The shipped `docker-compose.yml`, unchanged, run as local processes
//! (`devstack::compose`, the same code as `todoctl stack up --compose`):
//! every service on its own loopback address, compose names resolved for
//! the children only, volumes at their container paths, the Dockerfile's
//! ENV/USER/ENTRYPOINT for our images, and stand-ins speaking the real
//! protocols where no local program exists (Tempo takes OTLP/HTTP on 4318
//! only, as the real one does).
//!
//! What it proves on that configuration:
//! - a write through the compose gateway reaches the query API;
//! - one trace (command → Kafka → projection → processor) reaches `tempo`;
//! - every scrape target of the compose Prometheus is up and the generated
//!   rules are loaded;
//! - the observer reaches Prometheus, Alertmanager, HAProxy and PostgreSQL
//!   by their compose names;
//! - a bad canary build (CANARY_FAULT_ERROR_RATE, as docs/deployment.md
//!   says) is rolled back through the compose HAProxy's runtime API;
//! - Alertmanager, with its compose config, delivers a page to the pager;
//! - the Grafana provisioning files name datasource URLs that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use devstack::compose::{ComposeStack, Options, Vars};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// `get weight BACKEND/SERVER` on the HAProxy runtime API: the current weight.
async fn haproxy_weight(api: &str, server: &str) -> anyhow::Result<u32> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(api).await?;
    s.write_all(format!("get weight {server}\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    out.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("get weight {server}: {out:?}"))
}

/// Static targets in the compose Prometheus config.
fn scrape_targets() -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml"))?;
    let v: serde_norway::Value = serde_norway::from_str(&text)?;
    Ok(v["scrape_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|j| j["static_configs"].as_sequence().into_iter().flatten())
        .map(|c| c["targets"].as_sequence().map_or(0, |t| t.len()))
        .sum())
}

/// Groups in the generated rule files the compose Prometheus mounts.
fn rule_groups() -> anyhow::Result<usize> {
    let mut n = 0;
    for p in devstack::prometheus::rule_files(&repo().join("alerts")) {
        let v: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(&p)?)?;
        n += v["groups"].as_sequence().map_or(0, |g| g.len());
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shipped_compose_file_runs_as_tested() -> anyhow::Result<()> {
    let root = repo();
    let mut vars = Vars::from_env_file(&root.join(".env.example"))?;
    // The demo's bad canary, exactly as docs/deployment.md has users start it.
    vars.set("CANARY_FAULT_ERROR_RATE", "0.3");
    let dir = tempfile::Builder::new()
        .prefix("compose-parity-")
        .tempdir()?;
    let subnet = format!("127.0.{}", 100 + std::process::id() % 150);
    let stack = ComposeStack::up(Options {
        file: root.join("docker-compose.yml"),
        vars,
        dir: dir.path().to_path_buf(),
        subnet,
        // The test drives its own traffic (k6 is replaced by `todoctl load`
        // otherwise, which would only add noise here).
        skip: vec!["loadgen".into()],
        publish: false,
        bin_dir: devstack::bin_dir()?,
    })
    .await?;
    for r in &stack.rewrites {
        eprintln!("rewrite: {r}");
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let gateway = stack.url("haproxy", 8080)?;

    // 1. A write through the gateway is readable through the gateway
    //    (reads are routed to the query service). The canary fails 30 %, so
    //    a write may need a retry with the same Idempotency-Key.
    let key = uuid::Uuid::new_v4().to_string();
    let mut created = None;
    for _ in 0..20 {
        let r = http
            .post(format!("{gateway}/v1/todos"))
            .header("x-user-id", "parity")
            .header("idempotency-key", &key)
            .json(&json!({"title": "compose parity", "tags": ["parity"]}))
            .send()
            .await?;
        if r.status() == 201 {
            created = Some(r.json::<Value>().await?);
            break;
        }
    }
    let created = created.context("no 201 from the gateway in 20 tries")?;
    let id = created["id"].as_str().context("id")?.to_string();
    devstack::wait_until("the todo on the read side", Duration::from_secs(20), || {
        let url = format!("{gateway}/v1/todos/{id}");
        let http = http.clone();
        async move {
            http.get(&url)
                .header("x-user-id", "parity")
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await?;

    // 2. One trace from the command service through the projection and the
    //    event processor reached the Tempo stand-in over OTLP/HTTP.
    let spans = stack.spans();
    devstack::wait_until(
        "one trace across three services at tempo:4318",
        Duration::from_secs(30),
        || {
            let spans = spans.clone();
            async move {
                let seen = spans.lock().unwrap_or_else(|e| e.into_inner());
                let mut by_trace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
                for (service, _, _, trace) in seen.iter() {
                    by_trace.entry(trace).or_default().insert(service);
                }
                by_trace.values().any(|s| {
                    ["command-service", "query-service", "event-processor"]
                        .iter()
                        .all(|w| s.contains(w))
                })
            }
        },
    )
    .await
    .with_context(|| format!("spans seen: {}", spans.lock().map(|s| s.len()).unwrap_or(0)))?;

    // 3. Every scrape target of the compose Prometheus is up; the rules are loaded.
    let prom = stack.url("prometheus", 9090)?;
    let want_groups = rule_groups()?;
    anyhow::ensure!(want_groups > 0, "no rule groups in alerts/");
    let want_targets = scrape_targets()?;
    let last = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let up = devstack::wait_until("every scrape target up", Duration::from_secs(60), || {
        let url = format!("{prom}/api/v1/targets");
        let (http, last) = (http.clone(), last.clone());
        async move {
            let Ok(v) = get_json(&http, &url).await else {
                return false;
            };
            let targets = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            *last.lock().unwrap_or_else(|e| e.into_inner()) = Value::Array(
                targets
                    .iter()
                    .filter(|t| t["health"] != "up")
                    .map(|t| json!([t["scrapeUrl"], t["lastError"]]))
                    .collect(),
            );
            targets.len() == want_targets && targets.iter().all(|t| t["health"] == "up")
        }
    })
    .await;
    up.with_context(|| {
        format!(
            "want {want_targets} targets up; not up: {}",
            last.lock().map(|v| v.to_string()).unwrap_or_default()
        )
    })?;
    let rules = get_json(&http, &format!("{prom}/api/v1/rules")).await?;
    let groups = rules["data"]["groups"].as_array().map_or(0, |g| g.len());
    anyhow::ensure!(
        groups == want_groups,
        "Prometheus loaded {groups} rule groups, alerts/ has {want_groups}"
    );

    // 4 + 5. The bad canary is rolled back through haproxy:9999 by the
    //    observer, which keeps its decisions in PostgreSQL and reads
    //    Prometheus. Traffic through the gateway feeds the analysis.
    let observer = stack.url("observer", 8080)?;
    let runtime_api = stack.resolve("haproxy:9999").context("haproxy address")?;
    let load = {
        let (http, gateway) = (http.clone(), gateway.clone());
        tokio::spawn(async move {
            for i in 0..6000u32 {
                let _ = http
                    .post(format!("{gateway}/v1/todos"))
                    .header("x-user-id", format!("load-{}", i % 7))
                    .json(&json!({"title": format!("load {i}")}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let rolled_back = devstack::wait_until(
        "the bad canary rolled back",
        Duration::from_secs(150),
        || {
            let url = format!("{observer}/api/v1/canaries/command-service");
            let (http, status) = (http.clone(), status.clone());
            async move {
                let Ok(v) = get_json(&http, &url).await else {
                    return false;
                };
                let done = v.to_string().contains("rolled_back");
                *status.lock().unwrap_or_else(|e| e.into_inner()) = v;
                done
            }
        },
    )
    .await;
    rolled_back.with_context(|| {
        format!(
            "canary status: {}",
            status.lock().map(|v| v.to_string()).unwrap_or_default()
        )
    })?;
    let weight = haproxy_weight(&runtime_api, "command/canary").await?;
    anyhow::ensure!(
        weight == 0,
        "canary weight after rollback is {weight}, want 0"
    );
    let decisions = get_json(
        &http,
        &format!("{observer}/api/v1/canaries/command-service/decisions"),
    )
    .await?;
    anyhow::ensure!(
        decisions.to_string().contains("rollback") || decisions.to_string().contains("rolled_back"),
        "no rollback decision in the log (PostgreSQL): {decisions}"
    );
    let slos = get_json(&http, &format!("{observer}/api/v1/slos")).await?;
    anyhow::ensure!(
        !slos.to_string().contains("backend_down"),
        "the observer cannot query Prometheus by its compose name: {slos}"
    );

    // 6. Alertmanager delivers a page to the pager (which shares its
    //    network, as in compose) with the generated routing.
    let am = stack.url("alertmanager", 9093)?;
    let alertname = format!("ComposeParity{}", std::process::id());
    http.post(format!("{am}/api/v2/alerts"))
        .json(
            &json!([{"labels": {"alertname": alertname, "severity": "page", "slo": "parity"},
                        "annotations": {"summary": "compose parity test page"}}]),
        )
        .send()
        .await?
        .error_for_status()?;
    let pager = stack.url("pager", 9095)?;
    devstack::wait_until("the page at the pager", Duration::from_secs(90), || {
        let url = format!("{pager}/api/notifications");
        let http = http.clone();
        let alertname = alertname.clone();
        async move {
            get_json(&http, &url).await.is_ok_and(|v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .any(|n| n["receiver"] == "oncall" && n.to_string().contains(&alertname))
            })
        }
    })
    .await?;
    // The observer pages through alertmanager:9093 itself: the canary's
    // 30 % errors (sent to it directly, as another container on the
    // network would) burn the command service's availability SLO, and the
    // observer's native evaluation posts the page.
    let canary = stack.url("command-service-canary", 8080)?;
    for i in 0..400u32 {
        let _ = http
            .post(format!("{canary}/v1/todos"))
            .header("x-user-id", "burn")
            .json(&json!({"title": format!("burn {i}")}))
            .send()
            .await;
    }
    let metrics_url = format!("{observer}/metrics");
    let am_calls = |outcome: &'static str| {
        let (http, url) = (http.clone(), metrics_url.clone());
        async move {
            let text = http.get(&url).send().await.ok()?.text().await.ok()?;
            Some(
                text.lines()
                    .filter(|l| {
                        l.starts_with("dependency_calls_total{")
                            && l.contains("dependency=\"alertmanager\"")
                            && l.contains(&format!("outcome=\"{outcome}\""))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>(),
            )
        }
    };
    devstack::wait_until(
        "the observer to post to alertmanager:9093",
        Duration::from_secs(120),
        || async { am_calls("ok").await.is_some_and(|n| n >= 1.0) },
    )
    .await?;
    let failed = am_calls("failed").await.unwrap_or(-1.0);
    anyhow::ensure!(
        failed == 0.0,
        "the observer's calls to alertmanager:9093 failed {failed} times"
    );
    load.abort();

    // 7. Grafana's provisioned datasources point at name:port pairs that are
    //    compose services listening there.
    let grafana = stack
        .project
        .service("grafana")
        .context("grafana service")?;
    let mut checked = 0;
    for v in &grafana.volumes {
        if !v
            .target
            .starts_with("/etc/grafana/provisioning/datasources")
        {
            continue;
        }
        let devstack::compose::file::VolumeSource::Bind(src) = &v.source else {
            continue;
        };
        let files: Vec<PathBuf> = if src.is_dir() {
            std::fs::read_dir(src)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect()
        } else {
            vec![src.clone()]
        };
        for f in files {
            let doc: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(&f)?)?;
            for ds in doc["datasources"].as_sequence().into_iter().flatten() {
                let url = ds["url"]
                    .as_str()
                    .with_context(|| format!("{}: datasource without url", f.display()))?;
                let host_port = url
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .with_context(|| format!("{}: url {url}", f.display()))?;
                let addr = stack.resolve(host_port).with_context(|| {
                    format!("{}: {url}: no compose service {host_port}", f.display())
                })?;
                tokio::net::TcpStream::connect(&addr)
                    .await
                    .with_context(|| {
                        format!("{}: {url}: nothing listens on {host_port}", f.display())
                    })?;
                checked += 1;
            }
        }
    }
    anyhow::ensure!(checked >= 4, "only {checked} datasources checked");
    Ok(())
}
