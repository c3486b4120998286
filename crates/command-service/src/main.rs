use clap::Parser;

/// Todo command service. Configuration: `--config FILE` (TOML) overlaid with
/// `COMMAND_*` environment variables, e.g. COMMAND_DATABASE_URL,
/// COMMAND_KAFKA_BROKERS, COMMAND_LISTEN_ADDR, COMMAND_VERSION, COMMAND_AUTH_MODE.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: service_kit::launcher::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::launcher::main::<command_service::Application>(Cli::parse().args).await
}
