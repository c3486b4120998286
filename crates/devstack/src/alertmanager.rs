//! A real Alertmanager (Debian `prometheus-alertmanager`) as a child process:
//! temp config and storage, random loopback port, clustering off, readiness
//! on `/-/ready`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

pub struct Alertmanager {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

fn binary() -> anyhow::Result<PathBuf> {
    crate::prometheus::which("prometheus-alertmanager")
        .or_else(|| crate::prometheus::which("alertmanager"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "alertmanager not found: run scripts/install-deps.sh (apt-get install prometheus-alertmanager)"
            )
        })
}

impl Alertmanager {
    /// Start with `config` (alertmanager.yml contents).
    pub async fn start(config: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("todo-alertmanager-")
            .tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("alertmanager.yml"), config)?;
        let port = crate::free_port()?;
        let bin = binary()?;
        let log = std::fs::File::create(d.join("alertmanager.log"))?;
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                d.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let am = Self {
            child: Some(child),
            port,
            _dir: dir,
        };
        let url = format!("{}/-/ready", am.url());
        crate::wait_http_ok(&reqwest::Client::new(), &url, Duration::from_secs(60)).await?;
        Ok(am)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
