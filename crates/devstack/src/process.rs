//! A workspace service binary running as a child process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

pub struct ServiceProcess {
    pub name: String,
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
}

impl ServiceProcess {
    /// Start `binary` with `env` (the port variable is set by the caller via
    /// `<PREFIX>_LISTEN_ADDR`), then wait for `/healthz`.
    pub async fn spawn(
        binary: &str,
        port: u16,
        env: &[(String, String)],
        log_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let bin = crate::workspace_bin(binary)?;
        let log = log_dir.join(format!("{binary}-{port}.log"));
        let mut cmd = Command::new(&bin);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn,rdkafka=warn".into()),
            )
            .stdin(Stdio::null())
            // Appended: a restarted service keeps its earlier log above.
            .stdout(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?,
            ))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log)?,
            ))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut sp = Self {
            name: binary.to_string(),
            child: Some(child),
            port,
            log,
        };
        let url = format!("http://127.0.0.1:{port}/healthz");
        let res = crate::wait_http_ok(&reqwest::Client::new(), &url, Duration::from_secs(30)).await;
        if let Err(e) = res {
            let exited = sp.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            let tail = crate::log_tail(&sp.log, 20);
            anyhow::bail!("{e}; exit status {exited:?}; last log lines:\n{tail}");
        }
        Ok(sp)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGTERM and wait for a graceful exit (SIGKILL after `grace`).
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(st) => Ok(st?.code()),
            Err(_) => {
                child.kill().await?;
                Ok(None)
            }
        }
    }

    /// Send a signal by name (`-STOP`, `-CONT`, …) to the process.
    pub fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow::anyhow!("{} is not running", self.name))?;
        let st = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()?;
        anyhow::ensure!(st.success(), "kill {sig} {pid} failed");
        Ok(())
    }

    /// SIGKILL: a crash.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }
}
