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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    service_kit::launcher::run(
        command_service::SERVICE,
        command_service::Config::load(args.config.as_deref()),
        |c| c.version.clone(),
        |config, shutdown| async move {
            command_service::Application::build(config)
                .await?
                .run(shutdown)
                .await
        },
    )
    .await
}
