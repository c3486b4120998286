//! Structured JSON logs on stdout. `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber; a second call (tests) is a no-op.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let res = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
    if res.is_ok() {
        tracing::info!(service, "logging initialised");
    }
}

/// For tests: logs only when `TEST_LOG` is set, so test output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init("test");
    }
}
