//! Real servers as child processes, for tests, the local stack and benchmarks.
//!
//! Every server listens on a random loopback port, lives in a temp dir and is
//! stopped when its handle drops. Readiness is polled, never slept for.

pub mod alertmanager;
pub mod broker;
pub mod compose;
pub mod haproxy;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod stack;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use broker::Broker;
pub use postgres::Postgres;
pub use process::ServiceProcess;
pub use stack::{Service, Stack, Wiring};

/// A free loopback port (bound then released). A port is handed out once
/// per process: two servers started at the same time (PostgreSQL and the
/// broker, say) never get the same number, which the kernel may otherwise
/// give to both between bind and release.
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port found in 100 tries")
}

/// The last `n` lines of a log file, for an error that says why a server
/// did not start.
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Poll `check` until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if check().await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Poll `url` with `client` until it answers 2xx or `timeout` passes (the
/// readiness wait of every server we start).
pub async fn wait_http_ok(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_until(url, timeout, || async {
        client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
}

/// Directory of the workspace's built binaries: next to the running
/// executable (`target/<profile>/`, or its parent for test binaries in
/// `deps/` and examples in `examples/`), unless `TODO_BIN_DIR` says otherwise.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("TODO_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("executable has no parent dir"))?
        .to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of a workspace binary, with a hint when it was not built.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let p = bin_dir()?.join(name);
    anyhow::ensure!(
        p.exists(),
        "{} not found; build the services first (cargo build --workspace --bins) or set TODO_BIN_DIR",
        p.display()
    );
    Ok(p)
}

/// PostgreSQL, the broker with our topics, ready to use.
pub struct Infra {
    pub postgres: Postgres,
    pub broker: Broker,
}

impl Infra {
    pub async fn start() -> anyhow::Result<Self> {
        let (postgres, broker) = tokio::try_join!(
            Postgres::start(postgres::Options::for_tests()),
            Broker::start()
        )?;
        broker.create_topics(contracts::topics::ALL).await?;
        Ok(Self { postgres, broker })
    }
}

/// Who listens on TCP `port` (any address), as "pid N (command line)", read
/// from /proc; `None` when nothing does or it cannot be told.
pub fn port_holder(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = cols.get(1) else { continue };
            let listening = cols.get(3) == Some(&"0A");
            let p = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if listening
                && p == Some(port)
                && let Some(inode) = cols.get(9)
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_dir.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                let cmd = std::fs::read(proc_dir.path().join("cmdline")).unwrap_or_default();
                let cmd: Vec<String> = cmd
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                return Some(format!("pid {pid} ({})", cmd.join(" ")));
            }
        }
    }
    Some("another process (not visible from here)".into())
}

/// Refuse to start when a port we were told to use is taken: name the port,
/// the flag that sets it and what holds it.
pub fn ensure_ports_free(ports: &[(&str, u16)]) -> anyhow::Result<()> {
    let mut taken = Vec::new();
    for (flag, port) in ports {
        if *port == 0 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", *port)).is_err() {
            let holder = port_holder(*port).unwrap_or_else(|| "something".into());
            taken.push(format!("port {port} ({flag}) is in use by {holder}"));
        }
    }
    anyhow::ensure!(
        taken.is_empty(),
        "{}; stop the other stack or choose other ports (0 picks a free one)",
        taken.join("; ")
    );
    Ok(())
}
