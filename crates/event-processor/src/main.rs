use clap::Parser;

/// Todo event processor. Configuration: `--config FILE` (TOML) overlaid with
/// `PROCESSOR_*` environment variables, e.g. PROCESSOR_DATABASE_URL,
/// PROCESSOR_KAFKA_BROKERS, PROCESSOR_LISTEN_ADDR, PROCESSOR_GROUP_ID, PROCESSOR_SWEEP_SCHEDULE.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: service_kit::launcher::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::launcher::main::<event_processor::Application>(Cli::parse().args).await
}
