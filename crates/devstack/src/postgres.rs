//! An ephemeral PostgreSQL cluster from the Debian packages.
//!
//! Postgres refuses to run as root, so when we are root the data directory is
//! handed to the `postgres` user and the server runs under its uid.
//!
//! With [`Options::tls`] the server is what a managed Postgres is: `ssl=on`
//! with a certificate for one host name, signed by a throwaway CA, and
//! `pg_hba.conf` admitting TCP clients over TLS only (`hostssl`). Its
//! [`Postgres::url`]s then say `sslmode=verify-full` with that CA.

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
    /// Serve TLS only, as a managed Postgres does (`None`: plain TCP).
    pub tls: Option<TlsOptions>,
    /// More server settings, each passed as `-c name=value` (e.g. the
    /// bench's `shared_preload_libraries=pg_stat_statements`).
    pub settings: Vec<(String, String)>,
}

/// TLS-only mode: a throwaway CA signs the server's certificate for `host`.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The name clients connect with; the certificate's only name (so
    /// `verify-full` by any other name, e.g. the IP address, is refused).
    /// It must resolve to 127.0.0.1, where the server listens.
    pub host: String,
}

/// Files of the TLS mode, in the cluster's base directory.
#[derive(Debug, Clone)]
struct TlsFiles {
    host: String,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A CA, and a server certificate for `host` signed by it (both valid a
/// day). Returns (CA PEM, server certificate PEM, server key PEM).
fn ca_and_server_cert(host: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };
    use openssl::x509::{X509, X509NameBuilder};

    let name = |cn: &str| -> anyhow::Result<openssl::x509::X509Name> {
        let mut n = X509NameBuilder::new()?;
        n.append_entry_by_text("CN", cn)?;
        Ok(n.build())
    };
    let builder = |subject: &openssl::x509::X509NameRef,
                   issuer: &openssl::x509::X509NameRef,
                   key: &PKey<openssl::pkey::Private>|
     -> anyhow::Result<openssl::x509::X509Builder> {
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        b.set_serial_number(&*serial.to_asn1_integer()?)?;
        b.set_subject_name(subject)?;
        b.set_issuer_name(issuer)?;
        b.set_pubkey(key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(1)?)?;
        Ok(b)
    };

    let ca_key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let ca_name = name("devstack test CA")?;
    let mut ca = builder(&ca_name, &ca_name, &ca_key)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca = ca.build();

    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut cert = builder(&*name(host)?, ca.subject_name(), &key)?;
    cert.append_extension(BasicConstraints::new().build()?)?;
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    cert.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let san = SubjectAlternativeName::new()
        .dns(host)
        .build(&cert.x509v3_context(Some(&ca), None))?;
    cert.append_extension(san)?;
    cert.sign(&ca_key, MessageDigest::sha256())?;
    Ok((
        ca.to_pem()?,
        cert.build().to_pem()?,
        key.private_key_to_pem_pkcs8()?,
    ))
}

impl Options {
    pub fn for_tests() -> Self {
        Self {
            unsafe_fast: true,
            max_connections: 400,
            port: None,
            data_dir: None,
            listen_host: None,
            tls: None,
            settings: Vec::new(),
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
    tls: Option<TlsFiles>,
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
        let tls = match &opts.tls {
            Some(t) => Some(Self::setup_tls(&base, &dir, &t.host, run_as)?),
            None => None,
        };
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
            tls,
        };
        pg.spawn().await?;
        Ok(pg)
    }

    /// Write the CA, the server certificate and key (owned by the server's
    /// user, mode 0600 as Postgres demands), and a `pg_hba.conf` that admits
    /// TCP connections over TLS only.
    fn setup_tls(
        base: &Path,
        data: &Path,
        host: &str,
        run_as: Option<(u32, u32)>,
    ) -> anyhow::Result<TlsFiles> {
        use std::os::unix::fs::PermissionsExt as _;
        let (ca, cert, key) =
            ca_and_server_cert(host).context("generating the TLS certificates")?;
        let files = TlsFiles {
            host: host.to_string(),
            ca_file: base.join("ca.pem"),
            cert_file: base.join("server.crt"),
            key_file: base.join("server.key"),
        };
        let hba = data.join("pg_hba.conf");
        // First match wins: local socket for the superuser's tooling, TLS
        // over TCP, and an explicit reject for anything else.
        let rules = "local all all trust\n\
                     hostssl all all 127.0.0.1/32 trust\n\
                     hostssl all all ::1/128 trust\n\
                     host all all 0.0.0.0/0 reject\n\
                     host all all ::/0 reject\n";
        for (path, pem, mode) in [
            (&files.ca_file, &ca, 0o644),
            (&files.cert_file, &cert, 0o644),
            (&files.key_file, &key, 0o600),
            (&hba, &rules.as_bytes().to_vec(), 0o600),
        ] {
            std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
            }
        }
        Ok(files)
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
        if let Some(tls) = &self.tls {
            cmd.args(["-c", "ssl=on", "-c"])
                .arg(format!("ssl_cert_file={}", tls.cert_file.display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", tls.key_file.display()));
        }
        for (name, value) in &self.opts.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
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
        // The last refusal says why (e.g. no TLS support in this build).
        let last_error = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let waited = crate::wait_until(
            "postgres to accept connections",
            Duration::from_secs(30),
            || {
                let (url, last_error) = (url.clone(), last_error.clone());
                async move {
                    match <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
                        Ok(_) => true,
                        Err(e) => {
                            if let Ok(mut l) = last_error.lock() {
                                *l = e.to_string();
                            }
                            false
                        }
                    }
                }
            },
        )
        .await;
        waited.with_context(|| {
            format!(
                "postgres did not start or refused {url} (last error: {}); see {}",
                last_error.lock().map(|l| l.clone()).unwrap_or_default(),
                self.dir.join("../postgres.log").display()
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the services reach `database`: by the certificate's host name
    /// with `sslmode=verify-full` and the CA in TLS mode.
    pub fn url(&self, database: &str) -> String {
        match &self.tls {
            Some(t) => format!(
                "postgres://postgres@{}:{}/{database}?sslmode=verify-full&sslrootcert={}",
                t.host,
                self.port,
                t.ca_file.display()
            ),
            None => format!(
                "postgres://postgres@{}:{}/{database}",
                self.host(),
                self.port
            ),
        }
    }

    /// The CA that signed the server certificate (TLS mode only).
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_file.as_path())
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

    /// Start a stopped (or crashed) cluster again; a no-op while it runs.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            return Ok(());
        }
        self.child = None;
        self.spawn().await
    }

    /// The postmaster and every process it forked (backends, checkpointer,
    /// WAL writer, …), read from /proc.
    pub fn pids(&self) -> Vec<u32> {
        let Some(root) = self.child.as_ref().map(|c| c.id()) else {
            return Vec::new();
        };
        let mut out = vec![root];
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                // pid (comm) state ppid …: the comm may hold spaces, so split after ')'.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(root) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// Send `sig` (e.g. `-STOP`, `-CONT`, `-KILL`) to the whole cluster.
    pub fn signal_all(&self, sig: &str) -> anyhow::Result<()> {
        let pids: Vec<String> = self.pids().iter().map(u32::to_string).collect();
        anyhow::ensure!(!pids.is_empty(), "postgres is not running");
        let st = Command::new("kill")
            .arg(sig)
            .args(&pids)
            .stderr(Stdio::null())
            .status()?;
        // A backend may have exited since the list was read; only the
        // postmaster must have been there.
        let root_alive = Command::new("kill")
            .args(["-0", &pids[0]])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(st.success() || root_alive, "kill {sig} {pids:?} failed");
        Ok(())
    }

    /// SIGKILL the whole cluster (a crash: the next start runs recovery).
    pub fn crash(&mut self) -> anyhow::Result<()> {
        self.signal_all("-KILL")?;
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.signal_all("-CONT");
        self.stop();
    }
}
