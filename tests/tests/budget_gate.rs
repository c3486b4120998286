//! The error-budget policy gate (issue 17, item 5) against real processes:
//! PostgreSQL, tansu, a stable and a canary command service, HAProxy in
//! front of both, Prometheus scraping both, the observer evaluating the
//! repository's SLOs (`slo/`) and driving the rollout, and `todoctl`.
//!
//! - exhausted budget: 5xx sent straight to the canary (not through
//!   HAProxy, which gives it 0%) spend command-api-availability's budget;
//!   a spec with `policy: block` is held at 0% and an override is refused;
//!   the same spec with `policy: require_override` starts on
//!   `todoctl canary start --override`, recorded with the operator's name
//!   and the budget figures; `policy: warn` starts at once and logs the
//!   warning with the figures.
//! - healthy budget: the same gate lets the rollout start at once and logs
//!   the figures it saw.

use std::time::Duration;

use devstack::haproxy::{BACKEND, CANARY, STABLE};
use devstack::wait_until;
use serde_json::Value;
use system_tests::rollouts::{CanaryApi, Layout, Load, Rig, RigOptions, todoctl};

const NAME: &str = "command-service";
const SLO: &str = "command-api-availability";

struct Gate {
    rig: Rig,
}

impl Gate {
    /// Everything up with 20 requests/s through HAProxy, all on stable
    /// until a rollout moves weight; the observer evaluates `slo/`.
    async fn start(canary_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let slo_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../slo");
        let slo_dir = slo_dir.display().to_string();
        let rig = Rig::start(RigOptions {
            layout: Layout::Canary,
            versions: ["stable", "canary"],
            candidate_env: canary_env,
            warm: false,
            observer_env: &[
                ("OBSERVER_SLO_DIR", &slo_dir),
                ("OBSERVER_SLO_EVAL_INTERVAL_MS", "1000"),
                ("OBSERVER_AUTH_MODE", "dev"),
            ],
            load_rate: 20.0,
        })
        .await?;
        Ok(Self { rig })
    }

    /// The observer's own evaluation of the availability SLO's budget.
    async fn budget_remaining(&self) -> Option<f64> {
        let v: Value = self
            .rig
            .http
            .get(format!("{}/api/v1/slos", self.rig.observer.base_url()))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["slos"].as_array()?.iter().find(|s| s["name"] == SLO)?["budget_remaining"].as_f64()
    }

    /// Spend the availability budget: every request sent straight to the
    /// faulty canary fails. Keep sending until the observer's own
    /// evaluation sees the budget overspent.
    async fn spend_budget(&self) -> anyhow::Result<()> {
        // 5xx by design; stops when dropped, whatever wait_until returns.
        let _burn = Load::start(self.rig.http.clone(), self.rig.candidate.base_url(), 50.0);
        wait_until(
            "the observer to see the availability budget spent",
            Duration::from_secs(60),
            || async { self.budget_remaining().await.is_some_and(|r| r < 0.0) },
        )
        .await
    }

    fn write_spec(&self, policy: &str) -> anyhow::Result<()> {
        let spec = format!(
            "name: {NAME}\ntarget: command-service\nstable: {BACKEND}/{STABLE}\ncanary: {BACKEND}/{CANARY}\n\
             stable_version: stable\ncanary_version: canary\n\
             driver:\n  haproxy:\n    runtime_api: {}\n\
             steps: [20, 50, 100]\ninterval_secs: 2\nmax_duration_secs: 600\n\
             analysis:\n  min_requests: 40\n\
             budget:\n  min_remaining: 0.25\n  policy: {policy}\n",
            self.rig.gw.runtime_api()
        );
        // Write then rename: the observer never reads half a file.
        let tmp = self.rig.spec_dir.path().join("command-service.yaml.tmp");
        std::fs::write(&tmp, spec)?;
        std::fs::rename(tmp, self.rig.spec_dir.path().join("command-service.yaml"))?;
        Ok(())
    }

    fn api(&self) -> CanaryApi<'_> {
        self.rig.canary_api(NAME)
    }

    async fn status(&self) -> anyhow::Result<Value> {
        self.api().status().await
    }

    /// Unlike `CanaryApi::wait_phase`, tolerant of the observer not
    /// knowing the canary yet (the spec was only just written).
    async fn wait_phase(&self, phase: &str) -> anyhow::Result<Value> {
        wait_until(
            &format!("the rollout to be {phase}"),
            Duration::from_secs(30),
            || async {
                self.status()
                    .await
                    .is_ok_and(|v| v["rollout"]["phase"] == phase)
            },
        )
        .await?;
        self.status().await
    }

    /// Oldest first.
    async fn decisions(&self) -> anyhow::Result<Vec<Value>> {
        self.api().decisions().await
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
}

/// An exhausted budget: `block` holds the rollout and refuses an override;
/// `require_override` starts it on `todoctl canary start --override`,
/// recorded with the operator and the budget figures.
#[tokio::test]
async fn exhausted_budget_blocks_and_an_override_starts_the_rollout() -> anyhow::Result<()> {
    let g = Gate::start(&[("FAULT_ERROR_RATE", "1.0")]).await?;
    g.spend_budget().await?;

    g.write_spec("block")?;
    let v = g.wait_phase("blocked").await?;
    assert_eq!(v["rollout"]["weight"], 0, "{v:#}");
    assert_eq!(g.canary_weight().await?, 0, "the canary gets no traffic");
    let d = g.decisions().await?;
    let gate = d
        .iter()
        .find(|r| r["action"] == "gate")
        .ok_or_else(|| anyhow::anyhow!("no gate decision: {d:#?}"))?;
    let budget = &gate["inputs"]["budget"];
    assert_eq!(budget["policy"], "block", "{gate:#}");
    assert_eq!(budget["outcome"], "below", "{gate:#}");
    assert!(
        budget["lowest_remaining"]
            .as_f64()
            .is_some_and(|r| r < 0.25),
        "{gate:#}"
    );
    assert!(
        budget["slos"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["slo"] == SLO)),
        "{gate:#}"
    );
    assert!(
        gate["reason"]
            .as_str()
            .is_some_and(|r| r.contains("policy block")),
        "{gate:#}"
    );

    let url = g.rig.observer.base_url();
    // `block` cannot be overridden.
    let (code, _, err) = todoctl(&[
        "canary",
        "start",
        NAME,
        "--override",
        "hotfix",
        "--observer-url",
        &url,
        "--as",
        "alice",
    ])
    .await?;
    assert_eq!(code, 10, "refused: {err}");
    assert!(err.contains("block"), "{err}");
    assert_eq!(g.status().await?["rollout"]["phase"], "blocked");
    // Operators may do nothing else to a held rollout but abort it.
    let (code, _, err) = todoctl(&[
        "canary",
        "promote",
        NAME,
        "--observer-url",
        &url,
        "--as",
        "alice",
    ])
    .await?;
    assert_eq!(code, 10, "{err}");
    assert_eq!(g.canary_weight().await?, 0);

    // The same rollout under require_override: an override without a
    // reason is a usage error, with one it starts and names the operator.
    g.write_spec("require_override")?;
    let (code, _, _) = todoctl(&[
        "canary",
        "start",
        NAME,
        "--observer-url",
        &url,
        "--as",
        "alice",
    ])
    .await?;
    assert_eq!(code, 2, "--override is required");
    // The spec reload is asynchronous: until the observer runs with the new
    // policy a start is refused naming `block`; then, without a reason, it is
    // refused naming the field.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = g
            .rig
            .http
            .post(format!("{url}/api/v1/canaries/{NAME}/start"))
            .bearer_auth(dev_token("alice"))
            .json(&serde_json::json!({}))
            .send()
            .await?;
        assert_eq!(r.status(), 409);
        let body = r.text().await?;
        if body.contains("field 'reason'") {
            break;
        }
        anyhow::ensure!(
            body.contains("block") && std::time::Instant::now() < deadline,
            "a start without a reason: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out, err) = todoctl(&[
        "canary",
        "start",
        NAME,
        "--override",
        "hotfix for INC-42",
        "--observer-url",
        &url,
        "--as",
        "alice",
    ])
    .await?;
    assert_eq!(code, 0, "the override starts the rollout: {out} {err}");
    // Right after the override, before the first analysis interval ends.
    assert_eq!(
        g.canary_weight().await?,
        20,
        "traffic moved to the first step"
    );
    let d = g.decisions().await?;
    let start = d
        .iter()
        .find(|r| r["action"] == "start")
        .ok_or_else(|| anyhow::anyhow!("no start decision: {d:#?}"))?;
    assert_eq!(start["actor"], "alice", "{start:#}");
    assert_eq!(start["weight_after"], 20, "{start:#}");
    assert_eq!(start["inputs"]["override"], true, "{start:#}");
    assert_eq!(start["inputs"]["note"], "hotfix for INC-42", "{start:#}");
    assert_eq!(
        start["inputs"]["budget"]["policy"], "require_override",
        "{start:#}"
    );
    assert!(
        start["inputs"]["budget"]["lowest_remaining"]
            .as_f64()
            .is_some_and(|r| r < 0.25),
        "{start:#}"
    );
    assert!(
        start["reason"]
            .as_str()
            .is_some_and(|r| r.contains("override") && r.contains("INC-42")),
        "{start:#}"
    );
    Ok(())
}

/// `warn`: an exhausted budget does not hold the rollout; the start
/// decision carries the warning and the figures.
#[tokio::test]
async fn warn_policy_starts_with_an_exhausted_budget_and_logs_it() -> anyhow::Result<()> {
    let g = Gate::start(&[("FAULT_ERROR_RATE", "1.0")]).await?;
    g.spend_budget().await?;
    g.write_spec("warn")?;
    // A faulty canary may be rolled back soon after: read the log, not the phase.
    wait_until("the rollout to start", Duration::from_secs(30), || async {
        g.decisions()
            .await
            .is_ok_and(|d| d.iter().any(|r| r["action"] == "start"))
    })
    .await?;
    let d = g.decisions().await?;
    assert!(d.iter().all(|r| r["action"] != "gate"), "{d:#?}");
    let start = d
        .iter()
        .find(|r| r["action"] == "start")
        .ok_or_else(|| anyhow::anyhow!("no start decision: {d:#?}"))?;
    assert_eq!(start["weight_after"], 20, "{start:#}");
    assert_eq!(start["actor"], "observer", "{start:#}");
    let budget = &start["inputs"]["budget"];
    assert_eq!(budget["policy"], "warn", "{start:#}");
    assert_eq!(budget["outcome"], "below", "{start:#}");
    assert!(
        start["reason"]
            .as_str()
            .is_some_and(|r| r.contains("error budget warning")),
        "{start:#}"
    );
    Ok(())
}

/// A healthy budget: the gate lets the rollout start at once and records
/// what it saw.
#[tokio::test]
async fn healthy_budget_starts_the_rollout_at_once() -> anyhow::Result<()> {
    let g = Gate::start(&[]).await?;
    wait_until(
        "the observer to evaluate the availability budget",
        Duration::from_secs(60),
        || async { g.budget_remaining().await.is_some() },
    )
    .await?;
    g.write_spec("block")?;
    let v = g.wait_phase("progressing").await?;
    assert_eq!(v["rollout"]["weight"], 20, "{v:#}");
    assert_eq!(g.canary_weight().await?, 20);
    let d = g.decisions().await?;
    assert!(d.iter().all(|r| r["action"] != "gate"), "{d:#?}");
    let start = d
        .iter()
        .find(|r| r["action"] == "start")
        .ok_or_else(|| anyhow::anyhow!("no start decision: {d:#?}"))?;
    let budget = &start["inputs"]["budget"];
    assert_eq!(budget["outcome"], "pass", "{start:#}");
    assert!(
        budget["lowest_remaining"]
            .as_f64()
            .is_some_and(|r| r >= 0.25),
        "{start:#}"
    );
    assert!(
        start["reason"]
            .as_str()
            .is_some_and(|r| r.contains("error budget ok")),
        "{start:#}"
    );
    Ok(())
}

/// The unsigned token `todoctl --as` sends in dev auth mode.
fn dev_token(user: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::json!({"sub": user, "roles": ["operator"]}))
    )
}

/// `todoctl canary validate` refuses a malformed policy, naming the file
/// and the field (and the line, for a value that does not parse).
#[tokio::test]
async fn validate_refuses_a_malformed_policy_naming_the_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = "name: c\ntarget: command-service\nstable: command/stable\ncanary: command/canary\n\
                stable_version: a\ncanary_version: b\ndriver:\n  haproxy:\n    runtime_api: 127.0.0.1:1\n";
    let cases = [
        (
            "policy.yaml",
            "budget:\n  min_remaining: 0.25\n  policy: ask_nicely\n",
            "budget.policy",
        ),
        (
            "share.yaml",
            "budget:\n  min_remaining: 2\n  policy: block\n",
            "budget.min_remaining",
        ),
        ("missing.yaml", "budget:\n  policy: warn\n", "min_remaining"),
    ];
    for (file, budget, field) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, format!("{good}{budget}"))?;
        let shown = path.display().to_string();
        let (code, _, err) = todoctl(&["canary", "validate", &shown]).await?;
        assert_eq!(code, 10, "{file}: {err}");
        assert!(err.contains(&shown) && err.contains(field), "{file}: {err}");
        if file == "policy.yaml" {
            assert!(err.contains("line 12"), "{err}");
        }
    }
    let ok = dir.path().join("ok.yaml");
    std::fs::write(
        &ok,
        format!("{good}budget:\n  min_remaining: 0.25\n  policy: require_override\n"),
    )?;
    let (code, out, err) = todoctl(&["canary", "validate", &ok.display().to_string()]).await?;
    assert_eq!(code, 0, "{out} {err}");
    Ok(())
}
