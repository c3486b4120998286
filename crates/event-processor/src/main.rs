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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_kit::launcher::run(
        event_processor::SERVICE,
        event_processor::Config::load(args.config.as_deref()),
        |c| c.version.clone(),
        |config, shutdown| async move {
            event_processor::Application::build(config)
                .await?
                .run(shutdown)
                .await
        },
    )
    .await
}
