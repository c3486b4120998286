//! The OTLP/HTTP trace receiver of `devstack` (also the Tempo stand-in of
//! the compose parity run).

pub use devstack::otlp::Seen;

pub async fn otlp_receiver() -> anyhow::Result<(String, Seen)> {
    devstack::otlp::receiver().await
}
