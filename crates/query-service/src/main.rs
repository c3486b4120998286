use clap::Parser;

/// Todo query service. Configuration: `--config FILE` (TOML) overlaid with
/// `QUERY_*` environment variables, e.g. QUERY_DATABASE_URL,
/// QUERY_KAFKA_BROKERS, QUERY_LISTEN_ADDR, QUERY_GROUP_ID, QUERY_AUTH_MODE.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: service_kit::launcher::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::launcher::main::<query_service::Application>(Cli::parse().args).await
}
