//! Observer benchmark (docs/PERFORMANCE.md, "Observer"):
//!
//! 1. lag engine, in memory: one snapshot of 100 groups × 1,000 partitions
//!    (status rules over a 10-sample window, exact lag seconds, ETA), plus
//!    its JSON and `/metrics` rendering; baseline in the same run: cloning the
//!    raw observation (the cost of touching every partition once); observer
//!    RSS before and after;
//! 2. lag snapshot on a real tansu broker: G groups × P partitions with
//!    committed offsets, the observer's batched `Collector::observe` versus
//!    the per-partition baseline (one watermark request per partition, as
//!    exporters that do not batch);
//! 3. SLO evaluation of 100 SLOs against a real Prometheus.
//!
//! `cargo run --release -p observer --example bench_observer`

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bus::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use bus::rdkafka::producer::FutureRecord;
use bus::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use observer::status::{Engine, GroupObservation, Observation};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn synthetic(groups: usize, partitions: usize, round: i64) -> Observation {
    let mut obs = Observation {
        at_ms: 1_000_000 + round * 5_000,
        ..Default::default()
    };
    for p in 0..partitions {
        let topic = format!("topic-{}", p / 100);
        let part = (p % 100) as i32;
        let end = 10_000 + round * 50 + p as i64;
        obs.ends.insert((topic.clone(), part), end);
    }
    for g in 0..groups {
        let mut committed = BTreeMap::new();
        for p in 0..partitions {
            let topic = format!("topic-{}", p / 100);
            let part = (p % 100) as i32;
            let end = obs.ends[&(topic.clone(), part)];
            // A mix: caught up, lagging steadily, stopped.
            let c = match (g + p) % 3 {
                0 => end,
                1 => end - 20,
                _ => 9_000,
            };
            committed.insert((topic.clone(), part), c);
            if c < end {
                obs.record_ts.insert((topic, part, c), obs.at_ms - 3_000);
            }
        }
        obs.groups.push(GroupObservation {
            group: format!("group-{g:03}"),
            state: "Stable".into(),
            members: 1,
            committed,
        });
    }
    obs
}

fn bench_engine() {
    let (groups, partitions) = (100, 1_000);
    let rss0 = rss_mib();
    let mut engine = Engine::new(50_000);
    // Fill the window (10 samples) first.
    let rounds: Vec<Observation> = (0..11).map(|r| synthetic(groups, partitions, r)).collect();
    for obs in &rounds[..10] {
        engine.apply(obs);
    }
    let last = &rounds[10];
    let t = Instant::now();
    let baseline = last.clone();
    let clone_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(baseline);
    let t = Instant::now();
    let snap = engine.apply(last);
    let apply_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let json = serde_json::to_vec(&snap).unwrap_or_default();
    let json_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let metrics = observer::metrics::render(Some(&snap), Some(0.1), None);
    let metrics_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(rounds);
    let rss1 = rss_mib();
    println!(
        "engine: {groups} groups x {partitions} partitions = {} partition-groups",
        groups * partitions
    );
    println!(
        "  baseline (clone the raw observation): {clone_ms:.1} ms\n  status+lag+ETA snapshot: {apply_ms:.1} ms\n  JSON ({:.1} MiB): {json_ms:.1} ms\n  /metrics ({:.1} MiB, {} lines): {metrics_ms:.1} ms\n  total snapshot+render: {:.1} ms\n  RSS {rss0:.0} MiB -> {rss1:.0} MiB with 11 rounds of history",
        json.len() as f64 / 1048576.0,
        metrics.len() as f64 / 1048576.0,
        metrics.lines().count(),
        apply_ms + json_ms + metrics_ms
    );
}

async fn bench_broker(groups: usize, topics: usize, parts_per_topic: i32) -> anyhow::Result<()> {
    let broker = devstack::Broker::start().await?;
    let names: Vec<String> = (0..topics).map(|t| format!("bench-{t}")).collect();
    let specs: Vec<(&str, i32)> = names
        .iter()
        .map(|n| (n.as_str(), parts_per_topic))
        .collect();
    broker.create_topics(&specs).await?;
    let mut s = bus::KafkaSettings::new(broker.brokers(), "bench");
    s.linger_ms = 0;
    let producer = s.producer()?;
    // Two records per partition, one request each (tansu's watermark quirk).
    for n in &names {
        for p in 0..parts_per_topic {
            for _ in 0..2 {
                producer
                    .send(
                        FutureRecord::<(), _>::to(n).payload("x").partition(p),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| e)?;
            }
        }
    }
    // Commit offset 1 everywhere for each group (standalone commits, no join).
    for g in 0..groups {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.brokers())
            .set("group.id", format!("bench-group-{g}"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for n in &names {
            for p in 0..parts_per_topic {
                tpl.add_partition_offset(n, p, Offset::Offset(1))?;
            }
        }
        c.commit(&tpl, CommitMode::Sync)?;
    }
    let cfg = observer::Config {
        kafka_brokers: broker.brokers(),
        ..Default::default()
    };
    let mut collector = observer::lag::Collector::new(&cfg)?;
    let total = groups * topics * parts_per_topic as usize;
    let (first, steady, seen) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64, usize)> {
            let t = Instant::now();
            let o = collector.observe()?;
            let first = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let o2 = collector.observe()?;
            let steady = t.elapsed().as_secs_f64();
            let seen = o2.groups.iter().map(|g| g.committed.len()).sum::<usize>();
            drop(o);
            Ok((first, steady, seen))
        })
        .await??;
    // Baseline: one watermark request per partition.
    let brokers = broker.brokers();
    let names2 = names.clone();
    let baseline = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "bench-baseline")
            .create()?;
        let t = Instant::now();
        let mut ends = HashMap::new();
        for n in &names2 {
            for p in 0..parts_per_topic {
                ends.insert(
                    (n.clone(), p),
                    c.fetch_watermarks(n, p, Duration::from_secs(5))?.1,
                );
            }
        }
        Ok(t.elapsed().as_secs_f64())
    })
    .await??;
    println!(
        "broker (tansu): {groups} groups x {} partitions = {total} committed offsets (observed {seen})\n  observer snapshot, first (record timestamps fetched): {:.0} ms\n  observer snapshot, steady state (timestamps cached): {:.0} ms\n  baseline: per-partition end offsets only (no groups): {:.0} ms",
        topics * parts_per_topic as usize,
        first * 1e3,
        steady * 1e3,
        baseline * 1e3
    );
    Ok(())
}

fn serve_counters() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let start = Instant::now();
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let t = start.elapsed().as_secs_f64();
            let h = "http_server_request_duration_seconds";
            let mut body = String::new();
            for i in 0..10 {
                let l =
                    format!("service=\"svc-{i}\",route=\"/\",method=\"GET\",version=\"stable\"");
                body.push_str(&format!(
                    "{h}_count{{{l},status_class=\"2xx\"}} {}\n{h}_count{{{l},status_class=\"5xx\"}} {}\n",
                    (t * 100.0).floor(),
                    t.floor()
                ));
            }
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

async fn bench_slos(n: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("bench-slos-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut yaml = String::from("service: bench\nslos:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: bench-{i}\n    objective: 0.999\n    window:\n      rolling: 30d\n    sli:\n      availability:\n        matchers:\n          service: svc-{}\n",
            i % 10
        ));
    }
    std::fs::write(dir.join("bench.yaml"), yaml)?;
    let slos = slo::validate::load_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let target = serve_counters();
    let prom = devstack::prometheus::Prometheus::start(devstack::prometheus::PrometheusOptions {
        targets: vec![format!("127.0.0.1:{target}")],
        ..Default::default()
    })
    .await?;
    let client = observer::prom::PromClient::new(&prom.url(), Duration::from_secs(5), 1)?;
    devstack::wait_until("samples", Duration::from_secs(60), || async {
        client
            .instant(
                "sum(http_server_request_duration_seconds_count)",
                chrono::Utc::now().timestamp() as f64,
            )
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = chrono::Utc::now().timestamp() as f64;
    let t = Instant::now();
    let snap = observer::slos::evaluate_all(&client, &slos, at).await;
    let took = t.elapsed().as_secs_f64();
    let queries: usize = slos.iter().map(|s| (s.alert_windows().len() + 1) * 2).sum();
    println!(
        "slo: {n} SLOs ({queries} Prometheus queries), backend {}: {:.0} ms ({:.2} ms per SLO)",
        snap.backend.status,
        took * 1e3,
        took * 1e3 / n as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench_engine();
    let g: usize = std::env::var("BENCH_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t: usize = std::env::var("BENCH_TOPICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let p: i32 = std::env::var("BENCH_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    if let Err(e) = bench_broker(g, t, p).await {
        println!("broker benchmark failed: {e:#}");
    }
    bench_slos(100).await?;
    Ok(())
}
