use std::path::PathBuf;

use clap::Parser;

/// Todo event processor. Configuration: `--config FILE` (TOML) overlaid with
/// `PROCESSOR_*` environment variables, e.g. PROCESSOR_DATABASE_URL,
/// PROCESSOR_KAFKA_BROKERS, PROCESSOR_LISTEN_ADDR, PROCESSOR_GROUP_ID, PROCESSOR_SWEEP_SCHEDULE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "PROCESSOR_CONFIG")]
    config: Option<PathBuf>,
    /// Load the configuration (file and environment) as start-up does, check
    /// everything that needs no connection, print every problem and exit 1,
    /// or a one-line summary and exit 0. Starts nothing.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_kit::launcher::main(
        event_processor::SERVICE,
        args.config.as_deref(),
        args.check_config,
        |c: &event_processor::Config| c.platform.version.clone(),
        |config, shutdown| async move {
            event_processor::Application::build(config)
                .await?
                .run(shutdown)
                .await
        },
    )
    .await
}
