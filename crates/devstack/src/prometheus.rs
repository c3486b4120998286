//! A real Prometheus (Debian `prometheus`) as a child process: temp config
//! and data dir, random loopback port, exemplar storage on, readiness on
//! `/-/ready`. `kill` and
//! `restart` (same port, same data) simulate a metrics backend outage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// The generated rule files (`*.rules.yaml`) in `dir` (the repository's
/// `alerts/`), sorted; none when the directory is missing.
pub fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".rules.yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What Prometheus scrapes and evaluates.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// `host:port` targets of one static scrape job.
    pub targets: Vec<String>,
    /// Rule files to load (copied into the temp dir).
    pub rule_files: Vec<PathBuf>,
    pub scrape_interval: String,
    pub evaluation_interval: String,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            rule_files: Vec::new(),
            scrape_interval: "1s".into(),
            evaluation_interval: "1s".into(),
        }
    }
}

pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> anyhow::Result<PathBuf> {
    which("prometheus").ok_or_else(|| {
        anyhow::anyhow!(
            "prometheus not found: run scripts/install-deps.sh (apt-get install prometheus)"
        )
    })
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Prometheus {
    pub async fn start(opts: PrometheusOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("todo-prometheus-")
            .tempdir()?;
        let mut files = String::new();
        for (i, f) in opts.rule_files.iter().enumerate() {
            let dst = dir.path().join(format!("rules-{i}.yaml"));
            std::fs::copy(f, &dst).with_context(|| format!("copying {}", f.display()))?;
            files.push_str(&format!("  - {}\n", dst.display()));
        }
        let targets: Vec<String> = opts.targets.iter().map(|t| format!("'{t}'")).collect();
        let cfg = format!(
            "global:\n  scrape_interval: {}\n  evaluation_interval: {}\nrule_files:\n{}scrape_configs:\n  - job_name: targets\n    static_configs:\n      - targets: [{}]\n",
            opts.scrape_interval,
            opts.evaluation_interval,
            if files.is_empty() {
                "  []\n".to_string()
            } else {
                files
            },
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), cfg)?;
        let mut p = Self {
            child: None,
            port: crate::free_port()?,
            dir,
        };
        p.spawn().await?;
        Ok(p)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let bin = binary()?;
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("prometheus.log"))?;
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            // As in compose and the cluster: the latency histograms' trace
            // exemplars are kept (`/api/v1/query_exemplars`).
            .arg("--enable-feature=exemplar-storage")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        let url = format!("{}/-/ready", self.url());
        crate::wait_http_ok(&reqwest::Client::new(), &url, Duration::from_secs(60)).await
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILL: Prometheus dies mid-run (no clean shutdown).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Start again on the same port with the same data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn().await
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
