//! What the rollout system tests (canary, blue-green, budget gate) share:
//! addresses, warming a fresh command service, the observer's canary API
//! and `todoctl` as a process.

use std::time::{Duration, Instant};

use serde_json::Value;

use devstack::ServiceProcess;

/// `host:port` of a service process, as HAProxy and Prometheus want it.
pub fn addr(p: &ServiceProcess) -> String {
    format!("127.0.0.1:{}", p.port)
}

/// A fresh process's first requests open its connection pool; a real
/// rollout warms a build before it takes traffic, so do the tests.
pub async fn warm(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for i in 0..20 {
        let r = http
            .post(format!("{base}/v1/todos"))
            .header("x-user-id", "warm-up")
            .json(&serde_json::json!({ "title": format!("warm-up {i}") }))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "warm-up answered {}", r.status());
    }
    Ok(())
}

/// `todoctl` as a process, without an ambient token: (exit code, stdout, stderr).
pub async fn todoctl(args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let bin = devstack::workspace_bin("todoctl")?;
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env_remove("TODOCTL_TOKEN")
        .output()
        .await?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The observer's view of one canary definition (`/api/v1/canaries/{name}`).
pub struct CanaryApi<'a> {
    pub http: &'a reqwest::Client,
    pub observer_url: String,
    pub name: &'a str,
}

impl CanaryApi<'_> {
    pub async fn status(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!(
                "{}/api/v1/canaries/{}",
                self.observer_url, self.name
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The decision log, oldest first.
    pub async fn decisions(&self) -> anyhow::Result<Vec<Value>> {
        let v: Value = self
            .http
            .get(format!(
                "{}/api/v1/canaries/{}/decisions?limit=1000",
                self.observer_url, self.name
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut rows = v.as_array().cloned().unwrap_or_default();
        rows.reverse();
        Ok(rows)
    }

    /// Wait for the rollout to reach `phase`; fails early on another
    /// finished phase, and shows the decision log when it fails.
    pub async fn wait_phase(&self, phase: &str, timeout: Duration) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let v = self.status().await?;
            let p = v["rollout"]["phase"].as_str().unwrap_or("").to_string();
            if p == phase {
                return Ok(v);
            }
            if ["succeeded", "rolled_back", "aborted"].contains(&p.as_str()) {
                anyhow::bail!(
                    "rollout ended {p}, expected {phase}; decisions: {:#?}",
                    self.decisions().await?
                );
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "rollout still {p} after {timeout:?}, expected {phase}; decisions: {:#?}",
                    self.decisions().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
