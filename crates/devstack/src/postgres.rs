//! An ephemeral PostgreSQL cluster from the Debian packages.
//!
//! Postgres refuses to run as root, so when we are root the data directory is
//! handed to the `postgres` user and the server runs under its uid.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// Where `initdb`/`postgres`/`pgbench` live: `PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else `PATH`.
pub fn pg_bin(tool: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("PG_BIN") {
        return PathBuf::from(d).join(tool);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join(tool).exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|d| d.join(tool))
        .unwrap_or_else(|| PathBuf::from(tool))
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Turn off fsync and synchronous commit (tests only: much faster, not durable).
    pub unsafe_fast: bool,
    pub max_connections: u32,
    /// Fixed port, or a random free one.
    pub port: Option<u16>,
    /// Keep data here instead of a temp dir (the local stack).
    pub data_dir: Option<PathBuf>,
    /// Listen on this address instead of 127.0.0.1 (the compose parity run
    /// gives every service a loopback address of its own).
    pub listen_host: Option<String>,
}

impl Options {
    pub fn for_tests() -> Self {
        Self {
            unsafe_fast: true,
            max_connections: 400,
            port: None,
            data_dir: None,
            listen_host: None,
        }
    }
}

pub struct Postgres {
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    run_as: Option<(u32, u32)>,
    opts: Options,
}

fn ids_of(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .context("running id")?;
        anyhow::ensure!(
            out.status.success(),
            "user '{user}' does not exist (install the postgresql package)"
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// Can the user `ids` enter and write `dir` (every ancestor traversable)?
fn accessible_by(dir: &Path, (uid, gid): (u32, u32)) -> bool {
    Command::new("test")
        .arg("-x")
        .arg(dir)
        .uid(uid)
        .gid(gid)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn am_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

impl Postgres {
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let run_as = if am_root() {
            Some(ids_of("postgres")?)
        } else {
            None
        };
        let (tmp, base) = match &opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                let d = match run_as {
                    Some(ids) if !accessible_by(d, ids) => {
                        // e.g. a checkout under /root: the postgres user cannot
                        // reach it, so keep the cluster in a stable temp path.
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        std::hash::Hash::hash(&d, &mut h);
                        let alt = std::env::temp_dir().join(format!(
                            "todo-stack-pg-{:016x}",
                            std::hash::Hasher::finish(&h)
                        ));
                        std::fs::create_dir_all(&alt)?;
                        eprintln!(
                            "note: the postgres user cannot reach {}; keeping its data in {}",
                            d.display(),
                            alt.display()
                        );
                        alt
                    }
                    _ => d.clone(),
                };
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new().prefix("todo-pg-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let dir = base.join("data");
        if let Some((uid, gid)) = run_as {
            chown_tree(&base, uid, gid)?;
        }
        if !dir.join("PG_VERSION").exists() {
            let mut cmd = Command::new(pg_bin("initdb"));
            cmd.args(["-D"]).arg(&dir).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-N",
            ]);
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
            let out = cmd
                .output()
                .with_context(|| format!("running {}", pg_bin("initdb").display()))?;
            anyhow::ensure!(
                out.status.success(),
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = match opts.port {
            Some(p) => p,
            None => crate::free_port()?,
        };
        let mut pg = Self {
            _tmp: tmp,
            dir,
            port,
            child: None,
            run_as,
            opts,
        };
        pg.spawn().await?;
        Ok(pg)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(pg_bin("postgres"));
        cmd.arg("-D").arg(&self.dir);
        cmd.args([
            "-p",
            &self.port.to_string(),
            "-c",
            &format!("listen_addresses={}", self.host()),
            "-k",
        ])
        .arg(&self.dir);
        cmd.args([
            "-c",
            &format!("max_connections={}", self.opts.max_connections),
        ]);
        if self.opts.unsafe_fast {
            cmd.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                self.dir.join("../postgres.log"),
            )?));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", pg_bin("postgres").display()))?,
        );
        let url = self.url("postgres");
        crate::wait_until(
            "postgres to accept connections",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                        .await
                        .is_ok()
                }
            },
        )
        .await
        .with_context(|| {
            format!(
                "postgres did not start; see {}",
                self.dir.join("../postgres.log").display()
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{database}",
            self.host(),
            self.port
        )
    }

    /// The address it listens on.
    pub fn host(&self) -> &str {
        self.opts.listen_host.as_deref().unwrap_or("127.0.0.1")
    }

    /// `pg_hba.conf` of the cluster (reload with `SELECT pg_reload_conf()`).
    pub fn hba_file(&self) -> PathBuf {
        self.dir.join("pg_hba.conf")
    }

    /// A fresh database with a unique name; returns its URL.
    pub async fn create_database(&self, prefix: &str) -> anyhow::Result<String> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(&self.url("postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await?;
        Ok(self.url(&name))
    }

    /// Fast shutdown (SIGINT), as an operator restart would do.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
