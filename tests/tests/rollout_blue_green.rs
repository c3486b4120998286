//! Blue-green releases (issue 17, items 1–4), against real processes started
//! here: PostgreSQL, the tansu broker, a blue (stable) and a green (canary)
//! command service (green with fault flags), HAProxy with a user-facing
//! frontend (both servers, green at weight 0) and a preview frontend (green
//! only), Prometheus scraping both builds, the observer and `todoctl`.
//!
//! User load goes through the user frontend at 30 requests/s; the observer's
//! load hook sends the preview traffic itself. The spec analyses every 2 s
//! and passes green after 60 preview requests. The scenarios run one at a
//! time: each starts its own stack.

use std::time::{Duration, Instant};

use devstack::haproxy::{BACKEND, CANARY, PREVIEW, STABLE};
use devstack::{ServiceProcess, wait_until};
use serde_json::Value;
use system_tests::rollouts::{CanaryApi, Layout, Rig, RigOptions, todoctl};

const NAME: &str = "command-service";
const RATE: f64 = 30.0;

struct Harness {
    rig: Rig,
}

impl Harness {
    /// Everything up, all user traffic on blue, user load running; no spec yet.
    async fn start(green_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let rig = Rig::start(RigOptions {
            layout: Layout::BlueGreen,
            versions: ["blue", "green"],
            candidate_env: green_env,
            warm: true,
            observer_env: &[
                ("OBSERVER_PROMETHEUS_TIMEOUT_MS", "500"),
                ("OBSERVER_PROMETHEUS_RETRIES", "1"),
                ("OBSERVER_AUTH_MODE", "dev"),
            ],
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

    /// Deploy green: write the blue-green spec; returns once the observer
    /// has started the rollout.
    async fn deploy(&self, min_requests: u64, scale_down_delay_secs: u64) -> anyhow::Result<()> {
        let preview = self.rig.gw.preview_url().unwrap_or_default();
        let spec = format!(
            "name: {NAME}\ntarget: command-service\nstable: {BACKEND}/{STABLE}\ncanary: {BACKEND}/{CANARY}\n\
             stable_version: blue\ncanary_version: green\n\
             driver:\n  haproxy:\n    runtime_api: {}\n\
             strategy: blue_green\n\
             blue_green:\n  preview: {PREVIEW}/{CANARY}\n  scale_down_delay_secs: {scale_down_delay_secs}\n\
             \x20 load:\n    url: {preview}\n    rate: 20\n    duration_secs: 600\n    mix: [60, 25, 15, 0]\n\
             interval_secs: 2\nmax_duration_secs: 600\n\
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

    async fn restart_observer(&mut self) -> anyhow::Result<()> {
        self.rig.observer.kill().await?;
        let port = self.rig.observer.port;
        self.rig.observer = ServiceProcess::spawn(
            "observer",
            port,
            &self.rig.observer_env,
            self.rig.stack.log_dir(),
        )
        .await?;
        Ok(())
    }

    /// Wait for a `scale_down` decision of `side` (`stable` or `canary`).
    async fn wait_scale_down(&self, side: &str, timeout: Duration) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let d = self.decisions().await?;
            if let Some(found) = d
                .iter()
                .find(|d| d["action"] == "scale_down" && d["inputs"]["side"] == side)
            {
                return Ok(found.clone());
            }
            if started.elapsed() > timeout {
                anyhow::bail!("{side} not scaled down after {timeout:?}: {d:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The newest analysis decision: (id, canary requests in the step).
    async fn last_analysis(&self) -> anyhow::Result<Option<(i64, u64)>> {
        Ok(analyses(&self.decisions().await?).last().map(|a| {
            (
                a["id"].as_i64().unwrap_or(0),
                a["statistic"]["canary_requests_in_step"]
                    .as_u64()
                    .unwrap_or(0),
            )
        }))
    }

    async fn weight(&self, server: &str) -> anyhow::Result<u32> {
        let w = self
            .rig
            .gw
            .command(&format!("get weight {BACKEND}/{server}"))
            .await?;
        w.split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("get weight answered {w:?}"))
    }

    /// User requests HAProxy sent to (blue, green) while `n` more go through it.
    async fn user_split(&self, n: u64) -> anyhow::Result<(u64, u64)> {
        let before = self.rig.gw.served().await?;
        let target = self.rig.load.stats.sent() + n;
        wait_until(
            "user load to send more requests",
            Duration::from_secs(30),
            || {
                let done = self.rig.load.stats.sent() >= target;
                async move { done }
            },
        )
        .await?;
        let after = self.rig.gw.served().await?;
        let d = |s: &str| after.get(s).copied().unwrap_or(0) - before.get(s).copied().unwrap_or(0);
        Ok((d(STABLE), d(CANARY)))
    }

    /// User requests green has served since HAProxy started.
    async fn green_user_requests(&self) -> anyhow::Result<u64> {
        Ok(self
            .rig
            .gw
            .served()
            .await?
            .get(CANARY)
            .copied()
            .unwrap_or(0))
    }
}

fn analyses(decisions: &[Value]) -> Vec<&Value> {
    decisions
        .iter()
        .filter(|d| d["action"] == "analysis")
        .collect()
}

/// A good green passes on preview traffic alone, one switch sends every user
/// request to it, and blue is scaled down after `scale_down_delay_secs`.
#[tokio::test]
async fn good_green_switches_and_serves_user_traffic() -> anyhow::Result<()> {
    let h = Harness::start(&[]).await?;
    h.deploy(60, 3).await?;
    // Before the switch green has no user traffic: weight 0 at HAProxy.
    wait_until("a first analysis", Duration::from_secs(60), || async {
        h.decisions().await.is_ok_and(|d| !analyses(&d).is_empty())
    })
    .await?;
    assert_eq!(h.weight(CANARY).await?, 0);
    assert_eq!(
        h.green_user_requests().await?,
        0,
        "green served users before the switch"
    );

    let v = h.wait_phase("succeeded", Duration::from_secs(120)).await?;
    assert_eq!(v["rollout"]["weight"], 100, "{v:#}");
    assert!(
        v["rollout"]["blue_green"]["switched_at"].is_string(),
        "{v:#}"
    );
    let decisions = h.decisions().await?;
    let a = analyses(&decisions);
    let last = a.last().copied().cloned().unwrap_or_default();
    assert_eq!(last["verdict"], "complete", "{decisions:#?}");
    assert!(
        last["reason"].as_str().unwrap_or("").contains("switched"),
        "{last:#}"
    );
    // Green was analysed against blue on its preview requests, with the
    // same statistic as a canary, and never had a share of user traffic.
    assert!(
        last["observed"]["canary"]["requests"].as_u64() > Some(0),
        "{last:#}"
    );
    assert!(last["statistic"]["error_llr"].is_number(), "{last:#}");
    for d in &a[..a.len() - 1] {
        assert_eq!(d["weight_after"], 0, "{d:#}");
    }
    assert_eq!(last["weight_after"], 100);

    assert_eq!((h.weight(CANARY).await?, h.weight(STABLE).await?), (100, 0));
    let (blue, green) = h.user_split(60).await?;
    assert_eq!(blue, 0, "blue served users after the switch");
    assert!(green >= 55, "green served {green}");

    let d = h.wait_scale_down("stable", Duration::from_secs(30)).await?;
    assert!(d["reason"].as_str().unwrap_or("").contains("blue"), "{d:#}");
    assert_eq!(h.rig.gw.server_status(BACKEND, STABLE).await?, "MAINT");
    assert_ne!(h.rig.gw.server_status(BACKEND, CANARY).await?, "MAINT");

    let url = h.observer_url();
    let (code, out, err) = todoctl(&["rollout", "explain", NAME, "--observer-url", &url]).await?;
    assert_eq!(code, 0, "{out}{err}");
    for needle in [
        "blue_green",
        "switched     at",
        "scaled down  stable",
        "errors LLR",
    ] {
        assert!(out.contains(needle), "explain lacks {needle:?}:\n{out}");
    }
    let page = h.rig.text(&format!("{url}/")).await?;
    assert!(
        page.contains("data-canary=\"command-service\"")
            && page.contains("blue-green: switched")
            && page.contains("scale_down"),
        "status page shows the rollout and its last decision:\n{page}"
    );

    // A rollback after blue's scale-down brings blue back into service
    // (health-checked) before it gets the users again; then green goes.
    let (code, out, err) = todoctl(&[
        "rollback",
        NAME,
        "--observer-url",
        &url,
        "--as",
        "bob-oncall",
    ])
    .await?;
    assert_eq!(code, 0, "{out}{err}");
    // "UP", or "UP 1/3" while its health counter climbs back after maintenance.
    let blue_status = h.rig.gw.server_status(BACKEND, STABLE).await?;
    assert!(blue_status.starts_with("UP"), "{blue_status}");
    assert_eq!((h.weight(STABLE).await?, h.weight(CANARY).await?), (100, 0));
    let (blue, green) = h.user_split(60).await?;
    assert_eq!(green, 0);
    assert!(blue >= 55, "blue served {blue}");
    h.wait_scale_down("canary", Duration::from_secs(30)).await?;
    assert_eq!(h.rig.gw.server_status(BACKEND, CANARY).await?, "MAINT");
    Ok(())
}

/// A green that fails 30% of its requests never receives user traffic,
/// is rolled back on preview traffic and is scaled down.
#[tokio::test]
async fn bad_green_never_gets_user_traffic_and_is_scaled_down() -> anyhow::Result<()> {
    let h = Harness::start(&[("FAULT_ERROR_RATE", "0.3")]).await?;
    let deployed = Instant::now();
    h.deploy(60, 3).await?;
    let v = h
        .wait_phase("rolled_back", Duration::from_secs(120))
        .await?;
    println!(
        "30% errors on preview traffic: rolled back {:.1} s after deploy ({})",
        deployed.elapsed().as_secs_f64(),
        v["last_decision"]["reason"]
    );
    h.wait_scale_down("canary", Duration::from_secs(30)).await?;
    assert_eq!(
        h.green_user_requests().await?,
        0,
        "green served user requests"
    );
    assert_eq!(h.weight(CANARY).await?, 0);
    assert_eq!(h.rig.gw.server_status(BACKEND, CANARY).await?, "MAINT");
    assert_eq!(h.rig.gw.server_status(PREVIEW, CANARY).await?, "MAINT");
    assert_ne!(h.rig.gw.server_status(BACKEND, STABLE).await?, "MAINT");
    let decisions = h.decisions().await?;
    assert!(
        decisions.iter().all(|d| d["weight_after"] == 0),
        "{decisions:#?}"
    );
    let (blue, green) = h.user_split(60).await?;
    assert_eq!(green, 0);
    assert!(blue >= 55, "blue served {blue}");
    // Scaled down once, not every tick.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let downs = h
        .decisions()
        .await?
        .iter()
        .filter(|d| d["action"] == "scale_down")
        .count();
    assert_eq!(downs, 1);
    // On the canary dashboard's decisions panel (canary_decisions_total by verdict).
    let metrics = h.rig.text(&format!("{}/metrics", h.observer_url())).await?;
    for line in [
        "canary_decisions_total{canary=\"command-service\",verdict=\"rollback\"} 1",
        "canary_decisions_total{canary=\"command-service\",verdict=\"scale_down\"} 1",
        "canary_weight_percent{canary=\"command-service\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    Ok(())
}

/// A slow green (+200 ms) is rolled back by the latency test, without user traffic.
#[tokio::test]
async fn slow_green_never_gets_user_traffic() -> anyhow::Result<()> {
    let h = Harness::start(&[("FAULT_LATENCY_MS", "200")]).await?;
    let v = h.wait_phase_after_deploy().await?;
    let reason = v["last_decision"]["reason"].as_str().unwrap_or("");
    let analysis = v["last_analysis"]["reason"].as_str().unwrap_or("");
    assert!(analysis.starts_with("latency"), "{analysis} / {reason}");
    h.wait_scale_down("canary", Duration::from_secs(30)).await?;
    assert_eq!(h.green_user_requests().await?, 0);
    Ok(())
}

impl Harness {
    async fn wait_phase_after_deploy(&self) -> anyhow::Result<Value> {
        self.deploy(60, 3).await?;
        self.wait_phase("rolled_back", Duration::from_secs(120))
            .await
    }
}

/// After the switch and within `scale_down_delay_secs`, `todoctl rollback`
/// puts every user request back on blue at once; green is then scaled down.
#[tokio::test]
async fn rollback_within_scale_down_delay_is_instant() -> anyhow::Result<()> {
    let h = Harness::start(&[]).await?;
    h.deploy(60, 600).await?;
    h.wait_phase("succeeded", Duration::from_secs(120)).await?;
    assert_eq!(h.weight(CANARY).await?, 100);
    let url = h.observer_url();
    let t = Instant::now();
    let (code, out, err) = todoctl(&[
        "rollback",
        NAME,
        "--observer-url",
        &url,
        "--as",
        "alice-oncall",
        "--reason",
        "checkout errors",
        "--output",
        "json",
    ])
    .await?;
    let took = t.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    // Instant means: when todoctl returns, HAProxy already routes every user
    // to blue (the action is applied synchronously, not at the next
    // analysis interval) and blue never left service. The duration is
    // printed, not asserted: the machine is shared.
    assert_eq!((h.weight(STABLE).await?, h.weight(CANARY).await?), (100, 0));
    println!("blue-green rollback: all user traffic on blue {took:?} after todoctl started");
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["rollout"]["phase"], "aborted");
    assert_ne!(h.rig.gw.server_status(BACKEND, STABLE).await?, "MAINT");
    let (blue, green) = h.user_split(60).await?;
    assert_eq!(green, 0);
    assert!(blue >= 55, "blue served {blue}");
    h.wait_scale_down("canary", Duration::from_secs(30)).await?;
    let rows = h.decisions().await?;
    assert!(
        !rows
            .iter()
            .any(|d| d["action"] == "scale_down" && d["inputs"]["side"] == "stable"),
        "blue was never scaled down: {rows:#?}"
    );
    let rb = rows
        .iter()
        .find(|d| d["action"] == "rollback")
        .ok_or_else(|| anyhow::anyhow!("no rollback decision: {rows:#?}"))?;
    assert_eq!(rb["actor"], "alice-oncall");
    assert_eq!(rb["weight_after"], 0);
    Ok(())
}

/// The observer is killed during green's analysis; the restarted observer
/// continues the same rollout (same row, the evidence so far kept), the
/// load hook resumes and green passes and switches.
#[tokio::test]
async fn observer_restart_mid_analysis_resumes() -> anyhow::Result<()> {
    let mut h = Harness::start(&[]).await?;
    h.deploy(200, 3).await?;
    wait_until("half the evidence", Duration::from_secs(60), || async {
        h.last_analysis()
            .await
            .is_ok_and(|a| a.is_some_and(|(_, n)| n >= 100))
    })
    .await?;
    let (last_id, before) = h.last_analysis().await?.unwrap_or_default();
    let id = h.status().await?["rollout"]["id"].clone();
    h.restart_observer().await?;
    let v = h.wait_phase("succeeded", Duration::from_secs(120)).await?;
    assert_eq!(v["rollout"]["id"], id, "the same rollout continued");
    let d = h.decisions().await?;
    assert_eq!(
        d.iter().filter(|d| d["action"] == "start").count(),
        1,
        "no second start: {d:#?}"
    );
    let a = analyses(&d);
    // The first analysis of the restarted observer adds to the evidence
    // the killed one had recorded (a fresh start would count from 0).
    let first_after = a
        .iter()
        .find(|a| a["id"].as_i64() > Some(last_id))
        .and_then(|a| a["statistic"]["canary_requests_in_step"].as_u64());
    assert!(
        first_after.is_some_and(|n| n > before),
        "evidence kept across the restart (before {before}, first after {first_after:?}): {a:#?}"
    );
    assert_eq!(h.weight(CANARY).await?, 100);
    assert!(a.iter().all(|a| a["verdict"] != "rollback"));
    Ok(())
}

/// `todoctl canary validate` (and its neutral name `todoctl rollout
/// validate`) accepts the shipped blue-green examples and refuses a
/// malformed strategy, naming the file and the field.
#[tokio::test]
async fn validate_accepts_examples_and_names_a_malformed_strategy() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let examples = [
        root.join("canary/examples/command-service-blue-green.yaml"),
        root.join("k8s/base/canary/examples/command-service-blue-green.yaml"),
    ];
    for cmd in ["canary", "rollout"] {
        let mut args = vec![cmd, "validate"];
        let shown: Vec<String> = examples.iter().map(|p| p.display().to_string()).collect();
        args.extend(shown.iter().map(String::as_str));
        let (code, out, err) = todoctl(&args).await?;
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(out.matches(": ok (").count(), 2, "{out}");
        assert!(out.contains("blue_green: preview"), "{out}");
    }
    let good = std::fs::read_to_string(&examples[0])?;
    let dir = tempfile::tempdir()?;
    for (name, text, field) in [
        (
            "typo.yaml",
            good.replace("strategy: blue_green", "strategy: blue-green"),
            "strategy",
        ),
        (
            "no-settings.yaml",
            good.split("blue_green:\n")
                .next()
                .unwrap_or_default()
                .to_string(),
            "'blue_green'",
        ),
        (
            "user-backend.yaml",
            good.replace("preview: preview/canary", "preview: command/canary"),
            "'blue_green.preview'",
        ),
        (
            "no-url.yaml",
            good.replace("url: http://haproxy:8090", "url: haproxy:8090"),
            "'blue_green.load.url'",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        let p = path.display().to_string();
        let (code, out, err) = todoctl(&["canary", "validate", &p]).await?;
        assert_eq!(code, 10, "{name}: {out}{err}");
        assert!(err.contains(&p) && err.contains(field), "{name}: {err}");
    }
    Ok(())
}
