use std::path::PathBuf;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// The observer: consumer lag, SLO evaluation, paging and the status page.
/// Configuration: `--config FILE` (TOML) overlaid with `OBSERVER_*`
/// environment variables, e.g. OBSERVER_KAFKA_BROKERS, OBSERVER_SLO_DIR,
/// OBSERVER_PROMETHEUS_URL, OBSERVER_ALERTMANAGER_URL, OBSERVER_LISTEN_ADDR.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "OBSERVER_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_kit::telemetry::init(observer::SERVICE);
    let config = match observer::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("observer: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    service_kit::shutdown::cancel_on_signal(shutdown.clone());
    let result = async {
        observer::Application::build(config)
            .await?
            .run(shutdown)
            .await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "observer failed");
            eprintln!("observer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
