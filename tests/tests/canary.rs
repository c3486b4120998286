//! Acceptance 1–6 of the canary issue, each against real processes started
//! here: PostgreSQL, the tansu broker, a stable and a canary command service
//! (the canary with fault flags), HAProxy in front of both, Prometheus
//! scraping both, the observer (canary controller) and `todoctl`.
//!
//! Load is generated through HAProxy at 50 requests/s. The canary spec uses
//! quick steps (20 → 50 → 100%, 2 s intervals, 40 requests per step) so a
//! whole rollout fits in seconds. The scenarios run one at a time: each
//! starts its own stack and two cores cannot run several side by side
//! without distorting latencies.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use devstack::haproxy::{BACKEND, CANARY, STABLE};
use devstack::{free_port, wait_until};
use serde_json::Value;
use system_tests::rollouts::{CanaryApi, Layout, Rig, RigOptions, todoctl};

const NAME: &str = "command-service";
const RATE: f64 = 50.0;

struct Harness {
    rig: Rig,
}

impl Harness {
    /// Everything up, canary at 0% and warmed up, load running; no spec yet.
    async fn start(canary_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_with(canary_env, &[]).await
    }

    async fn start_with(
        canary_env: &[(&str, &str)],
        observer_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut oenv = vec![
            ("OBSERVER_PROMETHEUS_TIMEOUT_MS", "500"),
            ("OBSERVER_PROMETHEUS_RETRIES", "1"),
            ("OBSERVER_AUTH_MODE", "dev"),
        ];
        oenv.extend_from_slice(observer_env);
        let rig = Rig::start(RigOptions {
            layout: Layout::Canary,
            versions: ["stable", "canary"],
            candidate_env: canary_env,
            warm: true,
            observer_env: &oenv,
            load_rate: RATE,
        })
        .await?;
        Ok(Self { rig })
    }

    fn api(&self) -> CanaryApi<'_> {
        self.rig.canary_api(NAME)
    }

    async fn status(&self) -> anyhow::Result<Value> {
        self.api().status().await
    }

    /// Oldest first.
    async fn decisions(&self) -> anyhow::Result<Vec<Value>> {
        self.api().decisions().await
    }

    async fn wait_phase(&self, phase: &str, timeout: Duration) -> anyhow::Result<Value> {
        self.api().wait_phase(phase, timeout).await
    }

    fn observer_url(&self) -> String {
        self.rig.observer.base_url()
    }

    /// Deploy: write the canary spec; returns once the observer has started
    /// the rollout.
    async fn deploy(&self, min_requests: u64) -> anyhow::Result<()> {
        let spec = format!(
            "name: {NAME}\ntarget: command-service\nstable: {BACKEND}/{STABLE}\ncanary: {BACKEND}/{CANARY}\n\
             stable_version: stable\ncanary_version: canary\n\
             driver:\n  haproxy:\n    runtime_api: {}\n\
             steps: [20, 50, 100]\ninterval_secs: 2\nmax_duration_secs: 600\n\
             analysis:\n  min_requests: {min_requests}\n  latency_threshold_seconds: 0.1\n",
            self.rig.gw.runtime_api()
        );
        std::fs::write(self.rig.spec_dir.path().join("command-service.yaml"), spec)?;
        wait_until(
            "the observer to start the rollout",
            Duration::from_secs(30),
            || async {
                self.status()
                    .await
                    .is_ok_and(|v| v["rollout"]["phase"].is_string())
            },
        )
        .await
    }

    async fn canary_weight(&self) -> anyhow::Result<u32> {
        let w = self
            .rig
            .gw
            .command(&format!("get weight {BACKEND}/{CANARY}"))
            .await?;
        w.split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("get weight answered {w:?}"))
    }

    /// Requests HAProxy sent to (stable, canary) while `n` more requests go
    /// through it.
    async fn traffic_split(&self, n: u64) -> anyhow::Result<(u64, u64)> {
        let before = self.rig.gw.served().await?;
        // The load keeps running; wait until it has sent n more requests.
        let target = self.load_total() + n;
        wait_until(
            "load to send more requests",
            Duration::from_secs(30),
            || {
                let done = self.load_total() >= target;
                async move { done }
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await; // in-flight ones land
        let after = self.rig.gw.served().await?;
        let d = |s: &str| after.get(s).copied().unwrap_or(0) - before.get(s).copied().unwrap_or(0);
        Ok((d(STABLE), d(CANARY)))
    }

    fn load_total(&self) -> u64 {
        self.rig.load.stats.sent()
    }
}

fn verdicts(decisions: &[Value]) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d["action"] == "analysis")
        .map(|d| d["verdict"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Acceptance 1: a healthy canary under load is promoted through every
/// step to 100%, and `todoctl canary status --wait` exits 0.
#[tokio::test]
async fn healthy_canary_is_promoted_through_every_step() -> anyhow::Result<()> {
    let h = Harness::start(&[]).await?;
    h.deploy(40).await?;
    let url = h.observer_url();
    let (code, out, err) = todoctl(&[
        "canary",
        "status",
        NAME,
        "--wait",
        "--wait-timeout-secs",
        "120",
        "--observer-url",
        &url,
    ])
    .await?;
    let decisions = h.decisions().await?;
    assert_eq!(code, 0, "status --wait: {out}{err}\n{decisions:#?}");
    assert!(out.contains("succeeded"), "{out}");
    let v = verdicts(&decisions);
    assert_eq!(
        v.iter().filter(|v| *v == "promote").count(),
        2,
        "20 → 50 → 100: {v:?}"
    );
    assert_eq!(v.last().map(String::as_str), Some("complete"), "{v:?}");
    assert!(!v.iter().any(|v| v == "rollback"), "{v:?}");
    // Every step's weight reached HAProxy, in order.
    let weights: Vec<i64> = decisions
        .iter()
        .filter_map(|d| d["weight_after"].as_i64())
        .fold(Vec::new(), |mut acc, w| {
            if acc.last() != Some(&w) {
                acc.push(w);
            }
            acc
        });
    assert_eq!(weights, [20, 50, 100], "{decisions:#?}");
    assert_eq!(h.canary_weight().await?, 100);
    let (stable, canary) = h.traffic_split(100).await?;
    assert_eq!(stable, 0, "all traffic on the canary after success");
    assert!(canary >= 100);
    Ok(())
}

/// Acceptance 2 and 6: 10% injected 5xx at 50 requests/s is rolled back,
/// HAProxy sends the canary nothing afterwards, and `todoctl canary explain`
/// shows the values and statistic of the decision as stored in Postgres.
#[tokio::test]
async fn failing_canary_is_rolled_back_and_explained() -> anyhow::Result<()> {
    let (otlp, spans) = system_tests::otlp::otlp_receiver().await?;
    let h = Harness::start_with(
        &[("FAULT_ERROR_RATE", "0.1")],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)],
    )
    .await?;
    let deployed = Instant::now();
    h.deploy(40).await?;
    let v = h
        .wait_phase("rolled_back", Duration::from_secs(120))
        .await?;
    let detection = deployed.elapsed();
    println!(
        "10% errors at {RATE} requests/s: rolled back {:.1} s after deploy ({})",
        detection.as_secs_f64(),
        v["last_decision"]["reason"]
    );
    assert!(
        detection < Duration::from_secs(60),
        "detection took {detection:?}"
    );
    assert_eq!(h.canary_weight().await?, 0);
    let (stable, canary) = h.traffic_split(100).await?;
    assert_eq!(
        canary, 0,
        "HAProxy sent {canary} requests to the canary after rollback"
    );
    assert!(stable >= 100, "stable served {stable}");
    let errors_before = h.rig.load.stats.server_errors.load(Ordering::Relaxed);
    assert!(errors_before > 0, "the canary did fail some requests");

    // The decision is in Postgres, append-only.
    let pool = h.rig.stack.pool().await?;
    let (id, verdict, statistic): (i64, String, sqlx::types::Json<Value>) = sqlx::query_as(
        "SELECT id, verdict, statistic FROM canary_decisions WHERE action = 'analysis' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(verdict, "rollback");
    let refused = sqlx::query("UPDATE canary_decisions SET verdict = 'promote' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the decision log must refuse updates");

    // explain: human text and JSON, matching the stored row.
    let url = h.observer_url();
    let (code, out, err) = todoctl(&["canary", "explain", NAME, "--observer-url", &url]).await?;
    assert_eq!(
        code, 11,
        "explain of a rolled-back canary exits 11: {out}{err}"
    );
    for needle in [
        "errors LLR",
        "latency LLR",
        "rollback at",
        "burn rate",
        "stable",
        "canary",
    ] {
        assert!(out.contains(needle), "explain lacks {needle:?}:\n{out}");
    }
    let (_, json, _) = todoctl(&[
        "canary",
        "explain",
        NAME,
        "--observer-url",
        &url,
        "--output",
        "json",
    ])
    .await?;
    let j: Value = serde_json::from_str(&json)?;
    assert_eq!(j["last_analysis"]["id"], id);
    assert_eq!(j["last_analysis"]["statistic"], statistic.0);
    let llr = statistic.0["error_llr"].as_f64().unwrap_or(f64::NAN);
    assert!(
        out.contains(&format!("{llr:.2}")),
        "explain shows the stored error LLR {llr:.2}:\n{out}"
    );
    assert!(j["last_analysis"]["observed"]["canary"]["errors"].as_u64() > Some(0));

    // The decision is also a span (its trace id stored with the row) and a
    // metric.
    let trace_id = j["last_analysis"]["trace_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(trace_id.len(), 32, "decision without a trace id: {j:#}");
    wait_until("the canary.analysis span", Duration::from_secs(30), || {
        let seen =
            spans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(svc, name, _, t)| {
                    svc == "observer" && name == "canary.analysis" && *t == trace_id
                });
        async move { seen }
    })
    .await?;
    let metrics = h.rig.text(&format!("{url}/metrics")).await?;
    let page = h.rig.text(&format!("{url}/")).await?;
    assert!(
        page.contains("data-canary=\"command-service\"")
            && page.contains("data-value=\"rolled_back\""),
        "status page shows the rollout:\n{page}"
    );
    for line in [
        "canary_decisions_total{canary=\"command-service\",verdict=\"rollback\"} 1",
        "canary_weight_percent{canary=\"command-service\"} 0",
        "canary_phase{canary=\"command-service\",phase=\"rolled_back\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    Ok(())
}

/// Acceptance 3: +200 ms on every canary request is rolled back by the
/// latency test.
#[tokio::test]
async fn slow_canary_is_rolled_back() -> anyhow::Result<()> {
    let h = Harness::start(&[("FAULT_LATENCY_MS", "200")]).await?;
    let deployed = Instant::now();
    h.deploy(40).await?;
    let v = h
        .wait_phase("rolled_back", Duration::from_secs(120))
        .await?;
    println!(
        "+200 ms: rolled back {:.1} s after deploy",
        deployed.elapsed().as_secs_f64()
    );
    let reason = v["last_decision"]["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("latency"), "{reason}");
    assert_eq!(h.canary_weight().await?, 0);
    Ok(())
}

/// Acceptance 4: Prometheus stops during analysis → paused, never rolled
/// back, weights unchanged; analysis resumes when Prometheus is back.
#[tokio::test]
async fn metrics_outage_pauses_and_resumes() -> anyhow::Result<()> {
    let mut h = Harness::start(&[]).await?;
    // Never enough evidence to promote: the rollout stays at its first step.
    h.deploy(1_000_000).await?;
    wait_until("a first analysis", Duration::from_secs(60), || async {
        h.decisions()
            .await
            .is_ok_and(|d| verdicts(&d).iter().any(|v| v == "hold"))
    })
    .await?;
    assert_eq!(h.canary_weight().await?, 20);

    h.rig.prom.kill()?;
    let killed_at = h.decisions().await?.len();
    wait_until("a paused decision", Duration::from_secs(30), || async {
        h.decisions()
            .await
            .is_ok_and(|d| d[killed_at..].iter().any(|d| d["verdict"] == "pause"))
    })
    .await?;
    // Several intervals of outage: still progressing, weight held.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = h.status().await?;
    assert_eq!(v["rollout"]["phase"], "progressing", "{v:#}");
    assert_eq!(h.canary_weight().await?, 20);
    let during: Vec<Value> = h.decisions().await?[killed_at..].to_vec();
    assert!(
        during.iter().all(|d| d["verdict"] == "pause"),
        "only pauses during the outage: {during:#?}"
    );
    assert!(
        during.iter().all(|d| d["observed"]["backend"] == "down"),
        "{during:#?}"
    );

    h.rig.prom.restart().await?;
    let back_at = h.decisions().await?.len();
    wait_until("analysis to resume", Duration::from_secs(60), || async {
        h.decisions()
            .await
            .is_ok_and(|d| d[back_at..].iter().any(|d| d["verdict"] == "hold"))
    })
    .await?;
    let v = h.status().await?;
    assert_eq!(v["rollout"]["phase"], "progressing");
    assert!(
        !h.decisions()
            .await?
            .iter()
            .any(|d| d["verdict"] == "rollback"),
        "a monitoring outage never rolls back"
    );
    Ok(())
}

/// Acceptance 5: `todoctl rollback` during analysis puts all traffic on
/// stable within 5 s, twice with the same result, recorded with who ran it.
#[tokio::test]
async fn todoctl_rollback_is_quick_idempotent_and_recorded() -> anyhow::Result<()> {
    let h = Harness::start(&[]).await?;
    h.deploy(1_000_000).await?;
    wait_until(
        "the canary at its first step",
        Duration::from_secs(60),
        || async { h.canary_weight().await.is_ok_and(|w| w == 20) },
    )
    .await?;
    let url = h.observer_url();
    let args = [
        "rollback",
        NAME,
        "--observer-url",
        &url,
        "--as",
        "alice-oncall",
        "--reason",
        "bad dashboard",
        "--output",
        "json",
    ];
    let t = Instant::now();
    let (code, out, err) = todoctl(&args).await?;
    assert_eq!(code, 0, "{out}{err}");
    wait_until("weight 0", Duration::from_secs(5), || async {
        h.canary_weight().await.is_ok_and(|w| w == 0)
    })
    .await?;
    let took = t.elapsed();
    println!("todoctl rollback: all traffic on stable after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let first: Value = serde_json::from_str(&out)?;
    assert_eq!(first["rollout"]["phase"], "aborted");
    assert_eq!(first["rollout"]["weight"], 0);

    let (code, out2, err) = todoctl(&args).await?;
    assert_eq!(code, 0, "second rollback: {out2}{err}");
    let second: Value = serde_json::from_str(&out2)?;
    assert_eq!(second["rollout"]["phase"], "aborted");
    assert_eq!(second["rollout"]["weight"], 0);
    assert_eq!(h.canary_weight().await?, 0);
    let (_, canary) = h.traffic_split(100).await?;
    assert_eq!(canary, 0);

    let rows = h.decisions().await?;
    let rollbacks: Vec<&Value> = rows.iter().filter(|d| d["action"] == "rollback").collect();
    assert_eq!(rollbacks.len(), 2, "{rows:#?}");
    for r in &rollbacks {
        assert_eq!(r["actor"], "alice-oncall");
        assert_eq!(r["weight_after"], 0);
        assert!(
            r["reason"].as_str().unwrap_or("").contains("bad dashboard"),
            "{r}"
        );
    }
    // The analysis does not resume after an abort.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = h.decisions().await?;
    assert_eq!(after.len(), rows.len(), "no decisions after the abort");

    // Scripts: status exits 11 once rolled back; actions on a finished
    // rollout are refused with exit 10; an unreachable observer is exit 12;
    // none of them is clap's usage error (2) or a plain error (1).
    let (code, _, _) = todoctl(&["canary", "status", NAME, "--observer-url", &url]).await?;
    assert_eq!(code, 11);
    let (code, _, err) = todoctl(&["canary", "promote", NAME, "--observer-url", &url]).await?;
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("409"), "{err}");
    let (code, _, _) = todoctl(&[
        "canary",
        "status",
        "--observer-url",
        &format!("http://127.0.0.1:{}", free_port()?),
    ])
    .await?;
    assert_eq!(code, 12);
    let (code, _, err) = todoctl(&["canary", "status", "--no-such-flag"]).await?;
    assert_eq!(code, 2, "a typo is a usage error: {err}");
    // Actions need a caller (401) with the operator role (403).
    let r = h
        .rig
        .http
        .post(format!("{url}/api/v1/canaries/{NAME}/pause"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = h
        .rig
        .http
        .post(format!("{url}/api/v1/canaries/{NAME}/pause"))
        .header("x-user-id", "mallory")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("operator"));

    // Every action, allowed or refused, is in the audit trail.
    let pool = h.rig.stack.pool().await?;
    wait_until("the audit rows", Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_log WHERE service = 'observer'")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n >= 5)
    })
    .await?;
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT actor, action, outcome FROM audit_log WHERE service = 'observer' ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    let action = "POST /api/v1/canaries/{name}/{action}".to_string();
    for want in [
        ("alice-oncall".to_string(), action.clone(), 200),
        ("anonymous".to_string(), action.clone(), 401),
        ("mallory".to_string(), action.clone(), 403),
    ] {
        assert!(rows.contains(&want), "{want:?} not in {rows:#?}");
    }
    assert!(
        rows.iter().any(|(_, _, o)| *o == 409),
        "the refused promote is audited: {rows:#?}"
    );
    Ok(())
}
