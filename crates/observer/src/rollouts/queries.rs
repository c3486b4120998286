//! PromQL for one analysis interval, and the counters read from the answer.

use canary::CanarySpec;
use contracts::metrics as m;

use crate::prom::{PromClient, PromError};

/// Cumulative counters of one side, as queried.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Counters {
    pub(super) requests: f64,
    pub(super) errors: f64,
    pub(super) fast: f64,
    pub(super) consumed: f64,
    pub(super) dead_lettered: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sample {
    pub(super) stable: Counters,
    pub(super) canary: Counters,
}

/// Increase of a counter; a decrease means the process restarted, and the
/// new value is what it counted since.
pub(super) fn delta(cur: f64, prev: f64) -> u64 {
    let d = if cur < prev { cur } else { cur - prev };
    d.max(0.0).round() as u64
}
/// PromQL string literal content (inside double quotes).
fn promql_str(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A regex matching exactly `s` (RE2 metacharacters escaped).
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The queries one interval runs, shown in the decision log's inputs.
pub(super) fn queries(spec: &CanarySpec) -> Vec<(&'static str, String)> {
    let versions = format!(
        "{}|{}",
        regex_literal(&spec.stable_version),
        regex_literal(&spec.canary_version)
    );
    let sel = format!(
        "{}=\"{}\",{}=~\"{}\",{}!~\"/healthz|/readyz|/metrics\"",
        m::labels::SERVICE,
        promql_str(&spec.target),
        m::labels::VERSION,
        promql_str(&versions),
        m::labels::ROUTE,
    );
    let mut q = vec![
        (
            "latency_buckets",
            format!(
                "sum by ({}, le) ({}{{{sel}}})",
                m::labels::VERSION,
                m::HTTP_SERVER_REQUEST_DURATION.bucket()
            ),
        ),
        (
            "errors",
            format!(
                "sum by ({}) ({}{{{sel},{}=\"5xx\"}})",
                m::labels::VERSION,
                m::HTTP_SERVER_REQUEST_DURATION.count(),
                m::labels::STATUS_CLASS
            ),
        ),
    ];
    if spec.analysis.consumer.is_some() {
        let csel = format!(
            "{}=\"{}\",{}=~\"{}\"",
            m::labels::SERVICE,
            promql_str(&spec.target),
            m::labels::VERSION,
            promql_str(&versions),
        );
        q.push((
            "consumed",
            format!(
                "sum by ({}) ({}{{{csel}}})",
                m::labels::VERSION,
                m::KAFKA_MESSAGES_CONSUMED.series()
            ),
        ));
        q.push((
            "dead_lettered",
            format!(
                "sum by ({}) ({}{{{csel}}})",
                m::labels::VERSION,
                m::DLQ_MESSAGES.series()
            ),
        ));
    }
    q
}

fn parse_le(s: &str) -> Option<f64> {
    if s == "+Inf" {
        Some(f64::INFINITY)
    } else {
        s.parse().ok()
    }
}

/// Query the cumulative counters of both sides at one instant.
pub(super) async fn sample(
    prom: &PromClient,
    spec: &CanarySpec,
    queries: &[(&'static str, String)],
) -> Result<Sample, PromError> {
    let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let results = futures::future::join_all(queries.iter().map(|(_, q)| prom.vector(q, at))).await;
    let mut s = Sample::default();
    let thr = spec.analysis.latency_threshold_seconds;
    for ((name, _), res) in queries.iter().zip(results) {
        for series in res? {
            let version = series
                .labels
                .get(m::labels::VERSION)
                .map(String::as_str)
                .unwrap_or_default();
            let side = if version == spec.canary_version {
                &mut s.canary
            } else if version == spec.stable_version {
                &mut s.stable
            } else {
                continue;
            };
            match *name {
                "latency_buckets" => match series.labels.get("le").and_then(|l| parse_le(l)) {
                    Some(le) if le.is_infinite() => side.requests += series.value,
                    Some(le) if (le - thr).abs() < 1e-9 => side.fast += series.value,
                    _ => {}
                },
                "errors" => side.errors += series.value,
                "consumed" => side.consumed += series.value,
                "dead_lettered" => side.dead_lettered += series.value,
                _ => {}
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_handle_resets_and_regex_escapes_versions() {
        assert_eq!(delta(15.0, 10.0), 5);
        assert_eq!(delta(3.0, 10.0), 3, "a restarted process counts from zero");
        assert_eq!(regex_literal("1.2.3+b"), "1\\.2\\.3\\+b");
        let spec = CanarySpec::from_yaml(
            "c.yaml",
            "name: c\ntarget: command-service\nstable: command/stable\ncanary: command/canary\nstable_version: '1.0'\ncanary_version: '1.1'\n",
        )
        .expect("valid");
        let q = queries(&spec);
        assert!(
            q[0].1.contains("version=~\"1\\\\.0|1\\\\.1\""),
            "{}",
            q[0].1
        );
        assert!(q[1].1.contains("status_class=\"5xx\""));
        assert_eq!(q.len(), 2);
    }
}
