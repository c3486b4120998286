use std::path::PathBuf;

use clap::Parser;

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
        observer::SERVICE,
        args.config.as_deref(),
        args.check_config,
        |_: &observer::Config| "stable".to_string(),
        |config, shutdown| async move {
            observer::Application::build(config)
                .await?
                .run(shutdown)
                .await
        },
    )
    .await
}
