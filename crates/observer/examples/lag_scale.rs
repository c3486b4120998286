//! Lag snapshot at scale (docs/PERFORMANCE.md, "Lag snapshot at scale"):
//! the offset half of a lag snapshot (metadata, groups, committed offsets,
//! end offsets) for 100, 1,000 and 10,000 consumer groups over 100,000
//! partitions in all (10,000 topics × 10 partitions, each partition
//! committed by exactly one group), against the **synthetic**
//! Kafka-protocol server `observer::kafka::synthetic` (offsets from a
//! formula, no records), which runs in its own process.
//!
//! Rows per scale, each measured in its own process (so peak RSS is that
//! implementation's own):
//! - `protocol, batched`: the observer's `lag::Collector` (kafka-protocol,
//!   one connection per broker, OffsetFetch v8+ with many groups a request);
//! - `protocol, pipelined`: the same against a server advertising
//!   OffsetFetch ≤ v7 (one request per group, pipelined on one connection);
//! - baseline, measured once against the 100-group server: the previous
//!   implementation, `lag::per_group::PerGroupCollector` (librdkafka, one
//!   client per group, each asking for every watched partition), with no
//!   group selected (the fixed part) and with `--baseline-sample` groups;
//!   per scale it is extrapolated as fixed + groups × cost per group, and
//!   labelled so. If it fails, the table is printed without it.
//!
//! Record timestamps (lag in seconds) are not part of these figures: both
//! implementations read them with the same librdkafka reader and cache them.
//!
//! `cargo run --release -p observer --example lag_scale [-- --runs 5 --baseline-sample 5]`

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use observer::config::Config;
use observer::kafka::synthetic::{Server, Shape};

const TOPICS: usize = 10_000;
const PARTITIONS_PER_TOPIC: usize = 10;
const SCALES: [usize; 3] = [100, 1_000, 10_000];

fn proc_status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU time (user + system) of this process, in ms (clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after ')'.
    (tick(11) + tick(12)) * 10.0
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(&args),
        Some("measure") => measure(&args),
        _ => drive(&args),
    }
}

/// `serve --groups G [--offset-fetch-max V]`: print the address, then
/// answer each `count` line on stdin with the connections accepted so far;
/// exit on EOF.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let groups: usize = arg(args, "--groups").unwrap_or("100".into()).parse()?;
    let ofv: i16 = arg(args, "--offset-fetch-max")
        .unwrap_or("9".into())
        .parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = rt.block_on(Server::start(Shape {
        topics: TOPICS,
        partitions_per_topic: PARTITIONS_PER_TOPIC,
        groups,
        offset_fetch_max_version: ofv,
    }))?;
    println!("{}", server.addr);
    std::io::stdout().flush()?;
    let conns = server.connections.clone();
    rt.block_on(async move {
        let stdin = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for line in std::io::stdin().lines() {
                match line {
                    Ok(l) if l.trim() == "count" => {
                        println!("{}", conns.load(std::sync::atomic::Ordering::Relaxed));
                        let _ = std::io::stdout().flush();
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
                out.push(());
            }
        });
        let _ = stdin.await;
    });
    drop(server);
    Ok(())
}

#[derive(Debug, Default)]
struct Measured {
    first_ms: f64,
    median_ms: f64,
    cpu_ms: f64,
    peak_rss_mib: f64,
    groups: usize,
    committed: usize,
    ends: usize,
    note: String,
}

impl Measured {
    fn line(&self) -> String {
        format!(
            "RESULT {} {} {} {} {} {} {} {}",
            self.first_ms,
            self.median_ms,
            self.cpu_ms,
            self.peak_rss_mib,
            self.groups,
            self.committed,
            self.ends,
            self.note.replace(' ', "_")
        )
    }
    fn parse(l: &str) -> Option<Self> {
        let f: Vec<&str> = l.strip_prefix("RESULT ")?.split(' ').collect();
        Some(Self {
            first_ms: f.first()?.parse().ok()?,
            median_ms: f.get(1)?.parse().ok()?,
            cpu_ms: f.get(2)?.parse().ok()?,
            peak_rss_mib: f.get(3)?.parse().ok()?,
            groups: f.get(4)?.parse().ok()?,
            committed: f.get(5)?.parse().ok()?,
            ends: f.get(6)?.parse().ok()?,
            note: f.get(7).unwrap_or(&"").replace('_', " "),
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `measure --impl protocol|per-group --brokers ADDR --runs N [--allow a,b]`:
/// N snapshots of the offset half; prints one RESULT line.
fn measure(args: &[String]) -> anyhow::Result<()> {
    let imp = arg(args, "--impl").unwrap_or("protocol".into());
    let runs: usize = arg(args, "--runs").unwrap_or("5".into()).parse()?;
    let cfg = Config {
        kafka_brokers: arg(args, "--brokers").unwrap_or_default(),
        kafka_timeout_ms: 120_000,
        groups_allow: arg(args, "--allow")
            .map(|a| a.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        ..Config::default()
    };
    let mut times = Vec::with_capacity(runs);
    let mut m = Measured::default();
    let cpu0 = cpu_ms();
    match imp.as_str() {
        "protocol" => {
            let mut c = observer::lag::Collector::new(&cfg)?;
            for _ in 0..runs {
                let t = Instant::now();
                let o = c.offsets()?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                m.groups = o.groups.len();
                m.committed = o.groups.iter().map(|g| g.committed.len()).sum();
                m.ends = o.ends.len();
                let s = c.stats();
                m.note = format!(
                    "OffsetFetch v{}: {} batched + {} per-group requests, {} connection(s)",
                    s.offset_fetch_version, s.batched_requests, s.per_group_requests, s.connections
                );
            }
        }
        "per-group" => {
            let mut c = observer::lag::per_group::PerGroupCollector::new(&cfg)?;
            for _ in 0..runs {
                let t = Instant::now();
                let o = c.offsets()?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                m.groups = o.groups.len();
                m.committed = o.groups.iter().map(|g| g.committed.len()).sum();
                m.ends = o.ends.len();
            }
        }
        other => anyhow::bail!("--impl {other}: expected protocol or per-group"),
    }
    m.cpu_ms = (cpu_ms() - cpu0) / runs as f64;
    m.first_ms = times.first().copied().unwrap_or(f64::NAN);
    m.median_ms = median(times.into_iter().skip(1).collect());
    if m.median_ms.is_nan() {
        m.median_ms = m.first_ms;
    }
    m.peak_rss_mib = proc_status("VmHWM:");
    println!("{}", m.line());
    Ok(())
}

struct ServerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl ServerProc {
    fn start(exe: &str, groups: usize, ofv: i16) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--groups",
                &groups.to_string(),
                "--offset-fetch-max",
                &ofv.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
        );
        let mut addr = String::new();
        stdout.read_line(&mut addr)?;
        Ok(Self {
            child,
            stdin,
            stdout,
            addr: addr.trim().to_string(),
        })
    }
    fn connections(&mut self) -> anyhow::Result<usize> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        writeln!(stdin, "count")?;
        stdin.flush()?;
        let mut l = String::new();
        self.stdout.read_line(&mut l)?;
        Ok(l.trim().parse()?)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

fn run_measure(
    exe: &str,
    server: &mut ServerProc,
    imp: &str,
    runs: usize,
    allow: Option<String>,
) -> anyhow::Result<(Measured, usize)> {
    let before = server.connections()?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "measure",
        "--impl",
        imp,
        "--brokers",
        &server.addr,
        "--runs",
        &runs.to_string(),
    ]);
    if let Some(a) = allow {
        cmd.args(["--allow", &a]);
    }
    let out = cmd.stderr(Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let m = text
        .lines()
        .find_map(Measured::parse)
        .ok_or_else(|| anyhow::anyhow!("measure {imp} printed no result: {text}"))?;
    let conns = server.connections()? - before;
    Ok((m, conns))
}

fn drive(args: &[String]) -> anyhow::Result<()> {
    let runs: usize = arg(args, "--runs").unwrap_or("5".into()).parse()?;
    let sample: usize = arg(args, "--baseline-sample")
        .unwrap_or("5".into())
        .parse()?;
    let exe = std::env::current_exe()?;
    let exe = exe.to_string_lossy().to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "lag_scale: offset half of a lag snapshot, synthetic Kafka-protocol server \
         ({TOPICS} topics x {PARTITIONS_PER_TOPIC} partitions = {} partitions), \
         {runs} snapshots per row (first = with connection set-up; median of the others)",
        TOPICS * PARTITIONS_PER_TOPIC
    );
    println!(
        "machine: {cores} cores, loadavg {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Baseline, once (its cost per group does not depend on how many groups
    // exist): the per-group collector with no group selected (the fixed
    // part: metadata, end offsets) and with `sample` groups, one snapshot
    // each, against the 100-group server.
    let baseline: Result<(f64, f64, Measured, usize), String> = (|| {
        let mut srv = ServerProc::start(&exe, SCALES[0], 9)?;
        let (fixed, _) = run_measure(&exe, &mut srv, "per-group", 1, Some("no-such-group".into()))?;
        let names: Vec<String> = (0..sample).map(Shape::group).collect();
        let (base, conns) = run_measure(&exe, &mut srv, "per-group", 1, Some(names.join(",")))?;
        anyhow::ensure!(
            base.groups == sample,
            "baseline saw {} of {sample} groups",
            base.groups
        );
        let per_group = (base.first_ms - fixed.first_ms).max(0.0) / sample as f64;
        anyhow::Ok((fixed.first_ms, per_group, base, conns))
    })()
    .map_err(|e| format!("{e:#}"));
    match &baseline {
        Ok((fixed, per_group, base, conns)) => println!(
            "baseline (per-group, librdkafka): fixed part {fixed:.0} ms + {per_group:.1} ms per group \
             (measured with {sample} groups: {:.0} ms, peak RSS {:.0} MiB, {conns} connections)",
            base.first_ms, base.peak_rss_mib
        ),
        Err(e) => println!("baseline (per-group, librdkafka) failed: {e}"),
    }
    println!();
    println!(
        "| groups | implementation | first snapshot | median snapshot | CPU / snapshot | peak RSS | connections | groups / committed / end offsets | per-group baseline (extrapolated) | speed-up |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|");
    for groups in SCALES {
        let mut rows = Vec::new();
        for (name, ofv) in [("protocol, batched", 9), ("protocol, pipelined", 7)] {
            let mut srv = ServerProc::start(&exe, groups, ofv)?;
            let (m, conns) = run_measure(&exe, &mut srv, "protocol", runs, None)?;
            anyhow::ensure!(
                m.groups == groups
                    && m.committed == TOPICS * PARTITIONS_PER_TOPIC
                    && m.ends == TOPICS * PARTITIONS_PER_TOPIC,
                "{name} snapshot incomplete: {m:?}"
            );
            rows.push((name, m, conns));
        }
        let base_ms = baseline
            .as_ref()
            .ok()
            .map(|(fixed, per_group, _, _)| fixed + per_group * groups as f64);
        for (name, m, conns) in rows {
            println!(
                "| {groups} | {name} ({}) | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MiB | {conns} | {} / {} / {} | {} | {} |",
                m.note,
                m.first_ms,
                m.median_ms,
                m.cpu_ms,
                m.peak_rss_mib,
                m.groups,
                m.committed,
                m.ends,
                base_ms.map_or("–".into(), |b| format!("{b:.0} ms")),
                base_ms.map_or("–".into(), |b| format!("{:.0}×", b / m.median_ms)),
            );
        }
    }
    Ok(())
}
