//! The observer's HTTP API (`/api/v1/*`) as types. The observer serializes
//! them and `todoctl` deserializes them, so both ends change together: a
//! renamed field is a compile error, not a silent default. Serde only (no
//! HTTP, no SQL); the OpenAPI document `crates/observer/openapi.json`
//! describes the same shapes.

pub mod alerts;
pub mod canaries;
pub mod lag;
pub mod report;
pub mod slos;
