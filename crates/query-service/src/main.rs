use std::path::PathBuf;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Todo query service. Configuration: `--config FILE` (TOML) overlaid with
/// `QUERY_*` environment variables, e.g. QUERY_DATABASE_URL,
/// QUERY_KAFKA_BROKERS, QUERY_LISTEN_ADDR, QUERY_GROUP_ID, QUERY_AUTH_MODE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "QUERY_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match query_service::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("query-service: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let _telemetry = service_kit::telemetry::init_with(query_service::SERVICE, &config.version);
    let _errors = service_kit::errors::init(query_service::SERVICE, &config.version);
    let shutdown = CancellationToken::new();
    service_kit::shutdown::cancel_on_signal(shutdown.clone());
    let result = async {
        query_service::Application::build(config)
            .await?
            .run(shutdown)
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "query service failed");
            eprintln!("query-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
