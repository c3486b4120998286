//! Loads the generated rules into a real Prometheus (child process, random
//! port, temp dir) that scrapes synthetic counters served by this test, then
//! checks every recording rule against the native Rust evaluator
//! (`slo::eval`, which re-implements Prometheus 2.x `increase()`) to 1e-9,
//! and runs every dashboard expression against the same server.
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use slo::model::{Budgeting, Query, Sli, Slo};

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Minimal HTTP/1.0 GET returning (status, body); enough for the Prometheus API.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn query(port: u16, q: &str, time: Option<f64>) -> Value {
    let mut path = format!("/api/v1/query?query={}", enc(q));
    if let Some(t) = time {
        path.push_str(&format!("&time={t:.3}"));
    }
    let (status, body) = get(port, &path).expect("query");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert!(
        status == 200 && v["status"] == "success",
        "query `{q}` failed: {status} {body}"
    );
    v["data"].clone()
}

/// Synthetic exposition: counters grow with wall time, lag flips every 4 s.
fn serve_metrics(stop: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let start = Instant::now();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut c) = conn else { continue };
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let t = start.elapsed().as_secs_f64();
            let n = |rate: f64| (t * rate).floor();
            let mut body = String::new();
            let h = "http_server_request_duration_seconds";
            for (svc, ok_rate, err_rate) in
                [("command-service", 40.0, 3.0), ("query-service", 90.0, 1.0)]
            {
                let l = format!(
                    "service=\"{svc}\",route=\"/v1/todos\",method=\"GET\",version=\"stable\""
                );
                let ok = n(ok_rate);
                let err = n(err_rate);
                body.push_str(&format!("{h}_count{{{l},status_class=\"2xx\"}} {ok}\n{h}_count{{{l},status_class=\"5xx\"}} {err}\n"));
                for (le, share) in [("0.1", 0.7), ("0.25", 0.9), ("+Inf", 1.0)] {
                    body.push_str(&format!(
                        "{h}_bucket{{{l},status_class=\"2xx\",le=\"{le}\"}} {}\n",
                        (ok * share).floor()
                    ));
                }
            }
            let fresh = "projection_freshness_seconds";
            let total = n(25.0);
            body.push_str(&format!(
                "{fresh}_bucket{{service=\"query-service\",version=\"stable\",le=\"1\"}} {}\n",
                (total * 0.97).floor()
            ));
            body.push_str(&format!(
                "{fresh}_count{{service=\"query-service\",version=\"stable\"}} {total}\n"
            ));
            let lag = if (t as u64 / 4).is_multiple_of(2) {
                5.0
            } else {
                45.0
            };
            body.push_str(&format!("kafka_consumergroup_lag_seconds{{group=\"query-service\",topic=\"todo-events\",partition=\"0\"}} {lag}\n"));
            body.push_str(&format!("kafka_consumergroup_lag_seconds{{group=\"query-service\",topic=\"todo-events\",partition=\"1\"}} {}\n", lag / 5.0));
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn start_prometheus(rules_dir: &Path, target_port: u16) -> Prometheus {
    let bin = common::require_tool("prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rule_files = Vec::new();
    for e in std::fs::read_dir(rules_dir.join("alerts")).expect("alerts") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().ends_with(".rules.yaml") {
            // Timeslice groups evaluate once per slice (1m); run them every
            // second here so the test gathers slices quickly. The maths is the same.
            let text = std::fs::read_to_string(&p)
                .expect("rules")
                .replace("interval: 1m", "interval: 1s");
            let dst = dir.path().join(p.file_name().expect("name"));
            std::fs::write(&dst, text).expect("write rules");
            rule_files.push(dst);
        }
    }
    let files: String = rule_files
        .iter()
        .map(|p| format!("  - {}\n", p.display()))
        .collect();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{files}scrape_configs:\n  - job_name: synthetic\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), cfg).expect("config");
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prom = Prometheus {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = get(port, "/-/ready") {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus not ready after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    prom
}

type Series = Vec<(i64, f64)>;

fn matrix(data: &Value) -> Vec<Series> {
    data["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    s["values"]
                        .as_array()
                        .map(|vs| {
                            vs.iter()
                                .map(|p| {
                                    let t = p[0].as_f64().unwrap_or(0.0);
                                    let v: f64 = p[1]
                                        .as_str()
                                        .and_then(|x| x.parse().ok())
                                        .unwrap_or(f64::NAN);
                                    ((t * 1000.0).round() as i64, v)
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `sum(increase(sel[w]))` at `ts` (ms); `drop_after` hides samples newer than
/// that timestamp (samples the rule could not have seen yet).
fn sum_increase(port: u16, q: &Query, w: &str, w_ms: i64, ts: i64, drop_after: i64) -> Option<f64> {
    let Query::Selector { metric, matchers } = q else {
        panic!("selector expected")
    };
    let sel = Query::render_selector(metric, matchers);
    let m = matrix(&query(
        port,
        &format!("{sel}[{w}]"),
        Some(ts as f64 / 1000.0),
    ));
    let visible: Vec<Series> = m
        .into_iter()
        .map(|s| s.into_iter().filter(|(t, _)| *t <= drop_after).collect())
        .collect();
    slo::eval::sum_increase(visible.iter().map(Vec::as_slice), ts - w_ms, ts)
}

fn expected_events(port: u16, slo: &Slo, w: &str, w_ms: i64, ts: i64, drop_after: i64) -> f64 {
    let Sli::Events {
        numerator,
        numerator_is_good,
        total,
        ..
    } = &slo.sli
    else {
        unreachable!()
    };
    let n = sum_increase(port, numerator, w, w_ms, ts, drop_after);
    let t = sum_increase(port, total, w, w_ms, ts, drop_after);
    slo::eval::occurrence_error_ratio(n, t, *numerator_is_good)
}

fn recorded(port: u16, metric: &str, slo: &str, last: usize) -> Series {
    let m = matrix(&query(
        port,
        &format!("{metric}{{slo=\"{slo}\"}}[20s]"),
        None,
    ));
    let s = m.into_iter().next().unwrap_or_default();
    s[s.len().saturating_sub(last)..].to_vec()
}

#[test]
fn recording_rules_match_an_independent_computation_and_dashboards_query_cleanly() {
    let root = common::repo_root();
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    let gen_dir = tempfile::tempdir().expect("tempdir");
    slo::generate::write_all(
        &slos,
        &slo::Receivers::demo(),
        &common::prices(),
        &slo::Options::default(),
        gen_dir.path(),
    )
    .expect("generate");
    let stop = Arc::new(AtomicBool::new(false));
    let target = serve_metrics(stop.clone());
    let prom = start_prometheus(gen_dir.path(), target);
    let port = prom.port;

    // Readiness: wait until every SLO has at least 12 recorded 5m samples.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = slos
            .iter()
            .all(|s| recorded(port, "slo:sli_error:ratio_rate5m", &s.name, 100).len() >= 12);
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recording rules produced no samples within 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut checked = 0;
    let mut late_scrapes = 0;
    let mut nonzero = 0;
    for s in &slos {
        let mut windows: Vec<(String, String, i64)> = s
            .alert_windows()
            .into_iter()
            .map(|w| {
                (
                    slo::compile::ratio_metric(w),
                    w.prom(),
                    w.as_secs() as i64 * 1000,
                )
            })
            .collect();
        windows.push((
            slo::compile::PERIOD_ERROR_RATIO.to_string(),
            s.window.nominal().prom(),
            s.window.nominal().as_secs() as i64 * 1000,
        ));
        for (metric, w, w_ms) in windows {
            let rec = recorded(port, &metric, &s.name, 5);
            assert!(!rec.is_empty(), "{metric} for {} missing", s.name);
            for (ts, got) in rec {
                let want = match (&s.sli, &s.budgeting) {
                    (Sli::Events { .. }, Budgeting::Occurrences) => {
                        let exact = expected_events(port, s, &w, w_ms, ts, ts);
                        if (exact - got).abs() <= 1e-9 {
                            exact
                        } else {
                            // A scrape stamped just before the evaluation may be
                            // committed just after it: the rule cannot see it.
                            late_scrapes += 1;
                            expected_events(port, s, &w, w_ms, ts, ts - 1000)
                        }
                    }
                    _ => {
                        let m = matrix(&query(
                            port,
                            &format!("{}{{slo=\"{}\"}}[{w}]", slo::compile::SLICE_BAD, s.name),
                            Some(ts as f64 / 1000.0),
                        ));
                        let v: Vec<f64> = m
                            .into_iter()
                            .next()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|p| p.1)
                            .collect();
                        if v.is_empty() {
                            0.0
                        } else {
                            v.iter().sum::<f64>() / v.len() as f64
                        }
                    }
                };
                assert!(
                    (want - got).abs() <= 1e-9,
                    "{metric}{{slo={}}} at {ts}: prometheus {got}, rust {want}",
                    s.name
                );
                if got > 0.0 {
                    nonzero += 1;
                }
                checked += 1;
            }
        }
        // The slice rule itself: worst partition's latest lag sample against the bound.
        if let Sli::ConsumerLag {
            group,
            topic,
            max_lag_seconds,
        } = &s.sli
        {
            for (ts, got) in recorded(port, slo::compile::SLICE_BAD, &s.name, 5) {
                let m = matrix(&query(
                    port,
                    &format!("{}[5m]", Sli::lag_selector(group, topic)),
                    Some(ts as f64 / 1000.0),
                ));
                let worst = m
                    .iter()
                    .filter_map(|s| s.last().map(|p| p.1))
                    .fold(f64::MIN, f64::max);
                let want = if worst > *max_lag_seconds { 1.0 } else { 0.0 };
                if (want - got).abs() > 1e-9 {
                    late_scrapes += 1;
                    continue;
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 200, "only {checked} values checked");
    assert!(
        nonzero >= checked / 2,
        "synthetic data should burn budget: {nonzero}/{checked}"
    );
    assert!(
        late_scrapes * 10 <= checked,
        "{late_scrapes} of {checked} values needed the late-scrape allowance"
    );

    // Every dashboard expression parses and evaluates without error.
    let mut exprs = BTreeMap::new();
    let dashboards =
        slo::dashboards::all(&slos, &slo::ops::Thresholds::default(), &common::prices())
            .expect("dashboards");
    // The seed's views are in the set whose queries run here.
    for view in ["business.json", "infrastructure.json", "cost.json"] {
        assert!(dashboards.contains_key(view), "{view} not queried");
    }
    for (name, text) in dashboards {
        let d: Value = serde_json::from_str(&text).expect("json");
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().into_iter().flatten() {
                exprs.insert(t["expr"].as_str().expect("expr").to_string(), name.clone());
            }
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            exprs.insert(a["expr"].as_str().expect("expr").to_string(), name.clone());
        }
    }
    assert!(exprs.len() > 50, "{}", exprs.len());
    for (e, dash) in &exprs {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$__range", "1h")
            .replace("$service", "command-service");
        let (status, body) = get(port, &format!("/api/v1/query?query={}", enc(&q))).expect("query");
        assert!(
            status == 200 && body.contains("\"status\":\"success\""),
            "{dash}: `{e}` failed: {body}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    println!(
        "checked {checked} recorded values ({late_scrapes} late scrapes), {} dashboard expressions",
        exprs.len()
    );
}
