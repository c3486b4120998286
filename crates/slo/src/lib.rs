#![recursion_limit = "256"]
//! Pure SLO engine: spec model, validation, burn-rate math and compilers to
//! Prometheus rules, Alertmanager config and Grafana dashboards. No network
//! IO; the only IO is reading specs and writing generated files in `generate`.

pub mod alertmanager;
pub mod cli;
pub mod compile;
pub mod cost;
pub mod dashboards;
pub mod duration;
pub mod error;
pub mod eval;
pub mod explain;
pub mod generate;
pub mod grafana;
pub mod import;
pub mod k8s;
pub mod model;
pub mod openslo;
pub mod ops;
pub mod promql;
pub mod promtest;
pub mod pyrra;
pub mod receivers;
pub mod schema;
pub mod sloth;
pub mod spec;
pub mod validate;

pub use error::{Error, SpecError, SpecErrors};
pub use generate::{Options, artifacts, artifacts_with, generate};
pub use model::Slo;
pub use receivers::Receivers;
