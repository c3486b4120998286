//! Structured JSON logs on stdout with trace ids (`RUST_LOG` filters, default
//! `info`), pushed to Loki when `LOKI_URL` is set (see [`crate::logs`]), and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces exported
//! over OTLP/HTTP (protobuf). W3C trace context is the propagation format.
//!
//! The exporter runs on its own thread with a bounded queue: a collector that
//! is down or slow costs dropped spans, never request latency.
//!
//! Sampling follows `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (the
//! OpenTelemetry names and values; default `parentbased_always_on`). Unlike
//! the SDK, which falls back silently, an invalid value is a configuration
//! error ([`sampler_from`]; `--check-config` and start-up report it).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
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

/// The samplers `OTEL_TRACES_SAMPLER` may name.
pub const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// What `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` ask for, parsed
/// strictly: `Sampler` itself cannot be compared, this can.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBased(Root),
}

/// The root sampler of a parent-based one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl SamplerChoice {
    pub fn sampler(self) -> Sampler {
        let root = |r: Root| match r {
            Root::AlwaysOn => Sampler::AlwaysOn,
            Root::AlwaysOff => Sampler::AlwaysOff,
            Root::Ratio(x) => Sampler::TraceIdRatioBased(x),
        };
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(x) => Sampler::TraceIdRatioBased(x),
            Self::ParentBased(r) => Sampler::ParentBased(Box::new(root(r))),
        }
    }
}

/// Parse `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` from `env`. Unset
/// or empty means `parentbased_always_on`; the ratio samplers take the
/// argument as a probability in [0, 1] (default 1.0); the others ignore it.
/// The error names the variable at fault.
pub fn sampler_from(env: &dyn Fn(&str) -> Option<String>) -> Result<SamplerChoice, String> {
    let get = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let name = get("OTEL_TRACES_SAMPLER").unwrap_or_else(|| "parentbased_always_on".into());
    let ratio = || -> Result<f64, String> {
        let Some(arg) = get("OTEL_TRACES_SAMPLER_ARG") else {
            return Ok(1.0);
        };
        match arg.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(format!(
                "OTEL_TRACES_SAMPLER_ARG: '{arg}' is not a probability between 0.0 and 1.0 (OTEL_TRACES_SAMPLER={name})"
            )),
        }
    };
    Ok(match name.as_str() {
        "always_on" => SamplerChoice::AlwaysOn,
        "always_off" => SamplerChoice::AlwaysOff,
        "traceidratio" => SamplerChoice::Ratio(ratio()?),
        "parentbased_always_on" => SamplerChoice::ParentBased(Root::AlwaysOn),
        "parentbased_always_off" => SamplerChoice::ParentBased(Root::AlwaysOff),
        "parentbased_traceidratio" => SamplerChoice::ParentBased(Root::Ratio(ratio()?)),
        other => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER: '{other}' is not a sampler this build supports (one of {})",
                SAMPLERS.join(", ")
            ));
        }
    })
}

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
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
    // Checked at start-up (the config load fails on it); off, not a panic, if not.
    let sampler = match sampler_from(&process_env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}: tracing stays off");
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
            .with_sampler(sampler.sampler())
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};

    /// The environment as `pairs` say.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<SamplerChoice, String> {
        sampler_from(&env(pairs))
    }

    #[test]
    fn every_documented_sampler_parses_and_the_default_is_parentbased_always_on() {
        assert_eq!(parse(&[]), Ok(SamplerChoice::ParentBased(Root::AlwaysOn)));
        assert_eq!(
            parse(&[("OTEL_TRACES_SAMPLER", "")]),
            Ok(SamplerChoice::ParentBased(Root::AlwaysOn))
        );
        assert_eq!(
            parse(&[("OTEL_TRACES_SAMPLER", "always_on")]),
            Ok(SamplerChoice::AlwaysOn)
        );
        assert_eq!(
            parse(&[("OTEL_TRACES_SAMPLER", "always_off")]),
            Ok(SamplerChoice::AlwaysOff)
        );
        assert_eq!(
            parse(&[("OTEL_TRACES_SAMPLER", "traceidratio")]),
            Ok(SamplerChoice::Ratio(1.0))
        );
        assert_eq!(
            parse(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25")
            ]),
            Ok(SamplerChoice::Ratio(0.25))
        );
        assert_eq!(
            parse(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")]),
            Ok(SamplerChoice::ParentBased(Root::AlwaysOff))
        );
        assert_eq!(
            parse(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1")
            ]),
            Ok(SamplerChoice::ParentBased(Root::Ratio(0.1)))
        );
        // The argument only matters to the ratio samplers.
        assert_eq!(
            parse(&[
                ("OTEL_TRACES_SAMPLER", "always_on"),
                ("OTEL_TRACES_SAMPLER_ARG", "lots")
            ]),
            Ok(SamplerChoice::AlwaysOn)
        );
    }

    #[test]
    fn invalid_samplers_and_ratios_name_their_variable() {
        let err = parse(&[("OTEL_TRACES_SAMPLER", "sometimes")]).expect_err("unknown");
        assert!(err.starts_with("OTEL_TRACES_SAMPLER: 'sometimes'"), "{err}");
        assert!(err.contains("parentbased_traceidratio"), "{err}");
        // The SDK's jaeger_remote and xray are not in this build.
        assert!(parse(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]).is_err());
        for bad in ["1.5", "-0.1", "ten", "NaN"] {
            let err = parse(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", bad),
            ])
            .expect_err(bad);
            assert!(err.starts_with("OTEL_TRACES_SAMPLER_ARG: "), "{err}");
        }
    }

    fn decide(choice: SamplerChoice, parent: Option<bool>) -> SamplingDecision {
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
        let cx = match parent {
            None => opentelemetry::Context::new(),
            Some(sampled) => {
                let flags = if sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                };
                opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
                    trace_id,
                    opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
                    flags,
                    true,
                    TraceState::default(),
                ))
            }
        };
        choice
            .sampler()
            .should_sample(Some(&cx), trace_id, "op", &SpanKind::Server, &[], &[])
            .decision
    }

    #[test]
    fn ratio_zero_drops_roots_and_parentbased_follows_the_parent() {
        let zero = parse(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ])
        .expect("parses");
        assert_eq!(decide(zero, None), SamplingDecision::Drop);
        assert_eq!(decide(zero, Some(true)), SamplingDecision::RecordAndSample);
        assert_eq!(decide(zero, Some(false)), SamplingDecision::Drop);
        let off = parse(&[("OTEL_TRACES_SAMPLER", "always_off")]).expect("parses");
        assert_eq!(decide(off, Some(true)), SamplingDecision::Drop);
        let plain_zero = parse(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ])
        .expect("parses");
        assert_eq!(decide(plain_zero, Some(true)), SamplingDecision::Drop);
        let default = parse(&[]).expect("parses");
        assert_eq!(decide(default, None), SamplingDecision::RecordAndSample);
        assert_eq!(decide(default, Some(false)), SamplingDecision::Drop);
    }
}
