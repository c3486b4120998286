//! The OTLP/HTTP trace receiver of `devstack` (also the Tempo stand-in of
//! the compose parity run).

use devstack::Stack;
pub use devstack::otlp::Seen;

pub async fn otlp_receiver() -> anyhow::Result<(String, Seen)> {
    devstack::otlp::receiver().await
}

/// PostgreSQL and the broker, with every service it spawns exporting spans
/// to a fresh OTLP receiver (batched every 100 ms) plus `extra` environment.
pub async fn traced_stack(extra: &[(&str, &str)]) -> anyhow::Result<(Stack, Seen)> {
    let (otlp, seen) = otlp_receiver().await?;
    let mut stack = Stack::start().await?;
    stack.wiring.common_env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ];
    stack
        .wiring
        .common_env
        .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok((stack, seen))
}
