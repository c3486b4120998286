//! Acceptance 5 of the observer (issue 5) and item 5 of issue 15: the status
//! pages render in headless Chromium with the live numbers and graphs. The
//! observer runs against a real broker (a group with a known lag), a real
//! Prometheus (synthetic traffic), and a canary controller (its decision log
//! in a real PostgreSQL, weights through a real HAProxy); the test reads the
//! numbers from the DOM Chromium produced and checks them against the API
//! and against what it produced itself . With `SCREENSHOT_DIR` set it also writes PNGs there
//! (`scripts/screenshots.sh`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bus::rdkafka::ClientConfig;
use bus::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use bus::rdkafka::producer::FutureRecord;
use serde_json::Value;
use system_tests::dom::{dump_dom, field, id_value, paths, row, screenshot, text_of};

const TOPIC: &str = "page-topic";
const GROUP: &str = "page-group";
const CANARY_NAME: &str = "page-canary";

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
    // A canary whose decision log lives in Postgres and whose weights go
    // through HAProxy (both servers are the metrics stand-in: only the
    // weights matter here).
    let pg = devstack::postgres::Postgres::start(devstack::postgres::Options::for_tests())
        .await
        .expect("postgres");
    let database_url = pg.create_database("observer").await.expect("database");
    let stand_in = format!("127.0.0.1:{target}");
    let haproxy = devstack::haproxy::Haproxy::start(&stand_in, &stand_in, 0)
        .await
        .expect("haproxy");
    let spec_dir = tempfile::Builder::new()
        .prefix("canary-specs-")
        .tempdir()
        .expect("spec dir");
    {
        use devstack::haproxy::{BACKEND, CANARY, STABLE};
        std::fs::write(
            spec_dir.path().join("page.yaml"),
            format!(
                "name: {CANARY_NAME}\ntarget: command-service\nstable: {BACKEND}/{STABLE}\ncanary: {BACKEND}/{CANARY}\n\
                 stable_version: stable\ncanary_version: canary\ndriver:\n  haproxy:\n    runtime_api: {}\n\
                 steps: [10, 50, 100]\ninterval_secs: 2\nmax_duration_secs: 600\n",
                haproxy.runtime_api()
            ),
        )
        .expect("canary spec");
    }
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
        ("OBSERVER_CANARY_DIR", spec_dir.path().display().to_string()),
        ("OBSERVER_DATABASE_URL", database_url),
        ("OBSERVER_AUTH_MODE", "dev".into()),
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
    assert!(
        dom.contains(&format!("<tr data-canary=\"{CANARY_NAME}\"")),
        "canary section"
    );

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

    // The SLO list's sparklines: the SLO with traffic has a line.
    let spark = row(&dom, "data-slo", "command-api-availability");
    let spark = system_tests::dom::element(spark, "data-field=\"sparkline\"", "</svg>");
    assert!(
        paths(spark).iter().all(|d| !d.is_empty()),
        "budget sparkline drawn: {spark}"
    );
    slo_page(&base).await;
    lag_page(&base, oldest_unconsumed_ts).await;
    canary_page(&base).await;
    if let Some(dir) = std::env::var_os("SCREENSHOT_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        for (path, file, height) in [
            ("/", "observer-status.png", 900),
            ("/slo/command-api-availability", "observer-slo.png", 1250),
            ("/lag", "observer-lag.png", 600),
            ("/canaries", "observer-canaries.png", 900),
        ] {
            screenshot(&format!("{base}{path}"), &dir.join(file), height).await;
        }
    }
}

async fn api(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .expect("GET")
        .json()
        .await
        .expect("json")
}

/// The `data-last` of the first `<path class="series">` in `html`: the value
/// its line ends at.
fn last_point(html: &str) -> f64 {
    system_tests::dom::attr_after(html, "class=\"series\"", "data-last")
        .parse()
        .unwrap_or_else(|e| panic!("data-last in {html}: {e}"))
}

/// One SLO's page: budget, burn rates per tier window and the tiers firing
/// equal the API's (same evaluation); the burn-down ends at the API's budget
/// remaining; request and error rates are drawn.
async fn slo_page(base: &str) {
    let name = "command-api-availability";
    let mut attempts = 0;
    let (dom, snap) = loop {
        attempts += 1;
        let before = api(base, "/api/v1/slos").await;
        let dom = dump_dom(&format!("{base}/slo/{name}")).await;
        let after = api(base, "/api/v1/slos").await;
        if before["evaluated_at"] == after["evaluated_at"]
            && format!("{:.3}", after["evaluated_at"].as_f64().expect("t"))
                == id_value(&dom, "slo-evaluated-at")
        {
            break (dom, after);
        }
        assert!(
            attempts < 10,
            "SLO page and API never from the same evaluation"
        );
    };
    let v = snap["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|v| v["name"] == name)
        .expect("slo");
    let budget: f64 = id_value(&dom, "budget-remaining").parse().expect("budget");
    let api_budget = v["budget_remaining"].as_f64().expect("budget");
    assert!(
        (budget - api_budget).abs() < 1e-9,
        "{budget} vs {api_budget}"
    );
    let burn = |w: &str| {
        v["windows"]
            .as_array()
            .expect("windows")
            .iter()
            .find(|x| x["window"] == w)
            .unwrap_or_else(|| panic!("window {w}"))["burn_rate"]
            .as_f64()
            .expect("burn")
    };
    let firing: Vec<u64> = v["firing"]
        .as_array()
        .expect("firing")
        .iter()
        .map(|f| f["tier"].as_u64().expect("tier"))
        .collect();
    let table = system_tests::dom::element(&dom, "id=\"burn-rates\"", "</table>");
    let tiers: Vec<&str> = table.split("<tr data-tier=\"").skip(1).collect();
    assert!(!tiers.is_empty(), "a row per tier: {table}");
    for t in tiers {
        let tier: u64 = t[..t.find('"').expect("quote")].parse().expect("tier");
        for cell in ["burn_long", "burn_short"] {
            let marker = format!("data-field=\"{cell}\"");
            let w = system_tests::dom::attr_after(t, &marker, "data-window");
            let shown: f64 = field(t, cell).parse().expect("burn");
            assert!((shown - burn(&w)).abs() < 1e-9, "tier {tier} {w}: {t}");
        }
        let threshold: f64 = field(t, "threshold").parse().expect("threshold");
        assert!(threshold >= 1.0, "no tier fires below budget pace: {t}");
        assert_eq!(
            field(t, "firing") == "true",
            firing.contains(&tier),
            "tier {tier} firing as the API says: {t}"
        );
    }
    let burn_down = system_tests::dom::element(&dom, "id=\"burn-down\"", "</figure>");
    assert!(
        paths(burn_down).iter().all(|d| !d.is_empty()),
        "{burn_down}"
    );
    // The burn-down's last point is what the API evaluates at that instant.
    let end = last_point(burn_down);
    let end_at = system_tests::dom::attr_after(burn_down, "class=\"series\"", "data-last-at");
    let then = api(base, &format!("/api/v1/slos?at={end_at}")).await;
    let then = then["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|v| v["name"] == name)
        .expect("slo")["budget_remaining"]
        .as_f64()
        .expect("budget");
    assert!(
        (end - then).abs() < 1e-6,
        "burn-down ends at {end}, API at {end_at}: {then}"
    );
    for id in ["requests", "errors"] {
        let fig = system_tests::dom::element(&dom, &format!("id=\"{id}\""), "</figure>");
        assert!(paths(fig).iter().all(|d| !d.is_empty()), "{fig}");
        assert!(last_point(fig) > 0.0, "{fig}");
    }
}

/// The lag page: the group's line ends at the lag its table row shows (one
/// snapshot), which is what the API computes for that snapshot.
async fn lag_page(base: &str, oldest_unconsumed_ts: i64) {
    let dom = dump_dom(&format!("{base}/lag")).await;
    let chart = system_tests::dom::element(&dom, "id=\"lag-seconds\"", "</figure>");
    let line = system_tests::dom::element(chart, &format!("data-series=\"{GROUP}\""), ">");
    let d = system_tests::dom::attr_after(line, "data-series", "d");
    assert!(d.contains('L'), "several snapshots drawn: {line}");
    let g = row(&dom, "data-group", GROUP);
    let shown: f64 = field(g, "lag_seconds").parse().expect("lag");
    let last: f64 = system_tests::dom::attr_after(line, "data-series", "data-last")
        .parse()
        .expect("last");
    assert!((shown - last).abs() < 1e-3, "{shown} vs {last}");
    let observed_at: i64 = id_value(&dom, "lag-observed-at").parse().expect("at");
    let expected = (observed_at - oldest_unconsumed_ts) as f64 / 1000.0;
    assert!((shown - expected).abs() <= 0.001, "{shown} vs {expected}");
    let l = api(base, "/api/v1/lag").await;
    let api_group = l["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|x| x["group"] == GROUP)
        .expect("group")
        .clone();
    assert_eq!(
        field(g, "lag_messages"),
        api_group["lag_messages"].to_string()
    );
}

/// The canary page: the weight equals the API's, the weight line steps
/// through the decisions, and every decision in the log is listed.
async fn canary_page(base: &str) {
    let http = reqwest::Client::new();
    let show = format!("{base}/api/v1/canaries/{CANARY_NAME}");
    devstack::wait_until("canary started at 10%", Duration::from_secs(30), || async {
        api(base, &format!("/api/v1/canaries/{CANARY_NAME}")).await["rollout"]["weight"] == 10
    })
    .await
    .expect("rollout started");
    let resp = http
        .post(format!("{show}/promote"))
        .header(
            "authorization",
            format!("Bearer {}", system_tests::OPERATOR_TOKEN),
        )
        .header("content-type", "application/json")
        .body(r#"{"reason":"page test"}"#)
        .send()
        .await
        .expect("promote");
    assert!(resp.status().is_success(), "promote: {}", resp.status());
    let decisions = api(
        base,
        &format!("/api/v1/canaries/{CANARY_NAME}/decisions?limit=200"),
    )
    .await;
    let view = api(base, &format!("/api/v1/canaries/{CANARY_NAME}")).await;
    let dom = dump_dom(&format!("{base}/canaries")).await;
    let section = system_tests::dom::element(
        &dom,
        &format!("<section data-canary=\"{CANARY_NAME}\""),
        "</section>",
    );
    assert_eq!(
        field(section, "weight"),
        view["rollout"]["weight"].to_string(),
        "{section}"
    );
    let chart = system_tests::dom::element(section, "class=\"chart\"", "</figure>");
    let d = system_tests::dom::attr_after(chart, "class=\"series\"", "d");
    assert!(d.contains('V'), "the weight steps up: {chart}");
    for dec in decisions.as_array().expect("decisions") {
        assert!(
            section.contains(&format!("<tr data-decision=\"{}\"", dec["id"])),
            "decision {} listed: {section}",
            dec["id"]
        );
    }
}
