use std::path::PathBuf;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Todo command service. Configuration: `--config FILE` (TOML) overlaid with
/// `COMMAND_*` environment variables, e.g. COMMAND_DATABASE_URL,
/// COMMAND_KAFKA_BROKERS, COMMAND_LISTEN_ADDR, COMMAND_VERSION, COMMAND_AUTH_MODE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "COMMAND_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match command_service::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("command-service: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let _telemetry = service_kit::telemetry::init_with(command_service::SERVICE, &config.version);
    let _errors = service_kit::errors::init(command_service::SERVICE, &config.version);
    let shutdown = CancellationToken::new();
    service_kit::shutdown::cancel_on_signal(shutdown.clone());
    let result = async {
        command_service::Application::build(config)
            .await?
            .run(shutdown)
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command service failed");
            eprintln!("command-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
