//! One real canary rollout at a given error rate and traffic, timed: the
//! measurement behind the "real" column of docs/canary.md's detection table
//! (a benchmark, not a test; the tests assert behaviour in tests/canary.rs).
//!
//! Starts PostgreSQL, tansu, a stable and a canary command service (the
//! canary failing `ERROR_RATE` of its requests through its fault flag),
//! HAProxy in front of both, Prometheus (1 s scrapes) and the observer, then
//! sends `RATE` requests/s through HAProxy, deploys the local stack's spec
//! (10 → 25 → 50 → 100%, 10 s intervals, 50 requests per step) and prints
//! how long after the rollout started it was rolled back, and by what.
//!
//! `cargo build --workspace --bins && cargo run -p system-tests --example canary_detection -- ERROR_RATE RATE`

use std::time::{Duration, Instant};

use devstack::haproxy::{BACKEND, CANARY, STABLE};
use serde_json::Value;
use system_tests::rollouts::{Layout, Rig, RigOptions};

const NAME: &str = "command-service";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let error_rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.05);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10.0);
    anyhow::ensure!(rate > 0.0, "RATE must be positive");

    let fault = error_rate.to_string();
    let rig = Rig::start(RigOptions {
        layout: Layout::Canary,
        versions: ["stable", "canary"],
        candidate_env: &[("FAULT_ERROR_RATE", fault.as_str())],
        warm: false,
        observer_env: &[],
        load_rate: rate,
    })
    .await?;
    let (gw, http) = (&rig.gw, &rig.http);
    let spec = format!(
        "name: {NAME}\ntarget: command-service\nstable: {BACKEND}/{STABLE}\ncanary: {BACKEND}/{CANARY}\n\
         stable_version: stable\ncanary_version: canary\n\
         driver:\n  haproxy:\n    runtime_api: {}\n\
         steps: [10, 25, 50, 100]\ninterval_secs: 10\n\
         analysis:\n  min_requests: 50\n  latency_threshold_seconds: 0.1\n",
        gw.runtime_api()
    );
    std::fs::write(rig.spec_dir.path().join("command-service.yaml"), spec)?;
    let deployed = Instant::now();
    let base = rig.observer.base_url();
    let phase = loop {
        let v: Value = http
            .get(format!("{base}/api/v1/canaries/{NAME}"))
            .send()
            .await?
            .json()
            .await?;
        let p = v["rollout"]["phase"].as_str().unwrap_or("").to_string();
        if ["rolled_back", "succeeded", "aborted"].contains(&p.as_str()) {
            break p;
        }
        anyhow::ensure!(
            deployed.elapsed() < Duration::from_secs(900),
            "still {p} after 900 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let wall = deployed.elapsed().as_secs_f64();
    rig.load.stop();
    let rows: Vec<Value> = http
        .get(format!(
            "{base}/api/v1/canaries/{NAME}/decisions?limit=1000"
        ))
        .send()
        .await?
        .json()
        .await?;
    let at = |action: &str| {
        rows.iter()
            .find(|r| r["action"] == action)
            .and_then(|r| r["at"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let last = rows.first().cloned().unwrap_or_default();
    let since_start = match (at("start"), rows.first().and_then(|r| r["at"].as_str())) {
        (Some(s), Some(e)) => chrono::DateTime::parse_from_rfc3339(e)
            .map(|e| (e - s).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(f64::NAN),
        _ => f64::NAN,
    };
    let canary_requests: u64 = rows
        .iter()
        .filter(|r| r["action"] == "analysis")
        .filter_map(|r| r["observed"]["canary"]["requests"].as_u64())
        .sum();
    println!(
        "error_rate {error_rate} rate {rate} req/s: {phase} {since_start:.1} s after the rollout started ({wall:.1} s after the spec was written) at {}%, after {canary_requests} canary requests; {}",
        last["step_percent"],
        last["reason"].as_str().unwrap_or("")
    );
    Ok(())
}
