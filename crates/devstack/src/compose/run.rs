//! Run a compose file's services as local processes (see the module docs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::container::{Container, Mount};
use super::dockerfile::{Dockerfile, Image};
use super::file::{Condition, Project, Service, Vars, VolumeSource};
use super::localize::localize;
use super::standins::{self, Kind};
use crate::otlp::Seen;

/// How to run a compose file here.
#[derive(Debug, Clone)]
pub struct Options {
    pub file: PathBuf,
    pub vars: Vars,
    /// Logs, named volumes, rewritten mounts, the hosts file.
    pub dir: PathBuf,
    /// The first three octets of the services' addresses (`127.0.0` gives
    /// 127.0.0.2, 127.0.0.3, …).
    pub subnet: String,
    /// Services not to start (and not to wait for).
    pub skip: Vec<String>,
    /// Forward the published `ports:` from the machine, as Docker does.
    pub publish: bool,
    /// Where the workspace binaries are.
    pub bin_dir: PathBuf,
}

/// How one compose service runs here.
#[derive(Debug, Clone)]
enum Runner {
    Postgres,
    Kafka,
    /// `apache/kafka` with a command of its own (topic set-up): run with
    /// `kafka-topics.sh` answered by `todoctl kafka-topics`.
    KafkaShell,
    Ours(Image),
    Program {
        argv: Vec<String>,
        port: Option<u16>,
    },
    StandIn(Kind),
    Load,
}

/// What a service is run as, for the report.
#[derive(Debug, Clone)]
pub struct Placement {
    pub service: String,
    pub image: String,
    pub addr: String,
    pub runs_as: String,
}

enum Running {
    Child(tokio::process::Child),
    /// A server handle that stops its process when dropped (Postgres, the broker).
    Owned(#[allow(dead_code)] Box<dyn std::any::Any + Send>),
    Tasks(Vec<tokio::task::JoinHandle<()>>),
    Exited,
}

/// A compose project running as local processes; everything stops on drop.
pub struct ComposeStack {
    pub project: Project,
    pub placements: Vec<Placement>,
    /// Every change made to what a container sees (file, what, how many).
    pub rewrites: Vec<String>,
    addrs: BTreeMap<String, String>,
    dir: PathBuf,
    spans: Seen,
    running: Vec<(String, Running)>,
}

fn image_repo(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => no_digest,
    }
}

impl ComposeStack {
    pub async fn up(opts: Options) -> anyhow::Result<Self> {
        let project = super::load(&opts.file, &opts.vars)?;
        let dockerfile_path = project.dir.join("Dockerfile");
        let dockerfile = if dockerfile_path.exists() {
            Dockerfile::load(&dockerfile_path)?
        } else {
            Dockerfile::default()
        };
        std::fs::create_dir_all(opts.dir.join("logs"))?;
        let dir = std::path::absolute(&opts.dir)?;

        // Addresses: one per service; `network_mode: service:X` shares X's.
        let mut addrs = BTreeMap::new();
        let mut next = 2u8;
        for s in &project.services {
            if s.network_mode.is_none() {
                addrs.insert(s.name.clone(), format!("{}.{next}", opts.subnet));
                next = next
                    .checked_add(1)
                    .filter(|n| *n < 255)
                    .context("more than 252 services")?;
            }
        }
        for s in &project.services {
            if let Some(mode) = &s.network_mode {
                let other = mode.strip_prefix("service:").ok_or_else(|| {
                    anyhow::anyhow!("services.{}.network_mode: only service:NAME is supported here, got {mode:?}", s.name)
                })?;
                let a = addrs.get(other).cloned().ok_or_else(|| {
                    anyhow::anyhow!("services.{}.network_mode: no service {other}", s.name)
                })?;
                addrs.insert(s.name.clone(), a);
            }
        }
        let hosts_file = dir.join("hosts");
        let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
        for s in &project.services {
            if s.network_mode.is_none() {
                hosts += &format!("{}\t{}\n", addrs[&s.name], s.name);
            }
        }
        std::fs::write(&hosts_file, hosts)?;

        let mut stack = Self {
            placements: Vec::new(),
            rewrites: Vec::new(),
            addrs,
            dir: dir.clone(),
            spans: Seen::default(),
            running: Vec::new(),
            project: project.clone(),
        };
        let mut runners = BTreeMap::new();
        for s in &project.services {
            let runner = stack.runner_for(s, &dockerfile)?;
            stack.placements.push(Placement {
                service: s.name.clone(),
                image: s
                    .image
                    .clone()
                    .or_else(|| s.build_target.as_ref().map(|t| format!("build target {t}")))
                    .unwrap_or_default(),
                addr: stack.addrs[&s.name].clone(),
                runs_as: if opts.skip.contains(&s.name) {
                    "skipped (--skip)".into()
                } else {
                    describe(&runner)
                },
            });
            runners.insert(s.name.clone(), runner);
        }
        for p in &stack.placements {
            eprintln!(
                "  {:<24} {:<14} {} -> {}",
                p.service, p.addr, p.image, p.runs_as
            );
        }

        for name in start_order(&project)? {
            if opts.skip.contains(&name) {
                continue;
            }
            let svc = project.service(&name).context("service vanished")?.clone();
            for (dep, cond) in &svc.depends_on {
                anyhow::ensure!(
                    !opts.skip.contains(dep) || *cond == Condition::Started,
                    "{name} depends on {dep}, which is skipped"
                );
            }
            eprintln!("==> {name}");
            let running = stack
                .start(&svc, &runners[&name], &hosts_file, &opts)
                .await
                .with_context(|| format!("starting {name}"))?;
            stack.running.push((name.clone(), running));
            let wanted: Vec<Condition> = project
                .services
                .iter()
                .flat_map(|o| &o.depends_on)
                .filter(|(d, _)| *d == name)
                .map(|(_, c)| *c)
                .collect();
            if wanted.contains(&Condition::CompletedSuccessfully) {
                stack.wait_exit(&name).await?;
            } else {
                stack.wait_healthy(&svc, &runners[&name]).await?;
            }
        }
        if opts.publish {
            for s in &project.services {
                if opts.skip.contains(&s.name) {
                    continue;
                }
                for p in &s.ports {
                    let tasks = publish(
                        &p.host_ip,
                        p.host_port,
                        &stack.addrs[&s.name],
                        p.container_port,
                    )
                    .await
                    .with_context(|| format!("services.{}.ports", s.name))?;
                    stack
                        .running
                        .push((format!("{}:publish", s.name), Running::Tasks(vec![tasks])));
                }
            }
        }
        Ok(stack)
    }

    fn runner_for(&self, s: &Service, dockerfile: &Dockerfile) -> anyhow::Result<Runner> {
        let image = s.image.as_deref().unwrap_or("");
        let repo = image_repo(image);
        let ours = s.build_target.clone().or_else(|| {
            repo.strip_prefix(&format!("{}/", self.project.name))
                .map(str::to_string)
        });
        if let Some(target) = ours {
            return Ok(Runner::Ours(dockerfile.image(&target)?));
        }
        if let Some(kind) = Kind::for_image(repo) {
            return Ok(Runner::StandIn(kind));
        }
        let program = |argv: &[&str], port| Runner::Program {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            port,
        };
        Ok(match repo {
            "postgres" => Runner::Postgres,
            "apache/kafka" if s.command.is_some() || s.entrypoint.is_some() => Runner::KafkaShell,
            "apache/kafka" => Runner::Kafka,
            "haproxy" => program(
                &[
                    "haproxy",
                    "-W",
                    "-db",
                    "-f",
                    "/usr/local/etc/haproxy/haproxy.cfg",
                ],
                None,
            ),
            "prom/prometheus" => program(
                &[
                    "prometheus",
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    "--web.listen-address=0.0.0.0:9090",
                ],
                Some(9090),
            ),
            "prom/alertmanager" => program(
                &[
                    "prometheus-alertmanager",
                    "--config.file=/etc/alertmanager/alertmanager.yml",
                    "--storage.path=/alertmanager",
                    "--web.listen-address=0.0.0.0:9093",
                    "--cluster.listen-address=0.0.0.0:9094",
                ],
                Some(9093),
            ),
            "prom/blackbox-exporter" => program(
                &[
                    "prometheus-blackbox-exporter",
                    "--config.file=/etc/blackbox_exporter/config.yml",
                    "--web.listen-address=0.0.0.0:9115",
                ],
                Some(9115),
            ),
            "python" => program(&["python3"], None),
            "grafana/k6" => Runner::Load,
            other => anyhow::bail!(
                "services.{}.image: no local program for {other:?} (known: postgres, apache/kafka, haproxy, prom/*, python, grafana/*, and this project's images)",
                s.name
            ),
        })
    }

    fn addr(&self, service: &str) -> &str {
        self.addrs
            .get(service)
            .map(String::as_str)
            .unwrap_or("127.0.0.1")
    }

    /// Localize `text` for `service`, recording the change.
    fn localized(&mut self, service: &str, what: &str, text: &str) -> String {
        let (out, n) = localize(text, &self.addrs[service]);
        if n > 0 {
            self.rewrites.push(format!(
                "{service}: {what}: {n} self address(es) -> {}",
                self.addrs[service]
            ));
        }
        out
    }

    /// The volume mounts, with self addresses in mounted text files localized.
    fn mounts(&mut self, s: &Service) -> anyhow::Result<Vec<Mount>> {
        let mut out = Vec::new();
        for v in &s.volumes {
            let host = match &v.source {
                VolumeSource::Named(name) => {
                    let d = self.dir.join("volumes").join(name);
                    std::fs::create_dir_all(&d)?;
                    d
                }
                VolumeSource::Bind(p) => {
                    anyhow::ensure!(
                        p.exists(),
                        "services.{}.volumes: {} does not exist (Docker would mount an empty directory there)",
                        s.name,
                        p.display()
                    );
                    let copy = self
                        .dir
                        .join(&s.name)
                        .join("mounts")
                        .join(v.target.trim_start_matches('/'));
                    if self.localize_tree(&s.name, p, &copy)? {
                        copy
                    } else {
                        p.clone()
                    }
                }
            };
            out.push(Mount {
                host,
                target: v.target.clone(),
                read_only: v.read_only,
            });
        }
        Ok(out)
    }

    /// Copy `src` to `dst` with localized text if anything in it changes;
    /// true when the copy is needed.
    fn localize_tree(&mut self, service: &str, src: &Path, dst: &Path) -> anyhow::Result<bool> {
        let mut files = Vec::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p)? {
                    stack.push(e?.path());
                }
            } else {
                files.push(p);
            }
        }
        let mut changed = Vec::new();
        for f in &files {
            if let Ok(text) = std::fs::read_to_string(f) {
                let what = f
                    .strip_prefix(&self.project.dir)
                    .unwrap_or(f)
                    .display()
                    .to_string();
                let out = self.localized(service, &what, &text);
                if out != text {
                    changed.push((f.clone(), out));
                }
            }
        }
        if changed.is_empty() {
            return Ok(false);
        }
        for f in &files {
            let rel = f.strip_prefix(src).unwrap_or(Path::new(""));
            let to = if rel.as_os_str().is_empty() {
                dst.to_path_buf()
            } else {
                dst.join(rel)
            };
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match changed.iter().find(|(c, _)| c == f) {
                Some((_, text)) => std::fs::write(&to, text)?,
                None => {
                    std::fs::copy(f, &to)?;
                }
            }
        }
        Ok(true)
    }

    async fn start(
        &mut self,
        s: &Service,
        runner: &Runner,
        hosts_file: &Path,
        opts: &Options,
    ) -> anyhow::Result<Running> {
        let addr = self.addr(&s.name).to_string();
        let env_of = |me: &mut Self, base: &[(String, String)]| -> Vec<(String, String)> {
            let mut env: Vec<(String, String)> = vec![
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
                ("HOME".into(), "/".into()),
            ];
            for (k, v) in base.iter().chain(&s.environment) {
                env.retain(|(e, _)| e != k);
                let v = me.localized(&s.name, &format!("environment {k}"), v);
                env.push((k.clone(), v));
            }
            env
        };
        // Not run in a container: they mount nothing (a stand-in has no use
        // for promtail's Docker socket).
        match runner {
            Runner::Postgres => return self.start_postgres(s, &addr).await,
            Runner::Kafka => return self.start_kafka(s, &addr).await,
            Runner::StandIn(kind) => {
                return Ok(Running::Tasks(
                    standins::start(*kind, &addr, self.spans.clone()).await?,
                ));
            }
            _ => {}
        }
        let mut container = Container {
            scratch: self.dir.join(&s.name).join("root"),
            hosts_file: hosts_file.to_path_buf(),
            mounts: self.mounts(s)?,
            user: s.user.clone(),
            workdir: "/".into(),
            read_only: s.read_only,
        };
        std::fs::create_dir_all(&container.scratch)?;
        let (env, argv) = match runner {
            Runner::Postgres | Runner::Kafka | Runner::StandIn(_) => {
                anyhow::bail!("{} is not run in a container", s.name)
            }
            Runner::KafkaShell => {
                let shim = self.dir.join(&s.name).join("kafka-topics.sh");
                std::fs::write(
                    &shim,
                    "#!/bin/sh\nexec /usr/local/bin/todoctl kafka-topics \"$@\"\n",
                )?;
                set_executable(&shim)?;
                container.mounts.push(Mount {
                    host: shim,
                    target: "/opt/kafka/bin/kafka-topics.sh".into(),
                    read_only: true,
                });
                container.mounts.push(self.bin_mount(opts, "todoctl")?);
                let argv: Vec<String> = s
                    .entrypoint
                    .iter()
                    .flatten()
                    .chain(s.command.iter().flatten())
                    .cloned()
                    .collect();
                (env_of(self, &[]), argv)
            }
            Runner::Ours(image) => {
                container.mounts.push(Mount {
                    host: opts.bin_dir.join(&image.binary),
                    target: image.entrypoint[0].clone(),
                    read_only: true,
                });
                if container.user.is_none() {
                    container.user = image.user.clone();
                }
                let mut argv = image.entrypoint.clone();
                argv.extend(s.command.iter().flatten().cloned());
                (env_of(self, &image.env), argv)
            }
            Runner::Program { argv, .. } => {
                let argv: Vec<String> = match (&s.command, argv[0].as_str()) {
                    (Some(cmd), "python3") => std::iter::once("python3".to_string())
                        .chain(cmd.iter().skip_while(|a| a.starts_with("python")).cloned())
                        .collect(),
                    (Some(cmd), _) => {
                        let mut out = vec![argv[0].clone()];
                        out.extend(cmd.iter().cloned());
                        for default in &argv[1..] {
                            let flag = default.split('=').next().unwrap_or(default);
                            if !out.iter().any(|a| a.split('=').next() == Some(flag)) {
                                out.push(default.clone());
                            }
                        }
                        out
                    }
                    (None, _) => argv.clone(),
                };
                let argv = argv
                    .iter()
                    .map(|a| self.localized(&s.name, "command", a))
                    .collect();
                (env_of(self, &[]), argv)
            }
            Runner::Load => {
                container.mounts.push(self.bin_mount(opts, "todoctl")?);
                let env: BTreeMap<_, _> = s.environment.iter().cloned().collect();
                // k6's DURATION (`24h`); unset runs until stopped (0).
                let duration = match env.get("DURATION") {
                    None => 0,
                    Some(d) => super::file::parse_duration(d)
                        .with_context(|| {
                            format!(
                                "services.{}.environment.DURATION: not a duration: {d:?}",
                                s.name
                            )
                        })?
                        .as_secs(),
                };
                let gateway = env.get("GATEWAY_URL").cloned().unwrap_or_default();
                let argv = vec![
                    "/usr/local/bin/todoctl".into(),
                    "load".into(),
                    "--command".into(),
                    gateway.clone(),
                    "--query".into(),
                    gateway,
                    "--rate".into(),
                    env.get("RATE").cloned().unwrap_or_else(|| "20".into()),
                    "--duration-secs".into(),
                    duration.to_string(),
                ];
                (env_of(self, &[]), argv)
            }
        };
        let log = self.log_path(&s.name);
        let out = std::fs::File::create(&log)?;
        let child = container
            .command(&env, &argv)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context(
                "running unshare (the parity run needs root: mount namespaces and overlayfs)",
            )?;
        Ok(Running::Child(child))
    }

    /// `apache/kafka`: the tansu broker on the PLAINTEXT listener's port,
    /// advertising what KAFKA_ADVERTISED_LISTENERS says.
    async fn start_kafka(&mut self, s: &Service, addr: &str) -> anyhow::Result<Running> {
        let env: BTreeMap<_, _> = s.environment.iter().cloned().collect();
        let port_of = |key: &str| -> Option<String> {
            env.get(key)?
                .split(',')
                .find(|l| l.starts_with("PLAINTEXT://"))
                .and_then(|l| l.rsplit_once(':'))
                .map(|(_, p)| p.to_string())
        };
        let port = port_of("KAFKA_LISTENERS").unwrap_or_else(|| "9092".into());
        let advertised = env
            .get("KAFKA_ADVERTISED_LISTENERS")
            .and_then(|v| v.split(',').find(|l| l.starts_with("PLAINTEXT://")))
            .map(|l| l.trim_start_matches("PLAINTEXT://").to_string())
            .unwrap_or_else(|| format!("{}:{port}", s.name));
        let broker = crate::Broker::start_at(&format!("{addr}:{port}"), &advertised).await?;
        Ok(Running::Owned(Box::new(broker)))
    }

    fn bin_mount(&self, opts: &Options, name: &str) -> anyhow::Result<Mount> {
        let host = opts.bin_dir.join(name);
        anyhow::ensure!(
            host.exists(),
            "{} not built (cargo build --workspace --bins)",
            host.display()
        );
        Ok(Mount {
            host,
            target: format!("/usr/local/bin/{name}"),
            read_only: true,
        })
    }

    /// The `postgres` image: a cluster on the service's address, port 5432,
    /// with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB as the image's
    /// entrypoint creates them, and password authentication over TCP.
    async fn start_postgres(&mut self, s: &Service, addr: &str) -> anyhow::Result<Running> {
        let env: BTreeMap<_, _> = s.environment.iter().cloned().collect();
        let user = env
            .get("POSTGRES_USER")
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        let password = env
            .get("POSTGRES_PASSWORD")
            .cloned()
            .context("POSTGRES_PASSWORD is not set (the image refuses to start without it)")?;
        let db = env
            .get("POSTGRES_DB")
            .cloned()
            .unwrap_or_else(|| user.clone());
        let data = s
            .volumes
            .iter()
            .find(|v| v.target == "/var/lib/postgresql/data")
            .map(|v| match &v.source {
                VolumeSource::Named(n) => self.dir.join("volumes").join(n),
                VolumeSource::Bind(p) => p.clone(),
            })
            .unwrap_or_else(|| self.dir.join(&s.name).join("data"));
        let pg = crate::Postgres::start(crate::postgres::Options {
            unsafe_fast: false,
            max_connections: 200,
            port: Some(5432),
            data_dir: Some(data),
            listen_host: Some(addr.to_string()),
            tls: None,
            settings: Vec::new(),
        })
        .await?;
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url("postgres")).await?;
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let role_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&user)
                .fetch_one(&mut conn)
                .await?;
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{verb} ROLE {} LOGIN SUPERUSER PASSWORD {}",
            ident(&user),
            lit(&password)
        )))
        .execute(&mut conn)
        .await?;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&db)
                .fetch_one(&mut conn)
                .await?;
        if !db_exists {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {} OWNER {}",
                ident(&db),
                ident(&user)
            )))
            .execute(&mut conn)
            .await?;
        }
        // As the image: passwords over TCP (scram), trust only on the socket
        // and for the set-up superuser of this run.
        std::fs::write(
            pg.hba_file(),
            format!(
                "local all all trust\nhost all postgres {addr}/32 trust\nhost all all 0.0.0.0/0 scram-sha-256\n"
            ),
        )?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await?;
        Ok(Running::Owned(Box::new(pg)))
    }

    async fn wait_exit(&mut self, name: &str) -> anyhow::Result<()> {
        let log = self.log_path(name);
        let Some((_, running)) = self.running.iter_mut().find(|(n, _)| n == name) else {
            anyhow::bail!("{name} is not running");
        };
        if let Running::Child(child) = running {
            let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
                .await
                .with_context(|| format!("{name} did not finish within 120 s"))??;
            anyhow::ensure!(
                status.success(),
                "{name} exited with {status}:\n{}",
                tail(&log)
            );
            *running = Running::Exited;
        }
        Ok(())
    }

    /// The service's healthcheck, as far as it can be read here: an HTTP URL
    /// in it is fetched (2xx); otherwise the port the program serves is
    /// connected to. Waits as long as Compose would (start period +
    /// interval × retries).
    async fn wait_healthy(&mut self, s: &Service, runner: &Runner) -> anyhow::Result<()> {
        let addr = self.addr(&s.name).to_string();
        let deadline = s
            .healthcheck
            .as_ref()
            .map(|h| h.deadline())
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_secs(30));
        let url = s.healthcheck.as_ref().and_then(|h| {
            h.test.iter().find_map(|t| {
                let i = t.find("http://")?;
                let url: String = t[i..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '\'' | '"' | ')'))
                    .collect();
                Some(localize(&url, &addr).0)
            })
        });
        let port = match runner {
            Runner::Postgres => Some(5432),
            Runner::Kafka => Some(9092),
            Runner::StandIn(k) => Some(k.main_port()),
            Runner::Program { port, .. } => *port,
            _ => None,
        };
        let log = self.log_path(&s.name);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let start = std::time::Instant::now();
        loop {
            let healthy = match (&url, port) {
                (Some(url), _) => http
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                (None, Some(port)) => tokio::net::TcpStream::connect((addr.as_str(), port))
                    .await
                    .is_ok(),
                (None, None) => true,
            };
            if healthy {
                return Ok(());
            }
            // A process that died is reported as such, not as a slow start.
            if let Some((_, Running::Child(child))) =
                self.running.iter_mut().find(|(n, _)| n == &s.name)
                && let Ok(Some(status)) = child.try_wait()
            {
                anyhow::bail!("{} exited with {status}:\n{}", s.name, tail(&log));
            }
            if start.elapsed() > deadline {
                anyhow::bail!(
                    "{} not healthy after {deadline:?} ({}):\n{}",
                    s.name,
                    url.clone()
                        .unwrap_or_else(|| format!("{addr}:{}", port.unwrap_or(0))),
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{service}.log"))
    }

    /// The loopback address a service was given.
    pub fn address(&self, service: &str) -> anyhow::Result<&str> {
        self.addrs
            .get(service)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("no service {service} in the compose file"))
    }

    /// `http://<address of service>:<port>`.
    pub fn url(&self, service: &str, port: u16) -> anyhow::Result<String> {
        Ok(format!("http://{}:{port}", self.address(service)?))
    }

    /// Spans the Tempo stand-in decoded.
    pub fn spans(&self) -> Seen {
        self.spans.clone()
    }

    /// Resolve `host:port` (a compose name or an address) to an address here.
    pub fn resolve(&self, host_port: &str) -> Option<String> {
        let (host, port) = host_port.rsplit_once(':')?;
        Some(format!("{}:{port}", self.addrs.get(host)?))
    }
}

fn describe(r: &Runner) -> String {
    match r {
        Runner::Postgres => "PostgreSQL (Debian) on :5432".into(),
        Runner::Kafka => "tansu Kafka-protocol broker (for apache/kafka)".into(),
        Runner::KafkaShell => {
            "its own command, kafka-topics.sh answered by `todoctl kafka-topics`".into()
        }
        Runner::Ours(img) => format!("workspace binary {} as {}", img.binary, img.entrypoint[0]),
        Runner::Program { argv, .. } => format!("{} (Debian)", argv[0]),
        Runner::StandIn(k) => k.describe().into(),
        Runner::Load => "`todoctl load` at RATE against GATEWAY_URL (no k6 here)".into(),
    }
}

fn tail(log: &Path) -> String {
    format!(
        "last lines of {}:\n{}",
        log.display(),
        crate::log_tail(log, 15)
    )
}

fn set_executable(p: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Services in an order that starts every dependency first (file order
/// otherwise); a cycle is an error.
fn start_order(p: &Project) -> anyhow::Result<Vec<String>> {
    let mut done: Vec<String> = Vec::new();
    while done.len() < p.services.len() {
        let before = done.len();
        for s in &p.services {
            if !done.contains(&s.name) && s.depends_on.iter().all(|(d, _)| done.contains(d)) {
                done.push(s.name.clone());
            }
        }
        anyhow::ensure!(done.len() > before, "depends_on has a cycle");
    }
    Ok(done)
}

/// A published port: `host_ip:host_port` on the machine forwards to the
/// service's address, as Docker's port mapping does.
async fn publish(
    host_ip: &str,
    host_port: u16,
    addr: &str,
    port: u16,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind((host_ip, host_port))
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot publish {host_ip}:{host_port}: {e} (is another stack running?)")
        })?;
    let target = format!("{addr}:{port}");
    Ok(tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    }))
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        // Reverse start order: dependents first.
        while let Some((_, r)) = self.running.pop() {
            match r {
                Running::Child(mut c) => {
                    let _ = c.start_kill();
                }
                Running::Tasks(ts) => ts.iter().for_each(|t| t.abort()),
                Running::Owned(_) | Running::Exited => {}
            }
        }
    }
}
