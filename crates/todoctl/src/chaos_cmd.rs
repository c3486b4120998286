//! `todoctl chaos`: seeded random fault schedules over the real processes
//! of the platform, with the recovery and no-loss invariants checked after
//! each (docs/reliability.md).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Args)]
pub struct ChaosArgs {
    /// The schedule's seed (printed; the same seed replays the same
    /// schedule). Default: a random one.
    #[arg(long)]
    seed: Option<u64>,
    /// Length of each fault schedule.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Run this many schedules one after another (seed, seed + 1, …): a soak.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// The repository (for slo/ and alerts/).
    #[arg(long, default_value = ".")]
    repo: std::path::PathBuf,
}

pub async fn run(a: ChaosArgs) -> anyhow::Result<ExitCode> {
    let first = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let repo = std::path::absolute(&a.repo)?;
    let mut failed = 0;
    for seed in (0..a.repeat).map(|i| first.wrapping_add(i)) {
        eprintln!("==> chaos seed {seed}");
        let report = chaos::run(
            &repo,
            &chaos::Options {
                seed,
                length: Duration::from_secs(a.duration_secs),
                workers: a.workers,
            },
            &|line| eprintln!("{line}"),
        )
        .await?;
        println!("{report}");
        if !report.violations.is_empty() {
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} of {} schedules broke an invariant", a.repeat);
        ExitCode::FAILURE
    })
}
