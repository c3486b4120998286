use std::path::PathBuf;

use clap::Parser;

/// Todo query service. Configuration: `--config FILE` (TOML) overlaid with
/// `QUERY_*` environment variables, e.g. QUERY_DATABASE_URL,
/// QUERY_KAFKA_BROKERS, QUERY_LISTEN_ADDR, QUERY_GROUP_ID, QUERY_AUTH_MODE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "QUERY_CONFIG")]
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
        query_service::SERVICE,
        args.config.as_deref(),
        args.check_config,
        |c: &query_service::Config| c.platform.version.clone(),
        |config, shutdown| async move {
            query_service::Application::build(config)
                .await?
                .run(shutdown)
                .await
        },
    )
    .await
}
