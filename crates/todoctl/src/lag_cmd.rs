//! `todoctl lag`: consumer-group lag from the observer's `GET /api/v1/lag`.
//!
//! Exit codes: 0 every shown group is OK or IDLE; 20 a group is WARN;
//! 21 a group is STALL, STOP or REWIND; 12 the observer could not be asked
//! (or has no snapshot yet); 1 any other error; 2 a usage error.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use observer_api::lag::{GroupView, LagState, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Show consumer-group lag, status and catch-up ETA as the observer sees them.
#[derive(Debug, clap::Args)]
pub struct LagArgs {
    /// Observer base URL.
    #[arg(long, env = "OBSERVER_URL", default_value = "http://127.0.0.1:8084")]
    pub observer_url: String,
    /// Only this group (repeatable).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Also list every partition.
    #[arg(long)]
    pub partitions: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.1}s"),
        Some(s) if s < 7200.0 => format!("{:.1}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

fn exit_for(groups: &[GroupView]) -> ExitCode {
    let worst = groups
        .iter()
        .map(|g| match g.status {
            Status::Stop | Status::Stall | Status::Rewind => crate::exit::LAG_STOPPED,
            Status::Warn => crate::exit::LAG_WARN,
            Status::Ok | Status::Idle => 0,
        })
        .max()
        .unwrap_or(0);
    ExitCode::from(worst)
}

pub async fn run(args: LagArgs) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()?;
    let url = format!("{}/api/v1/lag", args.observer_url.trim_end_matches('/'));
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("todoctl lag: cannot reach the observer at {url}: {e}");
            return Ok(ExitCode::from(crate::exit::UNREACHABLE));
        }
    };
    if !resp.status().is_success() {
        eprintln!("todoctl lag: {url} answered {}", resp.status());
        return Ok(ExitCode::from(crate::exit::UNREACHABLE));
    }
    let mut snap: LagState = resp.json().await.context("reading the observer's answer")?;
    snap.snapshot
        .groups
        .retain(|g| args.groups.is_empty() || args.groups.contains(&g.group));
    let groups = &snap.snapshot.groups;
    if args.output == Output::Json {
        // Through a `Value`, as before: the same key order either way.
        let out = serde_json::to_value(&snap)?;
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(exit_for(groups));
    }
    if !snap.enabled {
        eprintln!("todoctl lag: the observer has no lag snapshot yet (is kafka_brokers set?)");
        return Ok(ExitCode::from(crate::exit::UNREACHABLE));
    }
    if let Some(e) = &snap.error {
        eprintln!("warning: the last snapshot failed ({e}); showing the previous one");
    }
    println!(
        "{:<32} {:<20} {:>7} {:<7} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "GROUP", "STATE", "MEMBERS", "STATUS", "LAG", "LAG(s)", "CONSUME/s", "PRODUCE/s", "ETA"
    );
    for g in groups {
        let eta = if g.lag_messages > 0 && g.rates.catchup_eta_seconds.is_none() {
            "never".to_string()
        } else {
            secs(g.rates.catchup_eta_seconds)
        };
        println!(
            "{:<32} {:<20} {:>7} {:<7} {:>12} {:>10} {:>10.1} {:>10.1} {:>10}",
            g.group,
            g.state,
            g.members,
            g.status.as_str(),
            g.lag_messages,
            secs(g.lag_seconds),
            g.rates.consume_per_sec,
            g.rates.produce_per_sec,
            eta
        );
        if args.partitions {
            for p in &g.partitions {
                // The numbers were printed as JSON values, which ignore the
                // width: unpadded, so the output stays as it was.
                println!(
                    "  {}/{} committed {} end {} lag {} {:>8} {}",
                    p.topic,
                    p.partition,
                    p.committed_offset,
                    p.end_offset,
                    p.lag_messages,
                    secs(p.lag_seconds),
                    p.status.as_str()
                );
            }
        }
    }
    Ok(exit_for(groups))
}
