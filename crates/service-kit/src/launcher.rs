//! What every service's `main` does after parsing its arguments.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// A service's `main` once its arguments are parsed: `--check-config`
/// reports on the configuration and exits ([`crate::check::report`]);
/// otherwise the configuration is loaded as the check loads it and the
/// service [`run`]s.
pub async fn main<C, Fut>(
    service: &'static str,
    config_file: Option<&Path>,
    check_config: bool,
    version: impl FnOnce(&C) -> String,
    app: impl FnOnce(C, CancellationToken) -> Fut,
) -> ExitCode
where
    C: crate::check::Checked,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if check_config {
        return crate::check::report::<C>(service, config_file);
    }
    run(service, crate::check::load::<C>(config_file), version, app).await
}

/// Load config (exit 2 with the error when it is invalid), start logs,
/// traces and error reporting, cancel on SIGTERM/SIGINT, run the service,
/// and exit 1 with the error when it fails.
pub async fn run<C, Fut>(
    service: &'static str,
    config: anyhow::Result<C>,
    version: impl FnOnce(&C) -> String,
    app: impl FnOnce(C, CancellationToken) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{service}: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let version = version(&config);
    let _telemetry = telemetry::subscriber::init_with(service, &version);
    let _errors = telemetry::errors::init(service, &version);
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    match app(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{service} failed");
            eprintln!("{service}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
