//! `todoctl`: operate the platform from a terminal.

mod bench;
mod canary_cmd;
mod chaos_cmd;
mod exit;
mod lag_cmd;
mod load;
mod replay;
mod slo_cmd;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "todoctl",
    version,
    about = "Operate the todo platform: local stack, replay, benchmarks, SLOs, canaries"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Table,
    /// Machine-readable JSON on stdout.
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole platform locally (Postgres, broker, services) until Ctrl-C.
    Stack(stack::StackArgs),
    /// Rebuild the query read model from the start of `todo-events` and swap it in.
    Replay(replay::ReplayArgs),
    /// Measure the write path and end-to-end freshness against raw baselines.
    Bench(bench::BenchArgs),
    /// Consumer-group lag as the observer sees it (table, or --output json).
    Lag(lag_cmd::LagArgs),
    /// Seeded random fault schedules over the whole platform, with the
    /// recovery and no-loss invariants checked after each (docs/reliability.md).
    Chaos(chaos_cmd::ChaosArgs),
    /// Generate realistic traffic (creates, updates, completes, reads) at a fixed rate.
    Load(load::LoadArgs),
    /// SLO specs: validate, generate rules/alerting/dashboards, explain, import OpenSLO.
    #[command(subcommand)]
    Slo(slo_cmd::SloCommand),
    /// Rollouts (canary and blue-green) driven by the observer: status,
    /// explain, history, promote, pause, resume, abort. `todoctl canary` is
    /// the same command under its original name.
    #[command(name = "rollout", visible_alias = "canary")]
    Canary(canary_cmd::CanaryArgs),
    /// Abort a rollout and return all traffic to stable/blue (idempotent).
    Rollback(canary_cmd::RollbackArgs),
    /// The subset of Apache Kafka's kafka-topics.sh that the compose file's
    /// topic set-up uses (`--create --if-not-exists --topic T --partitions N`);
    /// the compose parity run answers kafka-topics.sh with it.
    #[command(hide = true)]
    KafkaTopics(stack::KafkaTopicsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SLO commands are pure file work: no runtime needed.
    let cli = match cli.command {
        Cmd::Slo(cmd) => {
            return slo_cmd::run(cmd).unwrap_or_else(|e| {
                eprintln!("todoctl: {e:#}");
                ExitCode::FAILURE
            });
        }
        other => Cli { command: other },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("todoctl: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Cmd::Stack(a) => stack::run(a).await,
            Cmd::Replay(a) => replay::run(a).await,
            Cmd::Bench(a) => bench::run(a).await,
            Cmd::Load(a) => load::run(a).await,
            Cmd::Chaos(a) => chaos_cmd::run(a).await,
            Cmd::Lag(a) => lag_cmd::run(a).await,
            Cmd::Canary(a) => canary_cmd::run(a).await,
            Cmd::Rollback(a) => canary_cmd::rollback(a).await,
            Cmd::KafkaTopics(a) => stack::kafka_topics(a).await,
            Cmd::Slo(_) => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("todoctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
