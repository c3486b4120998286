//! The generated Alertmanager config on a real Alertmanager: pages reach the
//! on-call webhook, tickets the ticket webhook, and a lower tier is inhibited
//! while a higher tier fires for the same SLO (but not for another SLO).
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    try_request(port, method, path, body).expect("request to alertmanager")
}

/// One HTTP/1.0 exchange; an I/O error (e.g. a reset while the server is
/// still starting) is returned, so readiness checks can retry it.
fn try_request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((
        status,
        buf.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

/// A webhook receiver standing in for the pager and the ticket system.
fn webhook(received: Arc<Mutex<Vec<(String, Value)>>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            // read headers, then Content-Length bytes of body
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

fn alert(slo: &str, severity: &str, tier: &str) -> Value {
    let name = format!(
        "{}BurnRate{}",
        slo::compile::camel(slo),
        if severity == "page" { "Page" } else { "Ticket" }
    );
    json!({ "labels": { "alertname": name, "slo": slo, "service": "command-service", "severity": severity, "tier": tier } })
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A real Alertmanager running the generated config, its webhooks pointed at `hook`.
struct Running {
    _am: Killed,
    _dir: tempfile::TempDir,
    port: u16,
}

fn start(hook: u16) -> Running {
    let bin = common::require_tool("prometheus-alertmanager");
    let slos = slo::validate::load_dir(&common::repo_root().join("slo")).expect("specs");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = slo::compile::to_yaml(&slo::alertmanager::config_for(
        &slos,
        &common::receivers(),
        &slo::receivers::Target::Compose,
    ))
    .expect("yaml")
    .replace(
        "http://127.0.0.1:9095/",
        &format!("http://127.0.0.1:{hook}/"),
    )
    .replace("group_wait: 30s", "group_wait: 1s");
    std::fs::write(dir.path().join("am.yml"), cfg).expect("config");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let am = Killed(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("am.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    wait_for("alertmanager readiness", || {
        try_request(port, "GET", "/-/ready", "").is_ok_and(|(status, _)| status == 200)
    });
    Running {
        _am: am,
        _dir: dir,
        port,
    }
}

/// (state, number of inhibiting alerts) of the first alert whose labels include `labels`.
fn state_of(port: u16, labels: &[(&str, &str)]) -> (String, usize) {
    let (_, body) = request(port, "GET", "/api/v2/alerts", "");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .find(|x| labels.iter().all(|(k, val)| x["labels"][*k] == *val))
        .map(|x| {
            (
                x["status"]["state"].as_str().unwrap_or("").to_string(),
                x["status"]["inhibitedBy"].as_array().map_or(0, Vec::len),
            )
        })
        .unwrap_or_default()
}

#[test]
fn pages_and_tickets_route_and_lower_tiers_are_inhibited() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let hook = webhook(received.clone());
    let running = start(hook);
    let port = running.port;

    let a = "command-api-availability";
    let b = "command-api-latency";
    let alerts = json!([
        alert(a, "page", "1"),
        alert(a, "ticket", "3"),
        alert(b, "ticket", "3")
    ]);
    let (status, body) = request(port, "POST", "/api/v2/alerts", &alerts.to_string());
    assert_eq!(status, 200, "{body}");

    let notified = |path: &str, slo: &str| {
        received
            .lock()
            .expect("lock")
            .iter()
            .any(|(p, v)| p == path && v["commonLabels"]["slo"] == slo)
    };
    wait_for("page for A at the on-call webhook", || {
        notified("/alerts/oncall", a)
    });
    wait_for("ticket for B at the ticket webhook", || {
        notified("/alerts/ticket", b)
    });

    // A's ticket (tier 3) is suppressed by A's tier 1; B's ticket is not.
    let state = |slo: &str, severity: &str| state_of(port, &[("slo", slo), ("severity", severity)]);
    wait_for("A's ticket to be inhibited", || {
        state(a, "ticket") == ("suppressed".into(), 1)
    });
    assert_eq!(state(b, "ticket").0, "active");
    assert_eq!(state(a, "page").0, "active");
    assert!(
        !notified("/alerts/ticket", a),
        "an inhibited ticket reached the ticket webhook"
    );
    assert!(
        !notified("/alerts/oncall", b),
        "a ticket reached the on-call webhook"
    );
}

/// The observer down explains the alerts computed from its metrics: they are
/// suppressed, while an unrelated target's TargetDown is not.
#[test]
fn observer_down_inhibits_the_alerts_derived_from_the_observer() {
    let hook = webhook(Arc::new(Mutex::new(Vec::new())));
    let running = start(hook);
    let port = running.port;
    let ops = |name: &str, severity: &str, extra: &[(&str, &str)]| {
        let mut labels =
            json!({ "alertname": name, "severity": severity, "category": "operations" });
        for (k, v) in extra {
            labels[*k] = json!(v);
        }
        json!({ "labels": labels })
    };
    let alerts = json!([
        ops(
            "ObserverDown",
            "page",
            &[("job", "observer"), ("instance", "observer:8080")]
        ),
        ops(
            "ConsumerGroupStalled",
            "page",
            &[("group", "query-service")]
        ),
        ops(
            "TargetDown",
            "ticket",
            &[("job", "observer"), ("instance", "observer:8080")]
        ),
        ops(
            "TargetDown",
            "ticket",
            &[("job", "query-service"), ("instance", "query-service:8080")]
        ),
        json!({ "labels": { "alertname": "QueryConsumerLagNoData", "slo": "query-consumer-lag", "severity": "ticket", "tier": "no-data" } }),
    ]);
    let (status, body) = request(port, "POST", "/api/v2/alerts", &alerts.to_string());
    assert_eq!(status, 200, "{body}");
    for labels in [
        &[("alertname", "ConsumerGroupStalled")][..],
        &[("alertname", "QueryConsumerLagNoData")][..],
        &[("alertname", "TargetDown"), ("job", "observer")][..],
    ] {
        wait_for(&format!("{labels:?} to be inhibited"), || {
            state_of(port, labels) == ("suppressed".into(), 1)
        });
    }
    assert_eq!(
        state_of(
            port,
            &[("alertname", "TargetDown"), ("job", "query-service")]
        )
        .0,
        "active"
    );
    assert_eq!(state_of(port, &[("alertname", "ObserverDown")]).0, "active");
}
