//! Everything that crosses a process boundary lives here: the event envelope
//! and payloads written to Kafka, topic names, the versioned JSON Schemas that
//! every record is validated against on produce and on consume, and the typed
//! metric names that services emit and the SLO engine compiles into rules and
//! dashboards.
//!
//! Architecture invariant: this crate does no IO and depends on no other crate
//! of the workspace.

pub mod events;
pub mod metrics;
pub mod schema;
pub mod topics;

pub use events::*;
