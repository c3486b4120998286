//! What the rollout system tests (canary, blue-green, budget gate) and the
//! canary detection benchmark share: the rig of real processes (two builds
//! of the command service, HAProxy, Prometheus, the observer) with user load
//! through HAProxy, warming a fresh command service, the observer's canary
//! API and `todoctl` as a process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use devstack::haproxy::Haproxy;
use devstack::prometheus::{Prometheus, PrometheusOptions};
use devstack::{ServiceProcess, Stack, free_port, wait_until};

/// How HAProxy fronts the two builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One frontend, the candidate at weight 0 (`Haproxy::start`).
    Canary,
    /// A user frontend (both servers, the candidate at weight 0) and a
    /// preview frontend on the candidate only (`Haproxy::start_blue_green`).
    BlueGreen,
}

/// What a rig starts.
pub struct RigOptions<'a> {
    pub layout: Layout,
    /// `VERSION` of the stable (blue) and candidate (canary, green) builds.
    pub versions: [&'a str; 2],
    /// Extra environment of the candidate (fault flags).
    pub candidate_env: &'a [(&'a str, &'a str)],
    /// Warm the stable build, and the candidate when it has no fault flags,
    /// before HAProxy sends them traffic.
    pub warm: bool,
    /// The observer's environment on top of its listen address, Prometheus,
    /// spec directory and database.
    pub observer_env: &'a [(&'a str, &'a str)],
    /// User load through HAProxy's (user) frontend, requests per second.
    pub load_rate: f64,
}

/// Real processes for a rollout: PostgreSQL and the broker, a stable and a
/// candidate command service, HAProxy in front of both, Prometheus scraping
/// both, the observer (no spec yet), and user load running.
pub struct Rig {
    /// First, so it stops before the processes it loads (fields drop in order).
    pub load: Load,
    pub stack: Stack,
    pub stable: ServiceProcess,
    pub candidate: ServiceProcess,
    pub gw: Haproxy,
    pub prom: Prometheus,
    pub observer: ServiceProcess,
    /// The observer's whole environment, to start it again.
    pub observer_env: Vec<(String, String)>,
    pub spec_dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Last, so the next rig starts only once this one's processes are gone.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// One rig at a time per test binary: two cores cannot run several side by
/// side without distorting the latencies the analysis judges.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Rig {
    pub async fn start(o: RigOptions<'_>) -> anyhow::Result<Self> {
        let serial = SERIAL.lock().await;
        let stack = Stack::start().await?;
        let [stable_version, candidate_version] = o.versions;
        let stable = stack
            .spawn(devstack::Service::Command, &[("VERSION", stable_version)])
            .await?;
        let mut env = vec![("VERSION", candidate_version)];
        env.extend_from_slice(o.candidate_env);
        let candidate = stack.spawn(devstack::Service::Command, &env).await?;
        let http = reqwest::Client::new();
        if o.warm {
            warm(&http, &stable.base_url()).await?;
            if o.candidate_env.is_empty() {
                warm(&http, &candidate.base_url()).await?;
            }
        }
        let gw = match o.layout {
            Layout::Canary => Haproxy::start(&addr(&stable), &addr(&candidate), 0).await?,
            Layout::BlueGreen => {
                Haproxy::start_blue_green(&addr(&stable), &addr(&candidate)).await?
            }
        };
        wait_until(
            "HAProxy to see both servers up",
            Duration::from_secs(30),
            || gw.all_up(),
        )
        .await?;
        let prom = Prometheus::start(PrometheusOptions {
            targets: vec![addr(&stable), addr(&candidate)],
            ..PrometheusOptions::default()
        })
        .await?;
        let spec_dir = tempfile::Builder::new()
            .prefix("rollout-specs-")
            .tempdir()?;
        let port = free_port()?;
        let observer_env: Vec<(String, String)> = [
            ("OBSERVER_LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("OBSERVER_PROMETHEUS_URL", prom.url()),
            ("OBSERVER_CANARY_DIR", spec_dir.path().display().to_string()),
            ("OBSERVER_DATABASE_URL", stack.wiring.database_url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(
            o.observer_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect();
        let observer =
            ServiceProcess::spawn("observer", port, &observer_env, stack.log_dir()).await?;
        let load = Load::start(http.clone(), gw.url(), o.load_rate);
        Ok(Self {
            load,
            stack,
            stable,
            candidate,
            gw,
            prom,
            observer,
            observer_env,
            spec_dir,
            http,
            _serial: serial,
        })
    }

    /// The observer's view of the canary definition `name`.
    pub fn canary_api<'a>(&'a self, name: &'a str) -> CanaryApi<'a> {
        CanaryApi {
            http: &self.http,
            observer_url: self.observer.base_url(),
            name,
        }
    }

    /// The body of a GET (the observer's pages and `/metrics`).
    pub async fn text(&self, url: &str) -> anyhow::Result<String> {
        Ok(self.http.get(url).send().await?.text().await?)
    }
}

/// Outcomes of the user load's requests so far.
#[derive(Default)]
pub struct LoadStats {
    pub ok: AtomicU64,
    pub server_errors: AtomicU64,
    /// Other statuses and requests that got no answer.
    pub other: AtomicU64,
}

impl LoadStats {
    /// Requests answered or failed so far.
    pub fn sent(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.server_errors.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

/// Creates at a fixed rate (open loop) against `{url}/v1/todos`, as ten
/// users; stops when dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub stats: Arc<LoadStats>,
}

impl Load {
    pub fn start(http: reqwest::Client, url: String, rate: f64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LoadStats::default());
        let (stopped, counts) = (stop.clone(), stats.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut i = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                tick.tick().await;
                i += 1;
                let req = http
                    .post(format!("{url}/v1/todos"))
                    .header("x-user-id", format!("load-{}", i % 10))
                    .json(&serde_json::json!({ "title": format!("load {i}") }));
                let counts = counts.clone();
                tokio::spawn(async move {
                    let counter = match req.send().await.map(|r| r.status()) {
                        Ok(s) if s.is_success() => &counts.ok,
                        Ok(s) if s.is_server_error() => &counts.server_errors,
                        _ => &counts.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Self { stop, stats }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

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
