//! A real HAProxy (Debian `haproxy`) as a child process: one HTTP frontend,
//! one backend with a stable and a canary server, and a runtime API socket on
//! loopback TCP so weights can be changed live.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

pub struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// Port of the HTTP frontend.
    pub port: u16,
    /// Port of the runtime API (`level admin`).
    pub api_port: u16,
}

/// Backend and server names in the generated configuration.
pub const BACKEND: &str = "command";
pub const STABLE: &str = "stable";
pub const CANARY: &str = "canary";

impl Haproxy {
    /// Front `stable` and `canary` (`host:port`), canary at `canary_percent`.
    pub async fn start(stable: &str, canary: &str, canary_percent: u32) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("todo-haproxy-").tempdir()?;
        let (port, api_port) = (crate::free_port()?, crate::free_port()?);
        let cfg = format!(
            "global\n  stats socket ipv4@127.0.0.1:{api_port} level admin\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             frontend gateway\n  bind 127.0.0.1:{port}\n  default_backend {BACKEND}\n\
             backend {BACKEND}\n  balance roundrobin\n  option httpchk GET /healthz\n\
             \x20 server {STABLE} {stable} weight {} check inter 1s\n\
             \x20 server {CANARY} {canary} weight {canary_percent} check inter 1s\n",
            100 - canary_percent.min(100)
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg)?;
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg_path)
            .output()
            .context("running haproxy -c (apt-get install haproxy)")?;
        anyhow::ensure!(
            check.status.success(),
            "haproxy config invalid: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.path().join("haproxy.log"),
            )?))
            .spawn()
            .context("starting haproxy")?;
        let me = Self {
            child,
            dir,
            port,
            api_port,
        };
        let (api, front) = (format!("127.0.0.1:{api_port}"), format!("127.0.0.1:{port}"));
        crate::wait_until("haproxy to listen", Duration::from_secs(20), || {
            let (api, front) = (api.clone(), front.clone());
            async move {
                tokio::net::TcpStream::connect(&api).await.is_ok()
                    && tokio::net::TcpStream::connect(&front).await.is_ok()
            }
        })
        .await?;
        Ok(me)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn runtime_api(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("haproxy.log")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
