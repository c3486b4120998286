//! `todoctl bench`: the write path and end-to-end freshness, each next to a
//! raw baseline measured in the same run on the same servers:
//! - writes vs `pgbench` single-row inserts at the same concurrency;
//! - freshness (201 → visible in the query API) vs a bare Kafka
//!   produce→consume round trip at the same rate.

mod cpu;
mod statements;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bus::rdkafka::Message as _;
use bus::rdkafka::consumer::{Consumer, StreamConsumer};
use bus::rdkafka::producer::{FutureProducer, FutureRecord};
use chrono::{DateTime, Utc};
use clap::Args;
use devstack::{Service, ServiceProcess, Stack};
use serde::Serialize;

use crate::Output;

#[derive(Args)]
pub struct BenchArgs {
    /// Concurrent writers for the throughput phase (pgbench uses the same).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of each throughput phase.
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
    /// Writes per second for the freshness phase (the round-trip baseline uses the same).
    #[arg(long, default_value_t = 200)]
    freshness_rate: u64,
    #[arg(long, default_value_t = 15)]
    freshness_secs: u64,
    /// Run Postgres without fsync (both baseline and ours); default is durable.
    #[arg(long)]
    unsafe_fast_postgres: bool,
    /// Leave the event processor out (it shares the CPU with everything else).
    #[arg(long)]
    without_processor: bool,
    /// Measure the write path alone: command service with its relay off, no
    /// consumers, no freshness phases (where the CPU goes without downstream work).
    #[arg(long)]
    write_path_only: bool,
    /// With --write-path-only: keep the outbox relay on, so every write is
    /// also published to the broker during the measurement (the whole write
    /// side; still no consumers).
    #[arg(long, requires = "write_path_only")]
    with_relay: bool,
    /// Compare write latency at `--freshness-rate` with telemetry off and with
    /// traces, Loki and Sentry all configured against endpoints that are down.
    #[arg(long)]
    telemetry_overhead: bool,
    /// Load pg_stat_statements into the bench's PostgreSQL and report each
    /// phase's ten costliest statements, in execution time per 1,000 events.
    #[arg(long)]
    statements: bool,
    /// Load generator of the throughput phase: `wrk` (a C client, as light as
    /// pgbench's) when installed, else the built-in Rust client.
    #[arg(long, value_enum, default_value_t = LoadGenerator::Auto)]
    load_generator: LoadGenerator,
    /// The consumers' `fetch.wait.max.ms`, for the services (their
    /// `kafka_fetch_wait_max_ms`) and the round-trip baseline alike.
    #[arg(long, default_value_t = bus::settings::DEFAULT_FETCH_WAIT_MAX_MS)]
    fetch_wait_max_ms: u32,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadGenerator {
    Auto,
    Wrk,
    Builtin,
}

fn wrk_available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok()
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        count: v.len(),
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    postgres_durable: bool,
    concurrency: usize,
    duration_secs: u64,
    load_generator: LoadGenerator,
    /// The consumers' `fetch.wait.max.ms` (services and round trip alike).
    fetch_wait_max_ms: u32,
    pgbench_insert_tps: f64,
    pgbench_latency_avg_ms: f64,
    write_tps: f64,
    write_errors: usize,
    write_latency: Percentiles,
    write_vs_pgbench: f64,
    /// The write path with the rest of the platform idle (relay off, no
    /// consumers): the like-for-like comparison with pgbench.
    write_path_alone_tps: f64,
    write_path_alone_pgbench_tps: f64,
    write_path_alone_vs_pgbench: f64,
    write_path_alone_latency: Percentiles,
    freshness_target_rate: u64,
    freshness_achieved_rate: f64,
    freshness_write_latency: Percentiles,
    /// 201 received → event applied in the read model (Postgres commit clock).
    freshness: Percentiles,
    /// 201 received → GET answers 200, polled on a sample of writes.
    freshness_polled: Percentiles,
    roundtrip: Percentiles,
    /// CPU per 1,000 events of each process while the write path ran alone.
    cpu_write_path_alone: cpu::CpuPhase,
    /// CPU per 1,000 events of each process in the whole-platform phase: from
    /// the first write until every event was published, projected and
    /// processed.
    cpu_whole_platform: cpu::CpuPhase,
    /// The same in the freshness phase (open loop at `freshness_target_rate`).
    cpu_freshness: cpu::CpuPhase,
    /// With `--statements`: each phase's costliest statements.
    #[serde(skip_serializing_if = "Option::is_none")]
    statements_write_path_alone: Option<Vec<statements::Statement>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    statements_whole_platform: Option<Vec<statements::Statement>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    statements_freshness: Option<Vec<statements::Statement>>,
}

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.concurrency >= 1 && a.freshness_rate >= 1,
        "--concurrency and --freshness-rate must be at least 1"
    );
    log("starting PostgreSQL, the broker and the services");
    let logs = tempfile_dir()?;
    let pg = devstack::postgres::Options {
        unsafe_fast: a.unsafe_fast_postgres,
        max_connections: 300,
        port: None,
        data_dir: None,
        listen_host: None,
        tls: None,
        settings: if a.statements {
            statements::SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        } else {
            Vec::new()
        },
    };
    let mut stack = Stack::start_with(pg, None, logs.clone(), None).await?;
    let profiler = statements::Profiler::new(a.statements, &stack.pool().await?).await?;
    if a.telemetry_overhead {
        return telemetry_overhead(&a, &mut stack).await;
    }
    // Without a relay the outbox only grows: load shedding would refuse
    // writes once it passes its bound, so it is off for this measurement.
    const RELAY_OFF: &[(&str, &str)] = &[("RELAY_ENABLED", "false"), ("SHED_OUTBOX_BACKLOG", "0")];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency * 2)
        .build()?;
    let generator = match a.load_generator {
        LoadGenerator::Auto if wrk_available() => LoadGenerator::Wrk,
        LoadGenerator::Auto => LoadGenerator::Builtin,
        g => g,
    };
    if a.write_path_only {
        let env = if a.with_relay { &[][..] } else { RELAY_OFF };
        let command = stack.spawn(Service::Command, env).await?;
        return write_path_only(&a, &stack, &http, &command, &profiler).await;
    }
    // Like for like with pgbench (which inserts into an idle database): the
    // write path with the rest of the platform idle, before it starts.
    let (alone_pg_tps, alone_tps, alone_lat, cpu_alone, statements_alone) = {
        let mut alone = stack.spawn(Service::Command, RELAY_OFF).await?;
        log(&format!(
            "write path alone (relay off, no consumers): pgbench, then POST /v1/todos, {} clients, {} s each",
            a.concurrency, a.duration_secs
        ));
        let (pg, _) = pgbench(&stack, a.concurrency, a.duration_secs).await?;
        let pool = stack.pool().await?;
        profiler.reset().await?;
        let probes = probes(&stack, &alone, None, None);
        let (events_before, cpu_before, t0) = (
            count_events(&pool).await?,
            cpu::sample(&probes),
            Instant::now(),
        );
        let (tps, _, lat) = match generator {
            LoadGenerator::Wrk => wrk(&alone.base_url(), a.concurrency, a.duration_secs).await?,
            _ => closed_loop(&http, &alone.base_url(), a.concurrency, a.duration_secs).await,
        };
        let cpu_after = cpu::sample(&probes);
        let events = count_events(&pool).await? - events_before;
        let cpu_alone = cpu::phase(
            &probes,
            &cpu_before,
            &cpu_after,
            events,
            t0.elapsed().as_secs_f64(),
        );
        log(&format!(
            "  {tps:.0} writes/s vs pgbench {pg:.0} tps ({:.0}%)",
            100.0 * tps / pg
        ));
        let statements = profiler.top(cpu_alone.events).await?;
        alone.stop(Duration::from_secs(10)).await?;
        // Its events were never published: start the platform from empty.
        sqlx::raw_sql("TRUNCATE outbox, events, idempotency_keys")
            .execute(&stack.pool().await?)
            .await?;
        (pg, tps, lat, cpu_alone, statements)
    };
    let fetch_wait = a.fetch_wait_max_ms.to_string();
    let kafka_env: &[(&str, &str)] = &[("KAFKA_FETCH_WAIT_MAX_MS", &fetch_wait)];
    let command = stack.spawn(Service::Command, kafka_env).await?;
    let query = stack.spawn(Service::Query, kafka_env).await?;
    let processor = if a.without_processor {
        None
    } else {
        Some(stack.spawn(Service::Processor, kafka_env).await?)
    };
    warm_up(&http, &command.base_url(), &query.base_url()).await?;

    log(&format!(
        "baseline: pgbench single-row inserts, {} clients, {} s",
        a.concurrency, a.duration_secs
    ));
    let (pg_tps, pg_lat) = pgbench(&stack, a.concurrency, a.duration_secs).await?;
    log(&format!("  {pg_tps:.0} tps"));

    log(&format!(
        "write path with the whole platform running: POST /v1/todos, {} clients, {} s",
        a.concurrency, a.duration_secs
    ));
    let pool = stack.pool().await?;
    profiler.reset().await?;
    let probes = probes(&stack, &command, Some(&query), processor.as_ref());
    let (events_before, cpu_before, t0) = (
        count_events(&pool).await?,
        cpu::sample(&probes),
        Instant::now(),
    );
    let (write_tps, errors, write_lat) = match generator {
        LoadGenerator::Wrk => wrk(&command.base_url(), a.concurrency, a.duration_secs).await?,
        _ => closed_loop(&http, &command.base_url(), a.concurrency, a.duration_secs).await,
    };
    log(&format!(
        "  {write_tps:.0} writes/s ({:.0}% of pgbench), p99 {:.1} ms",
        100.0 * write_tps / pg_tps,
        write_lat.p99_ms
    ));
    let events_total = count_events(&pool).await?;
    log(
        "waiting for the relay, the projection and the event processor to drain the throughput phase",
    );
    quiesce(&pool).await?;
    if let Some(p) = &processor {
        processed(&http, p, events_total).await?;
    }
    let cpu_whole = cpu::phase(
        &probes,
        &cpu_before,
        &cpu::sample(&probes),
        events_total - events_before,
        t0.elapsed().as_secs_f64(),
    );
    let statements_whole = profiler.top(cpu_whole.events).await?;
    log(&cpu_whole
        .rows
        .iter()
        .map(|r| format!("{} {:.3}", r.process, r.per_1k_events))
        .collect::<Vec<_>>()
        .join(", "));
    log(&format!(
        "freshness: {} writes/s for {} s, 201 → visible in the query API",
        a.freshness_rate, a.freshness_secs
    ));
    profiler.reset().await?;
    let (events_before, cpu_before, t0) = (
        count_events(&pool).await?,
        cpu::sample(&probes),
        Instant::now(),
    );
    let fr = freshness(
        &http,
        &pool,
        &command.base_url(),
        &query.base_url(),
        a.freshness_rate,
        a.freshness_secs,
    )
    .await?;
    let events_total = count_events(&pool).await?;
    if let Some(p) = &processor {
        processed(&http, p, events_total).await?;
    }
    let cpu_fresh = cpu::phase(
        &probes,
        &cpu_before,
        &cpu::sample(&probes),
        events_total - events_before,
        t0.elapsed().as_secs_f64(),
    );
    let statements_fresh = profiler.top(cpu_fresh.events).await?;
    log(&format!(
        "  p50 {:.1} ms, p99 {:.1} ms (achieved {:.0} writes/s)",
        fr.fresh.p50_ms, fr.fresh.p99_ms, fr.achieved_rate
    ));

    log(&format!(
        "baseline: Kafka produce→consume round trip at {} msg/s",
        a.freshness_rate
    ));
    let rt = roundtrip(
        &stack.broker.brokers(),
        a.fetch_wait_max_ms,
        a.freshness_rate,
        a.freshness_secs,
    )
    .await?;
    log(&format!(
        "  p50 {:.1} ms, p99 {:.1} ms",
        rt.p50_ms, rt.p99_ms
    ));

    let report = Report {
        machine: machine(),
        postgres_durable: !a.unsafe_fast_postgres,
        concurrency: a.concurrency,
        duration_secs: a.duration_secs,
        load_generator: generator,
        fetch_wait_max_ms: a.fetch_wait_max_ms,
        pgbench_insert_tps: pg_tps,
        pgbench_latency_avg_ms: pg_lat,
        write_tps,
        write_errors: errors,
        write_latency: write_lat,
        write_vs_pgbench: write_tps / pg_tps,
        write_path_alone_tps: alone_tps,
        write_path_alone_pgbench_tps: alone_pg_tps,
        write_path_alone_vs_pgbench: alone_tps / alone_pg_tps,
        write_path_alone_latency: alone_lat,
        freshness_target_rate: a.freshness_rate,
        freshness_achieved_rate: fr.achieved_rate,
        freshness_write_latency: fr.write_latency,
        freshness: fr.fresh,
        freshness_polled: fr.polled,
        roundtrip: rt,
        cpu_write_path_alone: cpu_alone,
        cpu_whole_platform: cpu_whole,
        cpu_freshness: cpu_fresh,
        statements_write_path_alone: statements_alone,
        statements_whole_platform: statements_whole,
        statements_freshness: statements_fresh,
    };
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print_table(&report),
    }
    Ok(ExitCode::SUCCESS)
}

/// Write latency, open loop at the freshness rate, command service alone:
/// telemetry off, then on with every exporter pointing at a closed port,
/// alternating three times; compares the median of the runs' p99s.
async fn telemetry_overhead(a: &BenchArgs, stack: &mut Stack) -> anyhow::Result<ExitCode> {
    let http = reqwest::Client::new();
    let dead = |scheme: &str| -> anyhow::Result<String> {
        Ok(format!("{scheme}127.0.0.1:{}", devstack::free_port()?))
    };
    let on = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), dead("http://")?),
        ("LOKI_URL".to_string(), dead("http://")?),
        (
            "SENTRY_DSN".to_string(),
            format!("{}/1", dead("http://key@")?),
        ),
    ];
    let mut rows = Vec::new();
    let plan: Vec<(&str, Vec<(String, String)>)> = (0..3)
        .flat_map(|_| [("off", vec![]), ("on, exporters down", on.clone())])
        .collect();
    for (label, env) in plan {
        stack.wiring.common_env = env;
        let mut command = stack
            .spawn(
                Service::Command,
                &[("RELAY_ENABLED", "false"), ("SHED_OUTBOX_BACKLOG", "0")],
            )
            .await?;
        let url = format!("{}/v1/todos", command.base_url());
        for _ in 0..50 {
            http.post(&url)
                .header("x-user-id", "warm")
                .json(&serde_json::json!({"title": "warm"}))
                .send()
                .await?;
        }
        let lat = open_loop(&http, &url, a.freshness_rate, a.freshness_secs).await;
        log(&format!(
            "telemetry {label}: p50 {:.2} ms, p99 {:.2} ms ({} writes)",
            lat.p50_ms, lat.p99_ms, lat.count
        ));
        rows.push((label, lat));
        command.stop(Duration::from_secs(10)).await?;
    }
    // The median of the runs' p99s: one scheduling hiccup on a shared
    // 2-core machine should not decide the comparison.
    let p99 = |want: &str| {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|(l, _)| *l == want)
            .map(|(_, p)| p.p99_ms)
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (off, on) = (p99("off"), p99("on, exporters down"));
    let report = serde_json::json!({
        "machine": machine(),
        "rate": a.freshness_rate,
        "seconds_per_run": a.freshness_secs,
        "runs": rows.iter().map(|(l, p)| serde_json::json!({"telemetry": l, "latency": p})).collect::<Vec<_>>(),
        "median_p99_off_ms": off,
        "median_p99_on_ms": on,
        "ratio": on / off,
    });
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => println!(
            "write p99 at {} writes/s: telemetry off {off:.2} ms, on with exporters down {on:.2} ms, ratio {:.3}",
            a.freshness_rate,
            on / off
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `rate` POSTs per second for `secs`, latency of each 201.
async fn open_loop(http: &reqwest::Client, url: &str, rate: u64, secs: u64) -> Percentiles {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..rate * secs {
        ticker.tick().await;
        let (http, url) = (http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = http
                .post(&url)
                .header("x-user-id", "overhead")
                .json(&serde_json::json!({"title": format!("t {i}")}))
                .send()
                .await
                .ok()?;
            (r.status().as_u16() == 201).then(|| t.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        if let Ok(Some(ms)) = t.await {
            lat.push(ms);
        }
    }
    percentiles(lat)
}

async fn write_path_only(
    a: &BenchArgs,
    stack: &Stack,
    http: &reqwest::Client,
    command: &ServiceProcess,
    profiler: &statements::Profiler,
) -> anyhow::Result<ExitCode> {
    let (pg_tps, _) = pgbench(stack, a.concurrency, a.duration_secs).await?;
    let pool = stack.pool().await?;
    profiler.reset().await?;
    // With the relay on, the broker's share is what publishing alone costs:
    // whole platform − this is what the consumers and their fetches add.
    let probes = probes(stack, command, None, None);
    let (events_before, cpu_before, t0) = (
        count_events(&pool).await?,
        cpu::sample(&probes),
        Instant::now(),
    );
    let url = command.base_url();
    let (tps, errors, lat) = match a.load_generator {
        LoadGenerator::Builtin => closed_loop(http, &url, a.concurrency, a.duration_secs).await,
        _ if wrk_available() => wrk(&url, a.concurrency, a.duration_secs).await?,
        _ => closed_loop(http, &url, a.concurrency, a.duration_secs).await,
    };
    if a.with_relay {
        published(&pool).await?;
    }
    let cpu = cpu::phase(
        &probes,
        &cpu_before,
        &cpu::sample(&probes),
        count_events(&pool).await? - events_before,
        t0.elapsed().as_secs_f64(),
    );
    let statements = profiler.top(cpu.events).await?;
    let mut report = serde_json::json!({
        "machine": machine(),
        "mode": if a.with_relay { "write side (relay publishing, no consumers)" } else { "write path only (relay off, no consumers)" },
        "concurrency": a.concurrency,
        "pgbench_insert_tps": pg_tps,
        "write_tps": tps,
        "write_vs_pgbench": tps / pg_tps,
        "write_latency": lat,
        "write_errors": errors,
        "cpu": cpu,
    });
    if let Some(st) = &statements {
        report["statements"] = serde_json::to_value(st)?;
    }
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => {
            println!(
                "{}, {} clients: {tps:.0} writes/s vs pgbench {pg_tps:.0} tps = {:.2}; p50 {:.1} ms, p99 {:.1} ms; errors {errors}",
                if a.with_relay {
                    "write side (relay publishing)"
                } else {
                    "write path only"
                },
                a.concurrency,
                tps / pg_tps,
                lat.p50_ms,
                lat.p99_ms
            );
            println!(
                "CPU seconds per 1,000 events ({} events, {:.1} s{}): {}",
                cpu.events,
                cpu.wall_secs,
                if a.with_relay {
                    " until all were published"
                } else {
                    ""
                },
                cpu.rows
                    .iter()
                    .filter(|r| a.with_relay || r.process != CPU_BROKER)
                    .map(|r| format!("{} {:.3}", r.process, r.per_1k_events))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(st) = &statements {
                statements::print("write path", st);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("todo-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores, {model}")
}

async fn warm_up(http: &reqwest::Client, command: &str, query: &str) -> anyhow::Result<()> {
    let r = http
        .post(format!("{command}/v1/todos"))
        .header("x-user-id", "warmup")
        .json(&serde_json::json!({"title": "warm up"}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "warm-up write failed: {}",
        r.status()
    );
    let id = r.json::<serde_json::Value>().await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!("{query}/v1/todos/{id}");
    devstack::wait_until(
        "the projector to join its group",
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .header("x-user-id", "warmup")
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        },
    )
    .await
}

const CPU_COMMAND: &str = "command service";
const CPU_COMMAND_KAFKA: &str = "command service: librdkafka threads";
const CPU_BROKER: &str = "broker (tansu)";
const CPU_QUERY: &str = "query service";
const CPU_PROCESSOR: &str = "event processor";
const CPU_POSTGRES: &str = "PostgreSQL";

/// The processes whose CPU the bench reports (those not running are left out).
fn probes(
    stack: &Stack,
    command: &ServiceProcess,
    query: Option<&ServiceProcess>,
    processor: Option<&ServiceProcess>,
) -> Vec<cpu::Probe> {
    use cpu::{Probe, Source};
    let mut v = Vec::new();
    if let Some(pid) = command.pid() {
        v.push(Probe {
            name: CPU_COMMAND,
            source: Source::Process(pid),
        });
        v.push(Probe {
            name: CPU_COMMAND_KAFKA,
            source: Source::Threads(pid, "rdk:"),
        });
    }
    v.push(Probe {
        name: CPU_BROKER,
        source: Source::Process(stack.broker.pid()),
    });
    for (name, p) in [(CPU_QUERY, query), (CPU_PROCESSOR, processor)] {
        if let Some(pid) = p.and_then(ServiceProcess::pid) {
            v.push(Probe {
                name,
                source: Source::Process(pid),
            });
        }
    }
    if let Some(root) = stack.postgres.pids().first() {
        v.push(Probe {
            name: CPU_POSTGRES,
            source: Source::Tree(*root),
        });
    }
    v
}

async fn count_events(pool: &sqlx::PgPool) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(n.max(0) as u64)
}

/// Wait until the event processor has handled `events` todo events, read
/// from its own `kafka_messages_consumed_total` counter.
async fn processed(
    http: &reqwest::Client,
    processor: &ServiceProcess,
    events: u64,
) -> anyhow::Result<()> {
    let url = format!("{}/metrics", processor.base_url());
    let name = format!(
        "{}_total{{",
        contracts::metrics::KAFKA_MESSAGES_CONSUMED.name
    );
    let topic = format!("topic=\"{}\"", contracts::topics::TODO_EVENTS);
    devstack::wait_until(
        "the event processor to handle every event",
        Duration::from_secs(600),
        || {
            let (http, url, name, topic) = (http.clone(), url.clone(), name.clone(), topic.clone());
            async move {
                let Ok(text) = async { http.get(&url).send().await?.text().await }.await else {
                    return false;
                };
                let consumed: f64 = text
                    .lines()
                    .filter(|l| l.starts_with(&name) && l.contains(&topic))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                consumed >= events as f64
            }
        },
    )
    .await
}

/// Wait until the relay has published every event written so far.
async fn published(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    devstack::wait_until(
        "the relay to publish the outbox",
        Duration::from_secs(600),
        || async {
            let n: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(pool)
                .await;
            matches!(n, Ok(0))
        },
    )
    .await
}

/// Wait until every event written so far is published and projected, so one
/// phase's backlog does not distort the next.
async fn quiesce(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    devstack::wait_until("the outbox and projection backlog to drain", Duration::from_secs(600), || async {
        let row: Result<(i64, i64, i64), _> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM events), (SELECT count(*) FROM read_history)",
        )
        .fetch_one(pool)
        .await;
        matches!(row, Ok((0, e, h)) if e == h)
    })
    .await
}

async fn pgbench(stack: &Stack, clients: usize, secs: u64) -> anyhow::Result<(f64, f64)> {
    let pool = stack.pool().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bench_insert (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await?;
    let script = std::env::temp_dir().join(format!("bench-{}.sql", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &script,
        "INSERT INTO bench_insert (payload) VALUES ('{\"title\":\"bench\",\"priority\":\"medium\",\"tags\":[\"load\"]}');\n",
    )?;
    let db = stack
        .wiring
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or("postgres")
        .to_string();
    let out = tokio::process::Command::new(devstack::postgres::pg_bin("pgbench"))
        .args([
            "-n",
            "-h",
            "127.0.0.1",
            "-p",
            &stack.postgres.port().to_string(),
            "-U",
            "postgres",
        ])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&db)
        .output()
        .await
        .context("running pgbench")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let num_after = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split('=').nth(1)?.split_whitespace().next()?.parse().ok())
    };
    let tps = num_after("tps").context("no tps line in pgbench output")?;
    Ok((tps, num_after("latency average").unwrap_or(f64::NAN)))
}

const WRK_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-User-Id"] = "bench"
wrk.body = '{"title":"bench","priority":"medium","tags":["load"]}'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %.3f %.3f %.3f %.3f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"#;

/// Closed loop with wrk: `clients` connections on 2 threads.
async fn wrk(
    command: &str,
    clients: usize,
    secs: u64,
) -> anyhow::Result<(f64, usize, Percentiles)> {
    let script = std::env::temp_dir().join(format!("bench-{}.lua", uuid::Uuid::new_v4().simple()));
    std::fs::write(&script, WRK_SCRIPT)?;
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t",
            &clients.min(2).to_string(),
            "-c",
            &clients.to_string(),
            "-d",
            &format!("{secs}s"),
            "-s",
        ])
        .arg(&script)
        .arg(format!("{command}/v1/todos"))
        .output()
        .await
        .context("running wrk")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .with_context(|| format!("no RESULT line from wrk: {text}"))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(f.len() == 8, "unexpected wrk result line: {line}");
    let (requests, micros, status_errors, io_errors) = (f[0], f[1], f[2], f[3]);
    let ok = requests - status_errors;
    let p = Percentiles {
        count: ok as usize,
        p50_ms: f[4],
        p90_ms: f[5],
        p99_ms: f[6],
        max_ms: f[7],
    };
    Ok((ok / (micros / 1e6), (status_errors + io_errors) as usize, p))
}

async fn closed_loop(
    http: &reqwest::Client,
    command: &str,
    clients: usize,
    secs: u64,
) -> (f64, usize, Percentiles) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let workers = (0..clients).map(|w| {
        let http = http.clone();
        let url = format!("{command}/v1/todos");
        async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let body = serde_json::json!({"title": format!("bench {w}-{i}"), "priority": "medium", "tags": ["load"]});
                match http.post(&url).header("x-user-id", format!("bench-{w}")).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => lat.push(t.elapsed().as_secs_f64() * 1e3),
                    _ => errors += 1,
                }
                i += 1;
            }
            (lat, errors)
        }
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut errors = 0;
    for (lat, e) in results {
        all.extend(lat);
        errors += e;
    }
    (all.len() as f64 / elapsed, errors, percentiles(all))
}

struct Freshness {
    achieved_rate: f64,
    write_latency: Percentiles,
    fresh: Percentiles,
    polled: Percentiles,
}

async fn freshness(
    http: &reqwest::Client,
    pool: &sqlx::PgPool,
    command: &str,
    query: &str,
    rate: u64,
    secs: u64,
) -> anyhow::Result<Freshness> {
    let total = rate * secs;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    let start = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let http = http.clone();
        let (command, query) = (command.to_string(), query.to_string());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = http
                .post(format!("{command}/v1/todos"))
                .header("x-user-id", "fresh")
                .json(&serde_json::json!({"title": format!("fresh {i}")}))
                .send()
                .await
                .ok()?;
            if r.status().as_u16() != 201 {
                return None;
            }
            let acked_at: DateTime<Utc> = Utc::now();
            let write_ms = t.elapsed().as_secs_f64() * 1e3;
            let id = r.json::<serde_json::Value>().await.ok()?["id"]
                .as_str()?
                .to_string();
            // Every 10th write is also polled through the API, to check the
            // commit-clock measurement against what a client sees.
            let polled = if i % 10 == 0 {
                let t0 = Instant::now();
                loop {
                    let ok = http
                        .get(format!("{query}/v1/todos/{id}"))
                        .header("x-user-id", "fresh")
                        .send()
                        .await
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false);
                    if ok {
                        break Some(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    if t0.elapsed() > Duration::from_secs(30) {
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            } else {
                None
            };
            Some((id, acked_at, write_ms, polled))
        }));
    }
    let mut acks = Vec::new();
    for t in tasks {
        if let Ok(Some(r)) = t.await {
            acks.push(r);
        }
    }
    let achieved = acks.len() as f64 / start.elapsed().as_secs_f64();
    let ids: Vec<uuid::Uuid> = acks.iter().filter_map(|(id, ..)| id.parse().ok()).collect();
    devstack::wait_until(
        "every freshness write to be applied",
        Duration::from_secs(120),
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM read_history WHERE todo_id = ANY($1)")
                    .bind(&ids)
                    .fetch_one(pool)
                    .await
                    .unwrap_or(0);
            n as usize >= ids.len()
        },
    )
    .await?;
    let rows: Vec<(uuid::Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT todo_id, applied_at FROM read_history WHERE todo_id = ANY($1) AND version = 1",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let applied: std::collections::HashMap<uuid::Uuid, DateTime<Utc>> = rows.into_iter().collect();
    let mut fresh = Vec::new();
    for (id, acked_at, ..) in &acks {
        if let Some(at) = id.parse().ok().and_then(|u: uuid::Uuid| applied.get(&u)) {
            fresh.push(((*at - *acked_at).num_microseconds().unwrap_or(0) as f64 / 1e3).max(0.0));
        }
    }
    Ok(Freshness {
        achieved_rate: achieved,
        write_latency: percentiles(acks.iter().map(|a| a.2).collect()),
        fresh: percentiles(fresh),
        polled: percentiles(acks.iter().filter_map(|a| a.3).collect()),
    })
}

async fn roundtrip(
    brokers: &str,
    fetch_wait_max_ms: u32,
    rate: u64,
    secs: u64,
) -> anyhow::Result<Percentiles> {
    let topic = format!("bench-roundtrip-{}", uuid::Uuid::new_v4().simple());
    let mut settings = bus::KafkaSettings::new(brokers, "todoctl-bench");
    settings.fetch_wait_max_ms = fetch_wait_max_ms;
    bus::ensure_topics(&settings, &[(&topic, 6)]).await?;
    let producer: FutureProducer = settings.producer()?;
    let consumer: StreamConsumer =
        settings.consumer(&format!("bench-{}", uuid::Uuid::new_v4().simple()))?;
    consumer.subscribe(&[&topic])?;
    // Wait for the group assignment with a marker record, as the services do.
    producer
        .send(
            FutureRecord::to(&topic).key("w").payload("warmup"),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)?;
    tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .context("round-trip consumer never joined")??;
    let total = rate * secs;
    let recv = async {
        let mut lat = Vec::with_capacity(total as usize);
        while (lat.len() as u64) < total {
            match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
                Ok(Ok(m)) => {
                    if let Some(sent) = m
                        .payload()
                        .and_then(|p| std::str::from_utf8(p).ok())
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        let now = Utc::now().timestamp_micros();
                        lat.push((now - sent) as f64 / 1e3);
                    }
                }
                _ => break,
            }
        }
        lat
    };
    let send = async {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        for i in 0..total {
            ticker.tick().await;
            let key = (i % 64).to_string();
            let payload = Utc::now().timestamp_micros().to_string();
            // send_result enqueues now and hands back a 'static delivery future.
            if let Ok(delivery) =
                producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload))
            {
                tokio::spawn(delivery);
            }
        }
    };
    let (lat, ()) = tokio::join!(recv, send);
    Ok(percentiles(lat))
}

fn print_table(r: &Report) {
    println!(
        "machine: {}; postgres durable (fsync on): {}; load generator: {:?}; consumers' fetch.wait.max.ms: {}",
        r.machine, r.postgres_durable, r.load_generator, r.fetch_wait_max_ms
    );
    println!();
    println!("| measure | ours | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| write throughput, write path alone (relay off, no consumers), {} clients | {:.0} writes/s | pgbench insert {:.0} tps | {:.2} |",
        r.concurrency,
        r.write_path_alone_tps,
        r.write_path_alone_pgbench_tps,
        r.write_path_alone_vs_pgbench
    );
    println!(
        "| write latency p50 / p99, write path alone | {:.1} / {:.1} ms | | |",
        r.write_path_alone_latency.p50_ms, r.write_path_alone_latency.p99_ms
    );
    println!(
        "| write throughput, whole platform running, {} clients | {:.0} writes/s | pgbench insert {:.0} tps | {:.2} |",
        r.concurrency, r.write_tps, r.pgbench_insert_tps, r.write_vs_pgbench
    );
    println!(
        "| write latency p50 / p99 | {:.1} / {:.1} ms | pgbench avg {:.1} ms | |",
        r.write_latency.p50_ms, r.write_latency.p99_ms, r.pgbench_latency_avg_ms
    );
    println!(
        "| freshness p50 / p99 at {:.0} writes/s | {:.1} / {:.1} ms | produce→consume {:.1} / {:.1} ms | {:.2} (p99) |",
        r.freshness_achieved_rate,
        r.freshness.p50_ms,
        r.freshness.p99_ms,
        r.roundtrip.p50_ms,
        r.roundtrip.p99_ms,
        if r.roundtrip.p99_ms > 0.0 {
            r.freshness.p99_ms / r.roundtrip.p99_ms
        } else {
            f64::NAN
        }
    );
    println!(
        "| freshness polled via API (sample) p50 / p99 | {:.1} / {:.1} ms | | |",
        r.freshness_polled.p50_ms, r.freshness_polled.p99_ms
    );
    println!(
        "| write latency at {:.0} writes/s p50 / p99 | {:.1} / {:.1} ms | | |",
        r.freshness_achieved_rate,
        r.freshness_write_latency.p50_ms,
        r.freshness_write_latency.p99_ms
    );
    println!();
    println!("write errors: {}", r.write_errors);
    println!();
    print_cpu(
        &r.cpu_write_path_alone,
        &r.cpu_whole_platform,
        &r.cpu_freshness,
    );
    for (phase, st) in [
        ("write path alone", &r.statements_write_path_alone),
        ("whole platform", &r.statements_whole_platform),
        ("freshness phase", &r.statements_freshness),
    ] {
        if let Some(st) = st {
            statements::print(phase, st);
        }
    }
}

/// CPU seconds per 1,000 events of each process, both phases side by side.
fn print_cpu(alone: &cpu::CpuPhase, whole: &cpu::CpuPhase, fresh: &cpu::CpuPhase) {
    println!(
        "CPU seconds per 1,000 events (utime + stime from /proc, each process's own accounting; \
         write path alone: {} events in {:.1} s; whole platform: {} events, {:.1} s from the first write until all were published, projected and processed)",
        alone.events, alone.wall_secs, whole.events, whole.wall_secs
    );
    println!();
    println!(
        "| process | write path alone | whole platform | whole platform at {} events in {:.1} s (freshness phase) |",
        fresh.events, fresh.wall_secs
    );
    println!("|---|---|---|---|");
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    fn label(name: &str) -> &str {
        match name {
            CPU_COMMAND => {
                "command service (HTTP, group commit, audit; whole platform: also the relay)"
            }
            CPU_COMMAND_KAFKA => "  of which librdkafka threads (the relay's producer)",
            CPU_QUERY => "query service (projection)",
            CPU_POSTGRES => "PostgreSQL (postmaster and all backends)",
            other => other,
        }
    }
    for row in &whole.rows {
        println!(
            "| {} | {} | {} | {} |",
            label(&row.process),
            cell(alone.get(&row.process)),
            cell(Some(row.per_1k_events)),
            cell(fresh.get(&row.process))
        );
        if row.process == CPU_COMMAND {
            let relay = alone.get(CPU_COMMAND).map(|a| row.per_1k_events - a);
            println!(
                "| relay (derived: command service, whole platform − alone) | | {} | |",
                cell(relay)
            );
        }
    }
    let total = |p: &cpu::CpuPhase| {
        p.rows
            .iter()
            .filter(|r| r.process != CPU_COMMAND_KAFKA)
            .map(|r| r.per_1k_events)
            .sum::<f64>()
    };
    let (t_alone, t_whole, t_fresh) = (total(alone), total(whole), total(fresh));
    println!("| **total** | {t_alone:.3} | {t_whole:.3} | {t_fresh:.3} |");
    println!(
        "| **downstream of the write** (total, whole platform − write path alone) | | **{:.3}** | {:.3} |",
        t_whole - t_alone,
        t_fresh - t_alone
    );
}
