//! Seeded fault schedules over the real processes (the `chaos` crate): the
//! fixed seeds of `chaos::CI_SEEDS` and one random seed, printed. A failure
//! prints the schedule, the violated invariants and the seed that replays it
//! (`todoctl chaos --seed N`).

use std::time::Duration;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

async fn run_seed(seed: u64) -> anyhow::Result<()> {
    let report = chaos::run(
        &repo(),
        &chaos::Options {
            seed,
            length: Duration::from_secs(20),
            workers: 4,
        },
        &|line| eprintln!("[seed {seed}] {line}"),
    )
    .await?;
    eprintln!("{report}");
    anyhow::ensure!(
        report.violations.is_empty(),
        "seed {seed} broke an invariant:\n{report}"
    );
    anyhow::ensure!(
        report.accepted > 50,
        "seed {seed}: only {} writes accepted, the load did not run:\n{report}",
        report.accepted
    );
    Ok(())
}

/// One test, so that the schedules run one after another on the two cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fixed_and_random_seeds_keep_every_invariant() -> anyhow::Result<()> {
    for seed in chaos::CI_SEEDS {
        run_seed(seed).await?;
    }
    // scripts/test.sh draws it and prints it; a seed of our own otherwise.
    let seed = match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse()?,
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                % 1_000_000
        }
    };
    eprintln!("random chaos seed: {seed} (replay: todoctl chaos --seed {seed} --duration-secs 20)");
    run_seed(seed).await
}
