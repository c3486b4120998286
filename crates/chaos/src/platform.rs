//! The platform under test, as real processes: PostgreSQL, the broker,
//! Prometheus, the command, query and event-processor services and the
//! observer; and the faults applied to them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use devstack::{Service, ServiceProcess, Stack};

use crate::schedule::{Fault, Target};

/// Command-service settings the harness runs with: a short breaker open
/// time and request timeout, so the paths they guard are walked often.
pub const BREAKER_OPEN_MS: u64 = 1000;
pub const REQUEST_TIMEOUT_MS: u64 = 3000;

struct Proc {
    binary: &'static str,
    port: u16,
    env: Vec<(String, String)>,
    running: Option<ServiceProcess>,
}

/// When faults began and healed: the readiness sampler ignores samples taken
/// across a change.
#[derive(Debug, Clone, Default)]
pub struct Transitions(Arc<Mutex<Vec<Instant>>>);

impl Transitions {
    pub fn mark(&self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
    }

    /// Did anything change between `from` and `to` (with a margin)?
    pub fn any_between(&self, from: Instant, to: Instant, margin: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| *t + margin >= from && *t <= to + margin)
    }
}

pub struct Platform {
    pub stack: Stack,
    procs: BTreeMap<Target, Proc>,
    _prometheus: devstack::prometheus::Prometheus,
    pub transitions: Transitions,
    /// Set when every invariant held: the logs are deleted. Otherwise they
    /// are kept for the report. Last, so it is dropped after the processes.
    pub clean: bool,
    logs: Option<tempfile::TempDir>,
}

impl Platform {
    /// Start everything; `repo` holds `slo/` and `alerts/` for the observer
    /// and Prometheus.
    pub async fn start(repo: &Path) -> anyhow::Result<Self> {
        // Durable PostgreSQL: with synchronous_commit off a crash may lose
        // acknowledged commits, which is the test set-up's fault, not ours.
        let logs = tempfile::Builder::new().prefix("todo-chaos-").tempdir()?;
        let pg = devstack::postgres::Options {
            unsafe_fast: false,
            ..devstack::postgres::Options::for_tests()
        };
        let stack = Stack::start_with(pg, None, logs.path().to_path_buf(), None)
            .await
            .context("starting postgres and the broker")?;
        let mut procs = BTreeMap::new();
        let command_extra = [
            ("BREAKER_OPEN_MS", BREAKER_OPEN_MS.to_string()),
            ("REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS.to_string()),
        ];
        let extra: Vec<(&str, &str)> = command_extra
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        for (target, service, extra) in [
            (Target::Command, Service::Command, extra.as_slice()),
            (Target::Query, Service::Query, &[][..]),
            (Target::Processor, Service::Processor, &[][..]),
        ] {
            let port = devstack::free_port()?;
            procs.insert(
                target,
                Proc {
                    binary: service.binary(),
                    port,
                    env: stack.wiring.env(service, port, extra),
                    running: None,
                },
            );
        }
        let rule_files = devstack::prometheus::rule_files(&repo.join("alerts"));
        let observer_port = devstack::free_port()?;
        let mut targets: Vec<String> = procs
            .values()
            .map(|p| format!("127.0.0.1:{}", p.port))
            .collect();
        targets.push(format!("127.0.0.1:{observer_port}"));
        let prometheus =
            devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
                targets,
                rule_files,
                scrape_interval: "1s".into(),
                evaluation_interval: "2s".into(),
            })
            .await?;
        let observer_env = vec![
            (
                "OBSERVER_LISTEN_ADDR".to_string(),
                format!("127.0.0.1:{observer_port}"),
            ),
            (
                "OBSERVER_KAFKA_BROKERS".into(),
                stack.wiring.brokers.clone(),
            ),
            ("OBSERVER_PROMETHEUS_URL".into(), prometheus.url()),
            (
                "OBSERVER_SLO_DIR".into(),
                repo.join("slo").display().to_string(),
            ),
            ("OBSERVER_SLO_EVAL_INTERVAL_MS".into(), "2000".into()),
            ("OBSERVER_LAG_POLL_INTERVAL_MS".into(), "1000".into()),
        ];
        procs.insert(
            Target::Observer,
            Proc {
                binary: "observer",
                port: observer_port,
                env: observer_env,
                running: None,
            },
        );
        let mut p = Self {
            stack,
            procs,
            _prometheus: prometheus,
            transitions: Transitions::default(),
            clean: false,
            logs: Some(logs),
        };
        for t in [
            Target::Command,
            Target::Query,
            Target::Processor,
            Target::Observer,
        ] {
            p.start_proc(t).await?;
        }
        Ok(p)
    }

    pub fn url(&self, target: Target) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.procs.get(&target).map_or(0, |p| p.port)
        )
    }

    async fn start_proc(&mut self, t: Target) -> anyhow::Result<()> {
        let log_dir = self.stack.log_dir().to_path_buf();
        let p = self.procs.get_mut(&t).context("no such process")?;
        if p.running.is_none() {
            p.running = Some(
                ServiceProcess::spawn(p.binary, p.port, &p.env, &log_dir)
                    .await
                    .with_context(|| format!("starting {} again", t.name()))?,
            );
        }
        Ok(())
    }

    fn proc(&self, t: Target) -> anyhow::Result<&ServiceProcess> {
        self.procs
            .get(&t)
            .and_then(|p| p.running.as_ref())
            .with_context(|| format!("{} is not running", t.name()))
    }

    fn freeze(&mut self, t: Target, on: bool) -> anyhow::Result<()> {
        let sig = if on { "-STOP" } else { "-CONT" };
        match t {
            Target::Postgres => self.stack.postgres.signal_all(sig),
            Target::Broker if on => self.stack.broker.pause(),
            Target::Broker => self.stack.broker.resume(),
            _ => self.proc(t)?.signal(sig),
        }
    }

    async fn kill(&mut self, t: Target) -> anyhow::Result<()> {
        match t {
            Target::Postgres => self.stack.postgres.crash(),
            Target::Broker => anyhow::bail!("the broker keeps its data in memory: not killed"),
            _ => {
                if let Some(mut p) = self.procs.get_mut(&t).and_then(|p| p.running.take()) {
                    p.kill().await?;
                }
                Ok(())
            }
        }
    }

    async fn stop(&mut self, t: Target) -> anyhow::Result<()> {
        match t {
            Target::Postgres => {
                self.stack.postgres.stop();
                Ok(())
            }
            Target::Broker => anyhow::bail!("the broker keeps its data in memory: not restarted"),
            _ => {
                if let Some(mut p) = self.procs.get_mut(&t).and_then(|p| p.running.take()) {
                    p.stop(Duration::from_secs(20)).await?;
                }
                Ok(())
            }
        }
    }

    async fn bring_up(&mut self, t: Target) -> anyhow::Result<()> {
        match t {
            Target::Postgres => self.stack.postgres.start_again().await,
            Target::Broker => Ok(()),
            _ => self.start_proc(t).await,
        }
    }

    /// Apply `fault` and heal it; returns when everything runs again and
    /// both consumer groups are stable (healed includes rejoined).
    pub async fn apply(&mut self, fault: &Fault) -> anyhow::Result<()> {
        self.transitions.mark();
        let res = self.apply_inner(fault).await;
        self.transitions.mark();
        res.with_context(|| format!("applying '{fault}'"))?;
        self.wait_groups_stable()
            .await
            .with_context(|| format!("after '{fault}'"))
    }

    /// Both consumer groups Stable with a member. A consumer is only faulted
    /// again once it has rejoined: tansu (the local broker) never completes
    /// a rebalance after a member leaves gracefully during its first join
    /// (docs/reliability.md), which Apache Kafka does.
    pub async fn wait_groups_stable(&self) -> anyhow::Result<()> {
        let brokers = self.stack.wiring.brokers.clone();
        tokio::task::spawn_blocking(move || {
            wait_stable(
                &brokers,
                &["query-service", "event-processor"],
                Duration::from_secs(30),
            )
        })
        .await?
    }

    async fn apply_inner(&mut self, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Freeze { target, for_ } => {
                self.freeze(*target, true)?;
                tokio::time::sleep(*for_).await;
                self.freeze(*target, false)
            }
            Fault::Kill { target, down } => {
                self.kill(*target).await?;
                tokio::time::sleep(*down).await;
                self.bring_up(*target).await
            }
            Fault::Restart { target, down } => {
                self.stop(*target).await?;
                tokio::time::sleep(*down).await;
                self.bring_up(*target).await
            }
            Fault::PgRestartFrozen { down, frozen } => {
                self.stop(Target::Postgres).await?;
                tokio::time::sleep(*down).await;
                self.bring_up(Target::Postgres).await?;
                // Between the start and the freeze PostgreSQL answers for a
                // moment: a state change of its own, so invariant (c) does
                // not judge a readiness answer taken in that moment.
                self.transitions.mark();
                self.freeze(Target::Postgres, true)?;
                self.transitions.mark();
                tokio::time::sleep(*frozen).await;
                self.freeze(Target::Postgres, false)
            }
        }
    }

    /// Where each process logs, for a failure report.
    pub fn log_dir(&self) -> &Path {
        self.stack.log_dir()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        // A run that broke an invariant or failed keeps its process logs.
        if !self.clean
            && let Some(logs) = self.logs.take()
        {
            eprintln!("chaos: process logs kept in {}", logs.keep().display());
        }
    }
}

fn wait_stable(brokers: &str, groups: &[&str], timeout: Duration) -> anyhow::Result<()> {
    use bus::rdkafka::consumer::{BaseConsumer, Consumer as _};
    let c: BaseConsumer = bus::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + timeout;
    for group in groups {
        loop {
            let state = c
                .fetch_group_list(Some(group), Duration::from_secs(2))
                .ok()
                .and_then(|l| {
                    l.groups()
                        .first()
                        .map(|g| (g.state().to_string(), g.members().len()))
                });
            if matches!(&state, Some((s, n)) if s == "Stable" && *n > 0) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "consumer group {group} not stable after {timeout:?} (last seen: {state:?})"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}
