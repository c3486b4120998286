//! Acceptance 2–5 of the observer (issue 5), each against real servers
//! started here: Prometheus (scraping synthetic counters served by this
//! test), Alertmanager (with this test's webhook as the pager and the ticket
//! queue), the tansu broker, and headless Chromium for the status page.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// Request rates (per second) of the synthetic services; changed live.
#[derive(Default)]
struct Traffic {
    cmd_ok: AtomicU64,
    cmd_err: AtomicU64,
    /// Also serve query-service, freshness and lag series (every SLO kind).
    extras: AtomicBool,
}

impl Traffic {
    fn set(&self, ok: f64, err: f64) {
        self.cmd_ok.store(ok.to_bits(), Ordering::SeqCst);
        self.cmd_err.store(err.to_bits(), Ordering::SeqCst);
    }
}

/// Serves counters that integrate the current rates over time.
fn serve_metrics(traffic: Arc<Traffic>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = Instant::now();
        let (mut ok, mut err) = (0.0f64, 0.0f64);
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            ok += f64::from_bits(traffic.cmd_ok.load(Ordering::SeqCst)) * dt;
            err += f64::from_bits(traffic.cmd_err.load(Ordering::SeqCst)) * dt;
            let (ok_n, err_n) = (ok.floor(), err.floor());
            let h = "http_server_request_duration_seconds";
            let l = "service=\"command-service\",route=\"/v1/todos\",method=\"POST\",version=\"stable\"";
            let mut body = String::new();
            for (class, n) in [("2xx", ok_n), ("5xx", err_n)] {
                body.push_str(&format!("{h}_count{{{l},status_class=\"{class}\"}} {n}\n"));
                for le in ["0.1", "0.25", "+Inf"] {
                    body.push_str(&format!(
                        "{h}_bucket{{{l},status_class=\"{class}\",le=\"{le}\"}} {n}\n"
                    ));
                }
            }
            if traffic.extras.load(Ordering::SeqCst) {
                let t = start.elapsed().as_secs_f64();
                let n = |rate: f64| (t * rate).floor();
                let q = "service=\"query-service\",route=\"/v1/todos\",method=\"GET\",version=\"stable\"";
                let (qok, qerr) = (n(90.0), n(1.0));
                body.push_str(&format!("{h}_count{{{q},status_class=\"2xx\"}} {qok}\n{h}_count{{{q},status_class=\"5xx\"}} {qerr}\n"));
                for (le, share) in [("0.1", 0.7), ("0.25", 0.9), ("+Inf", 1.0)] {
                    body.push_str(&format!(
                        "{h}_bucket{{{q},status_class=\"2xx\",le=\"{le}\"}} {}\n",
                        (qok * share).floor()
                    ));
                }
                let total = n(25.0);
                body.push_str(&format!("projection_freshness_seconds_bucket{{service=\"query-service\",version=\"stable\",le=\"1\"}} {}\n", (total * 0.97).floor()));
                body.push_str(&format!("projection_freshness_seconds_count{{service=\"query-service\",version=\"stable\"}} {total}\n"));
                let lag = if (t as u64 / 4).is_multiple_of(2) {
                    5.0
                } else {
                    45.0
                };
                body.push_str(&format!("kafka_consumergroup_lag_seconds{{group=\"query-service\",topic=\"todo-events\",partition=\"0\"}} {lag}\n"));
            }
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// The pager and the ticket queue: Alertmanager's webhook posts land here.
fn webhook(received: Received) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                        if let Ok(v) = serde_json::from_str::<Value>(body) {
                            received.lock().expect("lock").push((path, v));
                        }
                        break;
                    }
                }
            }
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

/// (receiver path, alertname, status) of every alert notified so far.
fn notified(r: &Received) -> Vec<(String, String, String, Value)> {
    r.lock()
        .expect("lock")
        .iter()
        .flat_map(|(path, v)| {
            v["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |a| {
                    (
                        path.clone(),
                        a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        a["status"].as_str().unwrap_or("").to_string(),
                        a["labels"].clone(),
                    )
                })
        })
        .collect()
}

fn alertmanager_config(hook: u16) -> String {
    format!(
        "route:\n  receiver: ticket\n  group_by: [alertname, slo, tier]\n  group_wait: 500ms\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n    - receiver: pager\n      matchers: ['severity=\"page\"']\nreceivers:\n  - name: pager\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/pager\n        send_resolved: true\n  - name: ticket\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/ticket\n        send_resolved: true\n"
    )
}

/// The generated rules, with timeslice groups evaluated every second (as
/// crates/slo/tests/real_prometheus.rs does) so slices accumulate quickly.
fn generated_rules(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo_root().join("alerts")).expect("alerts dir") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().ends_with(".rules.yaml") {
            let text = std::fs::read_to_string(&p)
                .expect("rules")
                .replace("interval: 1m", "interval: 1s");
            let dst = dir.join(p.file_name().expect("name"));
            std::fs::write(&dst, text).expect("write");
            out.push(dst);
        }
    }
    assert!(out.len() >= 2, "generated rule files missing");
    out
}

fn log_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("observer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("log dir");
    d
}

async fn spawn_observer(name: &str, env: &[(&str, String)]) -> devstack::ServiceProcess {
    spawn_observer_on(devstack::free_port().expect("port"), name, env).await
}

async fn spawn_observer_on(
    port: u16,
    name: &str,
    env: &[(&str, String)],
) -> devstack::ServiceProcess {
    let mut e: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    e.push(("OBSERVER_LISTEN_ADDR".into(), format!("127.0.0.1:{port}")));
    devstack::ServiceProcess::spawn("observer", port, &e, &log_dir(name))
        .await
        .expect("observer")
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json")
}

async fn prom_query(client: &reqwest::Client, prom: &str, q: &str, at: Option<f64>) -> Value {
    let mut form = vec![("query".to_string(), q.to_string())];
    if let Some(t) = at {
        form.push(("time".into(), format!("{t:.3}")));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlenc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let v: Value = client
        .post(format!("{prom}/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].clone()
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn slo_view<'a>(snap: &'a Value, name: &str) -> &'a Value {
    snap["slos"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("{name} missing in {snap}"))
}

/// Acceptance 2: every window's error ratio and burn rate from the observer
/// equals the generated recording rule's value at the same timestamp (1e-6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_slo_values_equal_the_recording_rules_on_a_real_prometheus() {
    let traffic = Arc::new(Traffic::default());
    traffic.set(40.0, 3.0);
    traffic.extras.store(true, Ordering::SeqCst);
    let target = serve_metrics(traffic.clone());
    let rules_dir = tempfile_dir("rules");
    let observer_port = devstack::free_port().expect("port");
    let prom = devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
        // Prometheus also scrapes the observer: its OpenMetrics must parse.
        targets: vec![
            format!("127.0.0.1:{target}"),
            format!("127.0.0.1:{observer_port}"),
        ],
        rule_files: generated_rules(&rules_dir),
        ..Default::default()
    })
    .await
    .expect("prometheus");
    let observer = spawn_observer_on(
        observer_port,
        "parity",
        &[
            (
                "OBSERVER_SLO_DIR",
                repo_root().join("slo").display().to_string(),
            ),
            ("OBSERVER_PROMETHEUS_URL", prom.url()),
            ("OBSERVER_SLO_EVAL_INTERVAL_MS", "1000".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let slos: Vec<String> = [
        "command-api-availability",
        "command-api-latency",
        "query-api-availability",
        "query-api-latency",
        "projection-freshness",
        "query-consumer-lag",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Readiness: 12 recorded 5m samples for every SLO.
    devstack::wait_until(
        "12 recorded samples per SLO",
        Duration::from_secs(120),
        || {
            let (client, url, slos) = (client.clone(), prom.url(), slos.clone());
            async move {
                for s in &slos {
                    let r = prom_query(
                        &client,
                        &url,
                        &format!("slo:sli_error:ratio_rate5m{{slo=\"{s}\"}}[30s]"),
                        None,
                    )
                    .await;
                    if r[0]["values"].as_array().map_or(0, Vec::len) < 12 {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await
    .expect("recorded samples");
    // Rule expressions, to re-evaluate when a late scrape explains a difference.
    let rules = get_json(&client, &format!("{}/api/v1/rules", prom.url())).await;
    let mut exprs: BTreeMap<(String, String), String> = BTreeMap::new();
    for g in rules["data"]["groups"].as_array().expect("groups") {
        let slo = g["name"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("slo-")
            .to_string();
        for r in g["rules"].as_array().expect("rules") {
            if r["type"] == "recording" {
                exprs.insert(
                    (slo.clone(), r["name"].as_str().unwrap_or("").into()),
                    r["query"].as_str().unwrap_or("").into(),
                );
            }
        }
    }
    let (mut checked, mut late, mut nonzero) = (0, 0, 0);
    for s in &slos {
        let samples = prom_query(
            &client,
            &prom.url(),
            &format!("slo:sli_error:ratio_rate5m{{slo=\"{s}\"}}[30s]"),
            None,
        )
        .await;
        let values = samples[0]["values"].as_array().expect("values").clone();
        for point in &values[values.len() - 4..] {
            let ts = point[0].as_f64().expect("ts");
            let snap = get_json(
                &client,
                &format!("{}/api/v1/slos?at={ts:.3}", observer.base_url()),
            )
            .await;
            assert_eq!(snap["backend"]["status"], "up", "{snap}");
            let view = slo_view(&snap, s);
            let objective = view["objective"].as_f64().expect("objective");
            for w in view["windows"].as_array().expect("windows") {
                let record = w["record"].as_str().expect("record");
                let ours = w["error_ratio"].as_f64().expect("ratio");
                let r = prom_query(
                    &client,
                    &prom.url(),
                    &format!("{record}{{slo=\"{s}\"}}"),
                    Some(ts),
                )
                .await;
                let recorded: f64 = r[0]["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("f64");
                let rec_ts = r[0]["value"][0].as_f64().expect("ts");
                assert!((rec_ts - ts).abs() < 1e-6);
                if (ours - recorded).abs() > 1e-6 {
                    // A scrape stamped just before the rule ran but committed
                    // after it: the rule could not see it; the same expression
                    // re-evaluated now must give the observer's value.
                    let expr = &exprs[&(s.clone(), record.to_string())];
                    let re = prom_query(&client, &prom.url(), expr, Some(ts)).await;
                    let re: f64 = re[0]["value"][1]
                        .as_str()
                        .expect("value")
                        .parse()
                        .expect("f64");
                    assert!(
                        (ours - re).abs() <= 1e-6,
                        "{s} {record} at {ts}: observer {ours}, rule {recorded}, re-evaluated {re}"
                    );
                    late += 1;
                } else {
                    let burn = w["burn_rate"].as_f64().expect("burn");
                    assert!(
                        (burn - recorded / (1.0 - objective)).abs() <= 1e-6,
                        "{s} {record} burn {burn} vs {}",
                        recorded / (1.0 - objective)
                    );
                }
                if recorded > 0.0 {
                    nonzero += 1;
                }
                checked += 1;
            }
        }
    }
    // The observer's own series reached Prometheus through a real scrape.
    devstack::wait_until("observer metrics scraped", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), prom.url());
        async move {
            let r = prom_query(
                &client,
                &url,
                "slo_burn_rate{slo=\"command-api-availability\",window=\"1h\"}",
                None,
            )
            .await;
            let up = prom_query(&client, &url, "slo_backend_up", None).await;
            r.as_array().is_some_and(|a| !a.is_empty()) && up[0]["value"][1] == "1"
        }
    })
    .await
    .expect("observer /metrics scraped by Prometheus");
    println!(
        "parity: {checked} values checked, {nonzero} non-zero, {late} explained by late scrapes"
    );
    assert!(checked >= 150, "{checked}");
    assert!(
        nonzero * 2 >= checked,
        "synthetic data should burn budget: {nonzero}/{checked}"
    );
    assert!(late * 10 <= checked, "{late} late of {checked}");
}

fn tempfile_dir(name: &str) -> PathBuf {
    log_dir(name)
}

/// Acceptance 3: a burn above 14.4× pages (and resolves after recovery); a
/// ticket-only burn does not page. Labels equal the generated rules' alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_pages_through_alertmanager_on_fast_burn_and_resolves() {
    let traffic = Arc::new(Traffic::default());
    // Phase A: 0.4 % errors: above the ticket thresholds (0.1 %, 0.3 %), below
    // the page thresholds (0.6 %, 1.44 %).
    traffic.set(1000.0, 4.0);
    let target = serve_metrics(traffic.clone());
    let prom = devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
        targets: vec![format!("127.0.0.1:{target}")],
        ..Default::default()
    })
    .await
    .expect("prometheus");
    let received: Received = Arc::default();
    let hook = webhook(received.clone());
    let am = devstack::alertmanager::Alertmanager::start(&alertmanager_config(hook))
        .await
        .expect("alertmanager");
    let observer = spawn_observer(
        "paging",
        &[
            (
                "OBSERVER_SLO_DIR",
                repo_root().join("slo").display().to_string(),
            ),
            ("OBSERVER_PROMETHEUS_URL", prom.url()),
            ("OBSERVER_ALERTMANAGER_URL", am.url()),
            ("OBSERVER_SLO_EVAL_INTERVAL_MS", "500".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let wait_for = |receiver: &'static str, alert: &'static str, status: &'static str| {
        let received = received.clone();
        async move {
            devstack::wait_until(
                &format!("{receiver} to get {alert} {status}"),
                Duration::from_secs(90),
                || {
                    let received = received.clone();
                    async move {
                        notified(&received)
                            .iter()
                            .any(|(p, a, s, _)| p == receiver && a == alert && s == status)
                    }
                },
            )
            .await
        }
    };
    wait_for("/ticket", "CommandApiAvailabilityBurnRateTicket", "firing")
        .await
        .expect("ticket");
    let snap = get_json(&client, &format!("{}/api/v1/slos", observer.base_url())).await;
    let v = slo_view(&snap, "command-api-availability");
    assert_eq!(v["state"], "burning", "{v}");
    assert!(
        v["firing"]
            .as_array()
            .expect("firing")
            .iter()
            .all(|f| f["severity"] == "ticket"),
        "{v}"
    );
    assert_eq!(
        slo_view(&snap, "query-api-availability")["state"],
        "no_traffic"
    );
    // Several evaluations and notification intervals later: still no page.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        notified(&received).iter().all(|(p, _, _, _)| p != "/pager"),
        "a ticket-only burn paged: {:?}",
        notified(&received)
    );

    // Phase B: 9 % errors → burn ≫ 14.4 → page (tier 1).
    traffic.set(1000.0, 100.0);
    wait_for("/pager", "CommandApiAvailabilityBurnRatePage", "firing")
        .await
        .expect("page");
    let page = notified(&received)
        .into_iter()
        .find(|(p, a, _, l)| {
            p == "/pager" && a == "CommandApiAvailabilityBurnRatePage" && l["tier"] == "1"
        })
        .expect("tier 1 page");
    let keys: Vec<&str> = page
        .3
        .as_object()
        .expect("labels")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec!["alertname", "service", "severity", "slo", "team", "tier"],
        "labels as in alerts/command-service.rules.yaml"
    );
    assert_eq!(page.3["severity"], "page");
    assert_eq!(page.3["slo"], "command-api-availability");
    let snap = get_json(&client, &format!("{}/api/v1/slos", observer.base_url())).await;
    let burn_1h = slo_view(&snap, "command-api-availability")["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .find(|w| w["window"] == "1h")
        .and_then(|w| w["burn_rate"].as_f64())
        .expect("1h burn");
    assert!(burn_1h > 14.4, "{burn_1h}");

    // Phase C: recovery. A flood of good requests brings every window's ratio
    // under the page thresholds.
    traffic.set(400_000.0, 0.0);
    wait_for("/pager", "CommandApiAvailabilityBurnRatePage", "resolved")
        .await
        .expect("page resolved");
    let pages: Vec<_> = notified(&received)
        .into_iter()
        .filter(|(p, _, _, _)| p == "/pager")
        .map(|(_, a, s, l)| (a, s, l["slo"].clone()))
        .collect();
    assert!(
        pages
            .iter()
            .all(|(a, _, slo)| a == "CommandApiAvailabilityBurnRatePage"
                && slo == "command-api-availability"),
        "only the command API page: {pages:?}"
    );
    println!("pager got: {pages:?}");
}

/// Acceptance 4: Prometheus killed mid-run → backend reported down, the
/// monitoring alert raised, nothing else paged; recovery on restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_outage_raises_the_monitoring_alert_and_pages_nothing() {
    let traffic = Arc::new(Traffic::default());
    traffic.set(200.0, 0.0);
    let target = serve_metrics(traffic.clone());
    let mut prom =
        devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
            targets: vec![format!("127.0.0.1:{target}")],
            ..Default::default()
        })
        .await
        .expect("prometheus");
    let received: Received = Arc::default();
    let hook = webhook(received.clone());
    let am = devstack::alertmanager::Alertmanager::start(&alertmanager_config(hook))
        .await
        .expect("alertmanager");
    let observer = spawn_observer(
        "outage",
        &[
            (
                "OBSERVER_SLO_DIR",
                repo_root().join("slo").display().to_string(),
            ),
            ("OBSERVER_PROMETHEUS_URL", prom.url()),
            ("OBSERVER_ALERTMANAGER_URL", am.url()),
            ("OBSERVER_SLO_EVAL_INTERVAL_MS", "500".into()),
            ("OBSERVER_PROMETHEUS_TIMEOUT_MS", "500".into()),
            ("OBSERVER_PROMETHEUS_RETRIES", "1".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = observer.base_url();
    let state_is = |backend: &'static str, state: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let s = get_json(&client, &format!("{base}/api/v1/slos")).await;
            s["backend"]["status"] == backend
                && slo_view(&s, "command-api-availability")["state"] == state
        }
    };
    devstack::wait_until(
        "backend up, command API ok",
        Duration::from_secs(60),
        || state_is("up", "ok"),
    )
    .await
    .expect("healthy first");

    prom.kill().expect("kill prometheus");
    devstack::wait_until("backend reported down", Duration::from_secs(30), || {
        state_is("down", "backend_down")
    })
    .await
    .expect("down reported");
    let snap = get_json(&client, &format!("{base}/api/v1/slos")).await;
    assert!(
        snap["slos"]
            .as_array()
            .expect("slos")
            .iter()
            .all(|s| s["state"] == "backend_down"),
        "{snap}"
    );
    assert!(snap["backend"]["error"].is_string(), "{snap}");
    devstack::wait_until("monitoring alert notified", Duration::from_secs(30), || {
        let received = received.clone();
        async move {
            notified(&received)
                .iter()
                .any(|(_, a, s, _)| a == "ObserverPrometheusUnreachable" && s == "firing")
        }
    })
    .await
    .expect("monitoring alert");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("slo_backend_up 0"), "{metrics}");

    prom.restart().await.expect("restart prometheus");
    devstack::wait_until("backend up again", Duration::from_secs(60), || {
        state_is("up", "ok")
    })
    .await
    .expect("recovered");
    devstack::wait_until("monitoring alert resolved", Duration::from_secs(30), || {
        let received = received.clone();
        async move {
            notified(&received)
                .iter()
                .any(|(_, a, s, _)| a == "ObserverPrometheusUnreachable" && s == "resolved")
        }
    })
    .await
    .expect("resolved");
    let all = notified(&received);
    assert!(
        all.iter().all(|(p, _, _, _)| p != "/pager"),
        "nothing may page: {all:?}"
    );
    assert!(
        all.iter()
            .all(|(_, a, _, _)| a == "ObserverPrometheusUnreachable"),
        "only the monitoring alert: {all:?}"
    );
}
