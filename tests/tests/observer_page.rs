//! Acceptance 5 of the observer (issue 5): the status page renders in
//! headless Chromium with the live numbers. The observer runs against a real
//! broker (a group with a known lag) and a real Prometheus (synthetic
//! traffic); the test reads the numbers from the DOM Chromium produced and
//! checks them against the API and against what it produced itself.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bus::rdkafka::ClientConfig;
use bus::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use bus::rdkafka::producer::FutureRecord;
use serde_json::Value;

const TOPIC: &str = "page-topic";
const GROUP: &str = "page-group";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// Command-service counters growing at 500 ok/s and 1 error/s.
fn serve_metrics() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let start = Instant::now();
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let t = start.elapsed().as_secs_f64();
            let h = "http_server_request_duration_seconds";
            let l = "service=\"command-service\",route=\"/v1/todos\",method=\"POST\",version=\"stable\"";
            let mut body = String::new();
            for (class, n) in [("2xx", (t * 500.0).floor()), ("5xx", t.floor())] {
                body.push_str(&format!("{h}_count{{{l},status_class=\"{class}\"}} {n}\n"));
                for le in ["0.25", "+Inf"] {
                    body.push_str(&format!(
                        "{h}_bucket{{{l},status_class=\"{class}\",le=\"{le}\"}} {n}\n"
                    ));
                }
            }
            // The projection's freshness histogram, as the group's service reports it.
            let f = "projection_freshness_seconds";
            let n = (t * 10.0).floor();
            body.push_str(&format!(
                "{f}_bucket{{service=\"{GROUP}\",version=\"stable\",le=\"0.05\"}} 0\n{f}_bucket{{service=\"{GROUP}\",version=\"stable\",le=\"0.1\"}} {n}\n{f}_bucket{{service=\"{GROUP}\",version=\"stable\",le=\"+Inf\"}} {n}\n{f}_count{{service=\"{GROUP}\",version=\"stable\"}} {n}\n"
            ));
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `chromium --headless --dump-dom`: the DOM after parsing (no JS on the page).
async fn dump_dom(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "observer-chromium-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                &format!("--user-data-dir={}", profile.display()),
                "--dump-dom",
                url,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90 s")
    .expect("chromium is required (apt-get install chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The `<tr …>` element whose attribute `attr` is `value`.
fn row<'a>(dom: &'a str, attr: &str, value: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr {attr}=\"{value}\">"))
        .unwrap_or_else(|| panic!("row {attr}={value} not in DOM:\n{dom}"));
    let end = dom[start..].find("</tr>").expect("row end") + start;
    &dom[start..end]
}

/// `data-value` of the cell `data-field="field"` in `html`.
fn field(html: &str, field: &str) -> String {
    let at = html
        .find(&format!("data-field=\"{field}\""))
        .unwrap_or_else(|| panic!("{field} not in {html}"));
    let rest = &html[at..];
    let v = rest.find("data-value=\"").expect("data-value") + "data-value=\"".len();
    rest[v..v + rest[v..].find('"').expect("quote")].to_string()
}

fn text_of(html: &str, field: &str) -> String {
    let at = html
        .find(&format!("data-field=\"{field}\""))
        .expect("field");
    let rest = &html[at..];
    let s = rest.find('>').expect(">") + 1;
    rest[s..s + rest[s..].find('<').expect("<")].to_string()
}

fn id_value(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("#{id} missing"));
    let rest = &dom[at..];
    let v = rest.find("data-value=\"").expect("data-value") + "data-value=\"".len();
    rest[v..v + rest[v..].find('"').expect("quote")].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_live_numbers_in_headless_chromium() {
    let broker = devstack::Broker::start().await.expect("broker");
    broker.create_topics(&[(TOPIC, 1)]).await.expect("topic");
    let mut settings = bus::KafkaSettings::new(broker.brokers(), "observer-page-test");
    settings.linger_ms = 0;
    let producer = settings.producer().expect("producer");
    let mut stamps = Vec::new();
    let produce = async |i: usize| {
        let ts = chrono::Utc::now().timestamp_millis();
        let d = producer
            .send(
                FutureRecord::to(TOPIC)
                    .payload("x")
                    .key(&format!("{i}"))
                    .partition(0)
                    .timestamp(ts),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
        (d.offset, ts)
    };
    for i in 0..10 {
        stamps.push(produce(i).await);
    }
    // The group consumes the 10 records, commits and leaves.
    {
        let c: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.brokers())
            .set("group.id", GROUP)
            .set("session.timeout.ms", "6000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        c.subscribe(&[TOPIC]).expect("subscribe");
        for _ in 0..10 {
            let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
                .await
                .expect("records within 60 s")
                .expect("record");
            c.store_offset_from_message(&m).expect("store");
        }
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
    }
    // 7 more nobody consumes: lag 7, the oldest unconsumed record is offset 10.
    for i in 10..17 {
        stamps.push(produce(i).await);
    }
    let oldest_unconsumed_ts = stamps.iter().find(|(o, _)| *o == 10).expect("offset 10").1;

    let target = serve_metrics();
    let prom = devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
        targets: vec![format!("127.0.0.1:{target}")],
        ..Default::default()
    })
    .await
    .expect("prometheus");
    let port = devstack::free_port().expect("port");
    let logs = std::env::temp_dir().join(format!("observer-page-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("logs");
    let env: Vec<(String, String)> = [
        ("OBSERVER_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("OBSERVER_KAFKA_BROKERS", broker.brokers()),
        ("OBSERVER_LAG_POLL_INTERVAL_MS", "500".into()),
        ("OBSERVER_LAG_STATUS_WINDOW_MS", "2000".into()),
        ("OBSERVER_TOPICS", format!("[\"{TOPIC}\"]")),
        (
            "OBSERVER_SLO_DIR",
            repo_root().join("slo").display().to_string(),
        ),
        ("OBSERVER_PROMETHEUS_URL", prom.url()),
        ("OBSERVER_SLO_EVAL_INTERVAL_MS", "3000".into()),
        // The daily report's cron, every 2 s here.
        ("OBSERVER_REPORT_SCHEDULE", "*/2 * * * * *".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let observer = devstack::ServiceProcess::spawn("observer", port, &env, &logs)
        .await
        .expect("observer");
    let base = observer.base_url();
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("GET")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    devstack::wait_until(
        "SLO evaluated with traffic and group lag seen",
        Duration::from_secs(60),
        || async {
            let s = get("/api/v1/slos").await;
            let l = get("/api/v1/lag").await;
            let slo_ok = s["slos"].as_array().is_some_and(|a| {
                a.iter().any(|v| {
                    v["name"] == "command-api-availability"
                        && v["state"] != "no_traffic"
                        && v["budget_remaining"].is_number()
                })
            });
            let lag_ok = l["groups"].as_array().is_some_and(|a| {
                a.iter().any(|g| {
                    g["group"] == GROUP && g["lag_messages"] == 7 && g["lag_seconds"].is_number()
                })
            });
            slo_ok && lag_ok
        },
    )
    .await
    .expect("observer has live numbers");

    // The page and the API agree when they come from the same evaluation.
    let mut attempts = 0;
    let (dom, slos) = loop {
        attempts += 1;
        let before = get("/api/v1/slos").await;
        let dom = dump_dom(&format!("{base}/")).await;
        let after = get("/api/v1/slos").await;
        let dom_eval = id_value(&dom, "slo-evaluated-at");
        if before["evaluated_at"] == after["evaluated_at"]
            && format!("{:.3}", after["evaluated_at"].as_f64().expect("t")) == dom_eval
        {
            break (dom, after);
        }
        assert!(attempts < 10, "page and API never from the same evaluation");
    };
    assert!(dom.contains("<h1>Observer status</h1>"), "{dom}");
    assert!(dom.contains("data-canary=\"none\""), "canary section");

    // SLO row: live numbers equal the API's.
    let v = slos["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|v| v["name"] == "command-api-availability")
        .expect("slo");
    let r = row(&dom, "data-slo", "command-api-availability");
    let budget: f64 = field(r, "budget_remaining").parse().expect("budget");
    assert!(
        (budget - v["budget_remaining"].as_f64().expect("b")).abs() < 1e-9,
        "{r}"
    );
    let burn_1h: f64 = field(r, "burn_1h").parse().expect("burn");
    let api_burn = v["windows"]
        .as_array()
        .expect("w")
        .iter()
        .find(|w| w["window"] == "1h")
        .expect("1h")["burn_rate"]
        .as_f64()
        .expect("burn");
    assert!((burn_1h - api_burn).abs() < 1e-9, "{r}");
    // 500 ok/s and 1 error/s: burn ≈ (1/501)/0.001 ≈ 2.
    assert!((1.0..3.0).contains(&burn_1h), "{burn_1h}");
    assert_eq!(text_of(r, "state"), v["state"].as_str().expect("state"));
    let no_traffic = row(&dom, "data-slo", "query-api-availability");
    assert_eq!(text_of(no_traffic, "state"), "no_traffic");
    assert!(
        dom.contains("id=\"backend-status\" data-backend=\"up\""),
        "backend up on the page"
    );

    // Group row: lag from the DOM equals what this test produced.
    let g = row(&dom, "data-group", GROUP);
    assert_eq!(field(g, "lag_messages"), "7", "{g}");
    assert_eq!(field(g, "members"), "0", "{g}");
    let observed_at: i64 = id_value(&dom, "lag-observed-at")
        .parse()
        .expect("observed at");
    let lag_secs: f64 = field(g, "lag_seconds").parse().expect("lag seconds");
    let expected = (observed_at - oldest_unconsumed_ts) as f64 / 1000.0;
    assert!(
        (lag_secs - expected).abs() <= 0.001,
        "lag seconds {lag_secs} vs {expected}"
    );
    let status = text_of(g, "status");
    // No members, offset unchanged for longer than the 2 s window, lag > 0.
    assert_eq!(status, "STOP", "{g}");
    // Event-time freshness of the group's projection, next to its lag.
    devstack::wait_until(
        "freshness p99 reported",
        Duration::from_secs(30),
        || async {
            let l = get("/api/v1/lag").await;
            l["groups"].as_array().is_some_and(|a| {
                a.iter().any(|g| {
                    g["group"] == GROUP
                        && g["projection_freshness_p99_seconds"]
                            .as_f64()
                            .is_some_and(|v| v > 0.05 && v <= 0.1)
                })
            })
        },
    )
    .await
    .expect("freshness p99 in (0.05, 0.1] s");

    // The cron-scheduled error-budget report ran and logged its line.
    devstack::wait_until("daily report logged", Duration::from_secs(20), || async {
        std::fs::read_to_string(observer.log_path())
            .unwrap_or_default()
            .contains("daily error-budget report")
    })
    .await
    .expect("report on schedule");
    let report = get("/api/v1/report").await;
    assert!(
        report["slos"].as_array().is_some_and(|a| a
            .iter()
            .any(|l| l["slo"] == "command-api-availability" && l["budget_remaining"].is_number())),
        "{report}"
    );
    println!(
        "page: budget {budget:.6}, burn 1h {burn_1h:.4}, group lag 7 msgs / {lag_secs:.3} s, status {status}"
    );
}
