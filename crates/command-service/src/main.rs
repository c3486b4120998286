use std::path::PathBuf;

use clap::Parser;

/// Todo command service. Configuration: `--config FILE` (TOML) overlaid with
/// `COMMAND_*` environment variables, e.g. COMMAND_DATABASE_URL,
/// COMMAND_KAFKA_BROKERS, COMMAND_LISTEN_ADDR, COMMAND_VERSION, COMMAND_AUTH_MODE.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "COMMAND_CONFIG")]
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
        command_service::SERVICE,
        args.config.as_deref(),
        args.check_config,
        |c: &command_service::Config| c.platform.version.clone(),
        |config, shutdown| async move {
            command_service::Application::build(config)
                .await?
                .run(shutdown)
                .await
        },
    )
    .await
}
