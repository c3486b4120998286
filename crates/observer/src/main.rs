use clap::Parser;

/// The observer: consumer lag, SLO evaluation, paging and the status page.
/// Configuration: `--config FILE` (TOML) overlaid with `OBSERVER_*`
/// environment variables, e.g. OBSERVER_KAFKA_BROKERS, OBSERVER_SLO_DIR,
/// OBSERVER_PROMETHEUS_URL, OBSERVER_ALERTMANAGER_URL, OBSERVER_LISTEN_ADDR.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: service_kit::launcher::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::launcher::main::<observer::Application>(Cli::parse().args).await
}
