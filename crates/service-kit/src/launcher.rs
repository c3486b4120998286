//! What every service's `main` does: parse the two common flags, then
//! `--check-config` or load the configuration and run the [`Service`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// The flags every service binary takes; flattened into each `main`'s clap
/// parser (which carries the service's own name, version and about text).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML configuration file (default: the `<PREFIX>_CONFIG` environment
    /// variable, e.g. `COMMAND_CONFIG`; without either, defaults and the
    /// environment only).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load the configuration (file and environment) as start-up does, check
    /// everything that needs no connection, print every problem and exit 1,
    /// or a one-line summary and exit 0. Starts nothing.
    #[arg(long)]
    pub check_config: bool,
}

/// A service binary: its configuration, how it is built from it, and how it
/// runs until shutdown. `main` is then [`main::<Application>(args)`](main).
pub trait Service: Sized {
    /// The `service` label and log name, from `contracts::metrics::services`.
    const NAME: &'static str;
    /// Its configuration, loaded and checked by [`crate::check`].
    type Config: crate::check::Checked;
    /// The version reported in traces and Sentry events.
    fn version(config: &Self::Config) -> String;
    /// Connect, migrate, bind: everything that can fail before serving.
    fn build(config: Self::Config) -> impl Future<Output = anyhow::Result<Self>>;
    /// Serve until `shutdown` is cancelled.
    fn run(self, shutdown: CancellationToken) -> impl Future<Output = anyhow::Result<()>>;
}

/// A service's `main` once its arguments are parsed: `--check-config`
/// reports on the configuration and exits ([`crate::check::report`]);
/// otherwise the configuration is loaded as the check loads it and the
/// service is built and run.
pub async fn main<S: Service>(args: Args) -> ExitCode {
    let file = args.config.or_else(|| {
        let var = format!("{}_CONFIG", <S::Config as crate::check::Checked>::PREFIX);
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let file: Option<&Path> = file.as_deref();
    if args.check_config {
        return crate::check::report::<S::Config>(S::NAME, file);
    }
    run(
        S::NAME,
        crate::check::load::<S::Config>(file),
        S::version,
        |config, shutdown| async move { S::build(config).await?.run(shutdown).await },
    )
    .await
}

/// Load config (exit 2 with the error when it is invalid), start logs,
/// traces and error reporting, cancel on SIGTERM/SIGINT, run the service,
/// and exit 1 with the error when it fails.
async fn run<C, Fut>(
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
