//! Error reporting to Sentry when `SENTRY_DSN` is set: every 5xx and every
//! panic, tagged with the trace id of the request, so an error in Sentry leads
//! to its trace and its log lines. The HTTP side (a panicking handler
//! becomes a 500) is `service_kit::errors::catch_panic`.

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Keeps the Sentry client alive; dropping it flushes queued events.
pub struct ErrorReportingGuard(#[allow(dead_code)] Option<sentry::ClientInitGuard>);

/// Start reporting if `SENTRY_DSN` is set. The transport sends from its own
/// thread: a Sentry that is down never slows a request.
pub fn init(service: &str, version: &str) -> ErrorReportingGuard {
    let Some(dsn) = std::env::var("SENTRY_DSN").ok().filter(|s| !s.is_empty()) else {
        return ErrorReportingGuard(None);
    };
    let parsed = match dsn.parse() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SENTRY_DSN is not a valid DSN, error reporting stays off: {e}");
            return ErrorReportingGuard(None);
        }
    };
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(parsed);
    options.release = Some(format!("{service}@{}", env!("CARGO_PKG_VERSION")).into());
    options.environment = std::env::var("SENTRY_ENVIRONMENT").ok().map(Into::into);
    options.server_name = Some(service.to_string().into());
    let guard = sentry::init(options);
    sentry::configure_scope(|scope| {
        scope.set_tag("service", service);
        scope.set_tag("version", version);
    });
    ErrorReportingGuard(Some(guard))
}

/// The trace id of the current span, when tracing is on.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Report an internal error (the 5xx path). A no-op without a DSN.
pub fn report(err: &anyhow::Error) {
    let trace_id = current_trace_id();
    sentry::with_scope(
        |scope| {
            if let Some(t) = &trace_id {
                scope.set_tag("trace_id", t);
            }
        },
        || {
            sentry::capture_message(&format!("{err:#}"), sentry::Level::Error);
        },
    );
}
