//! Structured JSON logs on stdout with trace ids (`RUST_LOG` filters, default
//! `info`), pushed to Loki when `LOKI_URL` is set (see [`crate::logs`]), and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces exported
//! over OTLP/HTTP (protobuf). W3C trace context is the propagation format.
//!
//! The exporter runs on its own thread with a bounded queue: a collector that
//! is down or slow costs dropped spans, never request latency.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes and shuts the trace exporter down when dropped (end of `main`).
#[must_use = "keep the guard alive until the service stops"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace exporter shutdown: {e}");
        }
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"))
}

fn tracer_provider(service: &str, version: &str) -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())?;
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT itself and appends /v1/traces.
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: cannot build the OTLP exporter, tracing stays off: {e}"
            );
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            version.to_string(),
        ))
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

/// Install the global subscriber (logs, and traces when configured); a second
/// call (tests) is a no-op. Keep the guard until the service stops.
pub fn init_with(service: &str, version: &str) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(service, version);
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_string())));
    let loki = std::env::var("LOKI_URL").ok().filter(|s| !s.is_empty());
    let logs = crate::logs::LogLayer::new(service, version, loki);
    // The OpenTelemetry layer goes first so that events see the span context.
    let res = tracing_subscriber::registry()
        .with(filter())
        .with(otel)
        .with(logs)
        .try_init();
    if res.is_ok() {
        tracing::info!(
            service,
            version,
            traces = provider.is_some(),
            "telemetry initialised"
        );
    }
    TelemetryGuard { provider }
}

/// For tests: logs only when `TEST_LOG` is set, so test output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .try_init();
    }
}
