use std::path::PathBuf;

use clap::Parser;
use tokio_util::sync::CancellationToken;

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
    let config = match event_processor::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("event-processor: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let _telemetry = service_kit::telemetry::init_with(event_processor::SERVICE, &config.version);
    let _errors = service_kit::errors::init(event_processor::SERVICE, &config.version);
    let shutdown = CancellationToken::new();
    service_kit::shutdown::cancel_on_signal(shutdown.clone());
    let result = async {
        event_processor::Application::build(config)
            .await?
            .run(shutdown)
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "event processor failed");
            eprintln!("event-processor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
