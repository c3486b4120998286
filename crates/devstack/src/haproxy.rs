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
    /// Blue-green: port of the preview frontend (only the canary, "green").
    pub preview_port: Option<u16>,
}

/// The preview backend of [`Haproxy::start_blue_green`]: only the canary.
pub const PREVIEW: &str = "preview";

/// Backend and server names in the generated configuration.
pub const BACKEND: &str = "command";
pub const STABLE: &str = "stable";
pub const CANARY: &str = "canary";

impl Haproxy {
    /// Front `stable` and `canary` (`host:port`), canary at `canary_percent`.
    pub async fn start(stable: &str, canary: &str, canary_percent: u32) -> anyhow::Result<Self> {
        Self::start_on(None, stable, canary, canary_percent).await
    }

    /// Like [`Haproxy::start`] with the HTTP frontend on `port` (None: any free one).
    pub async fn start_on(
        port: Option<u16>,
        stable: &str,
        canary: &str,
        canary_percent: u32,
    ) -> anyhow::Result<Self> {
        Self::start_inner(port, stable, canary, canary_percent, false).await
    }

    /// Blue-green: users reach `stable` (blue, all traffic) through the
    /// gateway frontend; a second frontend on [`Haproxy::preview_url`]
    /// reaches only `canary` (green) through backend [`PREVIEW`].
    pub async fn start_blue_green(stable: &str, canary: &str) -> anyhow::Result<Self> {
        Self::start_inner(None, stable, canary, 0, true).await
    }

    async fn start_inner(
        port: Option<u16>,
        stable: &str,
        canary: &str,
        canary_percent: u32,
        preview: bool,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("todo-haproxy-").tempdir()?;
        let port = match port {
            Some(p) => p,
            None => crate::free_port()?,
        };
        let api_port = crate::free_port()?;
        let preview_port = if preview {
            Some(crate::free_port()?)
        } else {
            None
        };
        let mut cfg = format!(
            "global\n  stats socket ipv4@127.0.0.1:{api_port} level admin\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             frontend gateway\n  bind 127.0.0.1:{port}\n  default_backend {BACKEND}\n\
             backend {BACKEND}\n  balance roundrobin\n  option httpchk GET /healthz\n\
             \x20 server {STABLE} {stable} weight {} check inter 1s\n\
             \x20 server {CANARY} {canary} weight {canary_percent} check inter 1s\n",
            100 - canary_percent.min(100)
        );
        if let Some(p) = preview_port {
            cfg.push_str(&format!(
                "frontend preview\n  bind 127.0.0.1:{p}\n  default_backend {PREVIEW}\n\
                 backend {PREVIEW}\n  option httpchk GET /healthz\n\
                 \x20 server {CANARY} {canary} check inter 1s\n"
            ));
        }
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
            preview_port,
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

    /// The preview frontend (blue-green only).
    pub fn preview_url(&self) -> Option<String> {
        self.preview_port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// `show stat`'s status of `backend/server`: `UP`, `DOWN`, `MAINT`, …
    pub async fn server_status(&self, backend: &str, server: &str) -> anyhow::Result<String> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
            anyhow::bail!("unexpected show stat header: {header:?}");
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.get(px) == Some(&backend) && f.get(sv) == Some(&server))
            .and_then(|f| f.get(st).map(|s| s.to_string()))
            .ok_or_else(|| anyhow::anyhow!("no server {backend}/{server} in show stat"))
    }

    pub fn runtime_api(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    /// One runtime API command, its answer.
    pub async fn command(&self, command: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(self.runtime_api()).await?;
        s.write_all(format!("{command}\n").as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    /// Requests (sessions) each server of [`BACKEND`] has served so far,
    /// from `show stat` (`stot`); health checks are not counted.
    pub async fn served(&self) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv, stot) = match (col("pxname"), col("svname"), col("stot")) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => anyhow::bail!("unexpected show stat header: {header:?}"),
        };
        let mut out = std::collections::BTreeMap::new();
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            if f.get(px) == Some(&BACKEND)
                && let (Some(name), Some(n)) = (f.get(sv), f.get(stot))
                && *name != "BACKEND"
            {
                out.insert(name.to_string(), n.parse().unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// Whether HAProxy's health checks see every server of [`BACKEND`] up.
    pub async fn all_up(&self) -> bool {
        let Ok(out) = self.command(&format!("show servers state {BACKEND}")).await else {
            return false;
        };
        let servers: Vec<&str> = out
            .lines()
            .filter(|l| l.contains(&format!(" {STABLE} ")) || l.contains(&format!(" {CANARY} ")))
            .collect();
        // Field 6 is srv_op_state; 2 = running.
        servers.len() == 2
            && servers
                .iter()
                .all(|l| l.split_whitespace().nth(5) == Some("2"))
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
