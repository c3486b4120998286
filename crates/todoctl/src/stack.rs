//! `todoctl stack up`: the whole platform as local processes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use devstack::{Broker, Postgres, Service, Wiring};

#[derive(Args)]
pub struct StackArgs {
    #[command(subcommand)]
    cmd: StackCmd,
}

#[derive(Subcommand)]
enum StackCmd {
    /// Start Postgres, the broker and the services; stop them on Ctrl-C.
    Up(UpArgs),
}

#[derive(Args)]
struct UpArgs {
    /// Where Postgres data and service logs live.
    #[arg(long, default_value = ".stack")]
    dir: PathBuf,
    /// Ports: 0 picks a free one.
    #[arg(long, default_value_t = 8081)]
    command_port: u16,
    #[arg(long, default_value_t = 8082)]
    query_port: u16,
    #[arg(long, default_value_t = 8083)]
    processor_port: u16,
    #[arg(long, default_value_t = 55432)]
    postgres_port: u16,
    #[arg(long, default_value_t = 19092)]
    broker_port: u16,
    #[arg(long, default_value_t = 8084)]
    observer_port: u16,
    /// Start, prove a write reaches the query API, then stop (for CI).
    #[arg(long)]
    smoke: bool,
    /// No canary: one command service on --command-port, no HAProxy.
    #[arg(long)]
    no_canary: bool,
    /// Make the canary build answer this share of requests with 500 (0–1),
    /// to watch the observer roll it back.
    #[arg(long, default_value_t = 0.0)]
    canary_error_rate: f64,
    /// Add this much latency to every canary request.
    #[arg(long, default_value_t = 0)]
    canary_latency_ms: u64,
    /// Instead: run the services of a compose file (default
    /// docker-compose.yml) as local processes, the compose file being the
    /// single source of truth (docs/deployment.md, "Compose parity run").
    /// Needs root (mount namespaces). Each service gets its own loopback
    /// address; images without a local program get stand-ins (listed at start).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "docker-compose.yml")]
    compose: Option<PathBuf>,
    /// With --compose: the variables for ${VAR} interpolation (default: .env
    /// next to the compose file, else .env.example); the environment
    /// overrides them, as in Compose.
    #[arg(long, value_name = "FILE", requires = "compose")]
    env_file: Option<PathBuf>,
    /// With --compose: the first three octets of the services' addresses.
    #[arg(long, default_value = "127.0.0", requires = "compose")]
    subnet: String,
    /// With --compose: services not to start (repeatable).
    #[arg(long, value_name = "SERVICE", requires = "compose")]
    skip: Vec<String>,
    /// With --compose: do not forward the published `ports:` from the machine.
    #[arg(long, requires = "compose")]
    no_publish: bool,
}

pub async fn run(a: StackArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        StackCmd::Up(up) => up_cmd(up).await,
    }
}

async fn up_cmd(mut a: UpArgs) -> anyhow::Result<ExitCode> {
    if let Some(file) = a.compose.take() {
        return compose_up(file, a).await;
    }
    // A second stack on the same ports would talk to the first one's
    // PostgreSQL and broker, and lose them when it stops: refuse instead.
    devstack::ensure_ports_free(&[
        ("--command-port", a.command_port),
        ("--query-port", a.query_port),
        ("--processor-port", a.processor_port),
        ("--postgres-port", a.postgres_port),
        ("--broker-port", a.broker_port),
        ("--observer-port", a.observer_port),
    ])?;
    // Port 0 means "any free port" (CI runs the smoke test next to other stacks).
    for port in [
        &mut a.observer_port,
        &mut a.command_port,
        &mut a.query_port,
        &mut a.processor_port,
        &mut a.postgres_port,
        &mut a.broker_port,
    ] {
        if *port == 0 {
            *port = devstack::free_port()?;
        }
    }
    let dir = std::path::absolute(&a.dir)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    eprintln!(
        "starting PostgreSQL on 127.0.0.1:{} (data in {})",
        a.postgres_port,
        dir.join("pg").display()
    );
    let pg_opts = devstack::postgres::Options {
        unsafe_fast: false,
        max_connections: 200,
        port: Some(a.postgres_port),
        data_dir: Some(dir.join("pg")),
        listen_host: None,
        tls: None,
        settings: Vec::new(),
    };
    let postgres = Postgres::start(pg_opts).await?;
    eprintln!(
        "starting the Kafka-protocol broker (tansu) on 127.0.0.1:{}",
        a.broker_port
    );
    let broker = Broker::start_on(Some(a.broker_port)).await?;
    broker.create_topics(contracts::topics::ALL).await?;
    let admin_url = postgres.url("postgres");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'todo')")
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        sqlx::query("CREATE DATABASE todo")
            .execute(&mut conn)
            .await?;
    }
    let wiring = Wiring {
        database_url: postgres.url("todo"),
        brokers: broker.brokers(),
        log_dir: logs.clone(),
        common_env: vec![],
    };
    eprintln!("starting services (logs in {})", logs.display());
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.canary_error_rate),
        "--canary-error-rate must be between 0 and 1"
    );
    // With a canary: HAProxy on --command-port in front of a stable and a
    // canary command service; the observer moves the weights.
    let (mut command, canary, gateway) = if a.no_canary {
        let c = wiring
            .spawn_on(Service::Command, a.command_port, &[])
            .await?;
        (c, None, None)
    } else {
        let stable = wiring
            .spawn(Service::Command, &[("VERSION", STABLE_VERSION)])
            .await?;
        let version = canary_version();
        let (rate, latency) = (
            a.canary_error_rate.to_string(),
            a.canary_latency_ms.to_string(),
        );
        let canary = wiring
            .spawn(
                Service::Command,
                &[
                    ("VERSION", &version),
                    ("FAULT_ERROR_RATE", &rate),
                    ("FAULT_LATENCY_MS", &latency),
                ],
            )
            .await?;
        let gw = devstack::haproxy::Haproxy::start_on(
            Some(a.command_port),
            &format!("127.0.0.1:{}", stable.port),
            &format!("127.0.0.1:{}", canary.port),
            0,
        )
        .await?;
        let spec_dir = dir.join("canary");
        std::fs::create_dir_all(&spec_dir)?;
        std::fs::write(
            spec_dir.join("command-service.yaml"),
            canary_spec(&gw.runtime_api(), &version),
        )?;
        eprintln!(
            "HAProxy on 127.0.0.1:{} in front of stable (:{}) and canary {version} (:{}); spec in {}",
            a.command_port,
            stable.port,
            canary.port,
            spec_dir.display()
        );
        (stable, Some((canary, spec_dir)), Some(gw))
    };
    let mut query = wiring.spawn_on(Service::Query, a.query_port, &[]).await?;
    let mut processor = wiring
        .spawn_on(Service::Processor, a.processor_port, &[])
        .await?;

    let mut scraped = vec![&command, &query, &processor];
    if let Some((c, _)) = &canary {
        scraped.push(c);
    }
    let monitoring = start_monitoring(
        &wiring,
        &scraped,
        a.observer_port,
        canary.as_ref().map(|(_, d)| d.as_path()),
    )
    .await?;
    let command_url = match &gateway {
        Some(g) => g.url(),
        None => command.base_url(),
    };

    println!("The platform is up.");
    println!();
    match &gateway {
        Some(g) => println!(
            "  command API      {} (HAProxy: stable {} + canary {})",
            g.url(),
            command.base_url(),
            canary
                .as_ref()
                .map(|(c, _)| c.base_url())
                .unwrap_or_default()
        ),
        None => println!("  command API      {}", command.base_url()),
    }
    println!("  query API        {}", query.base_url());
    println!("  event processor  {}/metrics", processor.base_url());
    println!("  postgres         {}", wiring.database_url);
    println!("  kafka brokers    {}", wiring.brokers);
    if let Some(m) = &monitoring {
        println!(
            "  prometheus       {} (rules from alerts/)",
            m.prometheus.url()
        );
        println!("  alertmanager     {}", m.alertmanager.url());
        if let Some(o) = &m.observer {
            println!(
                "  observer         {} (status page; lag: todoctl lag --observer-url {})",
                o.base_url(),
                o.base_url()
            );
        }
    }
    if let (Some(_), Some(o)) = (
        &gateway,
        monitoring.as_ref().and_then(|m| m.observer.as_ref()),
    ) {
        println!(
            "  canary           todoctl canary status command-service --observer-url {} (drive traffic: todoctl load --command {} --query {} --duration-secs 600)",
            o.base_url(),
            command_url,
            query.base_url()
        );
    }
    println!();
    println!("Try it (dev auth: X-User-Id names the user):");
    println!(
        "  curl -s -X POST {}/v1/todos -H 'content-type: application/json' -H 'x-user-id: alice' -d '{{\"title\":\"Try the platform\",\"priority\":\"high\",\"tags\":[\"demo\"]}}'",
        command_url
    );
    println!(
        "  curl -s {}/v1/todos -H 'x-user-id: alice'",
        query.base_url()
    );
    println!();

    let code = if a.smoke {
        let code = smoke(&command_url, &query.base_url()).await?;
        if let (Some(_), Some(o)) = (
            &gateway,
            monitoring.as_ref().and_then(|m| m.observer.as_ref()),
        ) {
            let url = format!("{}/api/v1/canaries/command-service", o.base_url());
            devstack::wait_until(
                "the observer to start the canary rollout",
                Duration::from_secs(60),
                || {
                    let url = url.clone();
                    async move {
                        match reqwest::get(&url).await {
                            Ok(r) => r
                                .json::<observer_api::canaries::CanaryView>()
                                .await
                                .is_ok_and(|c| c.rollout.is_some()),
                            Err(_) => false,
                        }
                    }
                },
            )
            .await?;
            println!("smoke test passed: the observer runs the command-service canary rollout");
        }
        if let Some(o) = monitoring.as_ref().and_then(|m| m.observer.as_ref()) {
            let url = format!("{}/api/v1/lag", o.base_url());
            devstack::wait_until(
                "the observer to report the query-service group",
                Duration::from_secs(60),
                || {
                    let url = url.clone();
                    async move {
                        match reqwest::get(&url).await {
                            Ok(r) => r
                                .json::<observer_api::lag::LagState>()
                                .await
                                .is_ok_and(|l| {
                                    l.snapshot.groups.iter().any(|g| g.group == "query-service")
                                }),
                            Err(_) => false,
                        }
                    }
                },
            )
            .await?;
            println!("smoke test passed: the observer reports the query-service consumer group");
        }
        code
    } else {
        println!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
        ExitCode::SUCCESS
    };
    eprintln!("stopping services");
    if let Some(mut m) = monitoring
        && let Some(o) = m.observer.as_mut()
    {
        o.stop(Duration::from_secs(10)).await?;
    }
    drop(gateway);
    if let Some((mut c, _)) = canary {
        c.stop(Duration::from_secs(10)).await?;
    }
    for s in [&mut command, &mut query, &mut processor] {
        s.stop(Duration::from_secs(10)).await?;
    }
    drop(broker);
    drop(postgres);
    Ok(code)
}

async fn smoke(command: &str, query: &str) -> anyhow::Result<ExitCode> {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{command}/v1/todos"))
        .header("x-user-id", "smoke")
        .json(&serde_json::json!({"title": "smoke test"}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().as_u16() == 201,
        "create answered {}",
        resp.status()
    );
    let body: serde_json::Value = resp.json().await?;
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let url = format!("{query}/v1/todos/{id}");
    devstack::wait_until(
        "the todo to appear in the query API",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .header("x-user-id", "smoke")
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        },
    )
    .await?;
    println!("smoke test passed: todo {id} written to the command API is visible in the query API");
    Ok(ExitCode::SUCCESS)
}

struct Monitoring {
    prometheus: devstack::prometheus::Prometheus,
    alertmanager: devstack::alertmanager::Alertmanager,
    observer: Option<devstack::ServiceProcess>,
}

/// Prometheus (scraping every service, loading the generated rules),
/// Alertmanager (generated routing) and the observer, when their binaries are
/// installed and the generated files are in the working directory.
async fn start_monitoring(
    wiring: &Wiring,
    services: &[&devstack::ServiceProcess],
    observer_port: u16,
    canary_dir: Option<&std::path::Path>,
) -> anyhow::Result<Option<Monitoring>> {
    let has = |bin: &str| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok()
    };
    if !has("prometheus") || !has("prometheus-alertmanager") {
        eprintln!(
            "note: prometheus / prometheus-alertmanager not installed; starting without monitoring"
        );
        return Ok(None);
    }
    let rule_files = devstack::prometheus::rule_files(std::path::Path::new("alerts"));
    let mut targets: Vec<String> = services
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    targets.push(format!("127.0.0.1:{observer_port}"));
    eprintln!(
        "starting Prometheus ({} rule files) and Alertmanager",
        rule_files.len()
    );
    let prometheus =
        devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
            targets,
            rule_files,
            scrape_interval: "5s".into(),
            evaluation_interval: "15s".into(),
        })
        .await?;
    let am_config = std::fs::read_to_string("alerts/alertmanager.yml")
        .unwrap_or_else(|_| "route:\n  receiver: default\nreceivers:\n  - name: default\n".into());
    let alertmanager = devstack::alertmanager::Alertmanager::start(&am_config).await?;
    let observer = if devstack::workspace_bin("observer").is_ok() {
        let mut env: Vec<(String, String)> = vec![
            (
                "OBSERVER_LISTEN_ADDR".into(),
                format!("127.0.0.1:{observer_port}"),
            ),
            ("OBSERVER_KAFKA_BROKERS".into(), wiring.brokers.clone()),
            ("OBSERVER_PROMETHEUS_URL".into(), prometheus.url()),
            ("OBSERVER_ALERTMANAGER_URL".into(), alertmanager.url()),
            ("OBSERVER_SLO_DIR".into(), "slo".into()),
            (
                "OBSERVER_EXTERNAL_URL".into(),
                format!("http://127.0.0.1:{observer_port}/"),
            ),
            // Canary actions: dev auth records X-User-Id (todoctl sends $USER).
            ("OBSERVER_AUTH_MODE".into(), "dev".into()),
        ];
        if let Some(d) = canary_dir {
            env.push(("OBSERVER_CANARY_DIR".into(), d.display().to_string()));
            env.push(("OBSERVER_DATABASE_URL".into(), wiring.database_url.clone()));
        }
        Some(
            devstack::ServiceProcess::spawn("observer", observer_port, &env, &wiring.log_dir)
                .await?,
        )
    } else {
        None
    };
    Ok(Some(Monitoring {
        prometheus,
        alertmanager,
        observer,
    }))
}

const STABLE_VERSION: &str = "stable";

/// A new version label per start, so each `stack up` runs a fresh rollout.
fn canary_version() -> String {
    format!("canary-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"))
}

/// The local stack's canary: quick steps so a rollout is visible in minutes
/// under `todoctl load`.
fn canary_spec(runtime_api: &str, version: &str) -> String {
    format!(
        "# Written by todoctl stack up. See docs/canary.md.\n\
         name: command-service\n\
         target: command-service\n\
         stable: {backend}/{stable}\n\
         canary: {backend}/{canary}\n\
         stable_version: {STABLE_VERSION}\n\
         canary_version: {version}\n\
         driver:\n  haproxy:\n    runtime_api: {runtime_api}\n\
         steps: [10, 25, 50, 100]\n\
         interval_secs: 10\n\
         analysis:\n  min_requests: 50\n  latency_threshold_seconds: 0.1\n",
        backend = devstack::haproxy::BACKEND,
        stable = devstack::haproxy::STABLE,
        canary = devstack::haproxy::CANARY,
    )
}

/// `todoctl stack up --compose`: the compose file's services as local processes.
async fn compose_up(file: PathBuf, a: UpArgs) -> anyhow::Result<ExitCode> {
    let project_dir = std::path::absolute(&file)?
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let env_file = a.env_file.clone().unwrap_or_else(|| {
        let dot_env = project_dir.join(".env");
        if dot_env.exists() {
            dot_env
        } else {
            project_dir.join(".env.example")
        }
    });
    let mut vars = devstack::compose::Vars::from_env_file(&env_file)?;
    for (k, v) in std::env::vars() {
        vars.set(&k, &v);
    }
    let dir = std::path::absolute(&a.dir)?.join("compose");
    eprintln!(
        "running {} as local processes (variables from {}, state in {})",
        file.display(),
        env_file.display(),
        dir.display()
    );
    let stack = devstack::compose::ComposeStack::up(devstack::compose::Options {
        file: file.clone(),
        vars,
        dir: dir.clone(),
        subnet: a.subnet.clone(),
        skip: a.skip.clone(),
        publish: !a.no_publish,
        bin_dir: devstack::bin_dir()?,
    })
    .await?;
    if !stack.rewrites.is_empty() {
        eprintln!("rewritten (a container's own addresses -> its address here):");
        for r in &stack.rewrites {
            eprintln!("  {r}");
        }
    }
    println!(
        "The compose stack is up ({} services).",
        stack.placements.len()
    );
    for p in &stack.placements {
        println!("  {:<24} {}", p.service, p.addr);
    }
    println!("Logs: {}", dir.join("logs").display());
    if a.smoke {
        return Ok(ExitCode::SUCCESS);
    }
    println!("Ctrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    drop(stack);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct KafkaTopicsArgs {
    #[arg(long)]
    bootstrap_server: String,
    #[arg(long)]
    create: bool,
    #[arg(long)]
    if_not_exists: bool,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
}

pub async fn kafka_topics(a: KafkaTopicsArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.create, "only --create is supported");
    anyhow::ensure!(
        a.if_not_exists,
        "this shim accepts an existing topic, which kafka-topics.sh does only with --if-not-exists: pass it"
    );
    anyhow::ensure!(
        a.replication_factor == 1,
        "--replication-factor {}: the local broker has one node",
        a.replication_factor
    );
    let settings = bus::KafkaSettings::new(a.bootstrap_server.clone(), "kafka-topics");
    // ensure_topics treats an existing topic as success (--if-not-exists).
    bus::ensure_topics(&settings, &[(a.topic.as_str(), a.partitions)]).await?;
    println!("Created topic {}.", a.topic);
    Ok(ExitCode::SUCCESS)
}
