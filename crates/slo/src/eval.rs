//! Native evaluation of an SLI from raw samples, with the same semantics as
//! the generated recording rules. The observer uses it to evaluate SLOs
//! without trusting Prometheus' rule engine; `tests/real_prometheus.rs`
//! proves parity with the recording rules on a real Prometheus to 1e-9.

use crate::model::{Slo, Tier};

/// Prometheus 2.x `increase()` over raw counter samples `(t_ms, value)` in
/// the range `[range_start_ms, range_end_ms]` (both ends inclusive, as in
/// Prometheus 2.x): the raw delta, corrected for counter resets, extrapolated
/// towards the range edges (by at most half a sample interval, and never
/// below zero at the start). `None` with fewer than two samples.
pub fn extrapolated_increase(
    samples: &[(i64, f64)],
    range_start_ms: i64,
    range_end_ms: i64,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let mut result = last.1 - first.1;
    let mut prev = first.1;
    for s in &samples[1..] {
        if s.1 < prev {
            result += prev;
        }
        prev = s.1;
    }
    let mut to_start = (first.0 - range_start_ms) as f64 / 1000.0;
    let to_end = (range_end_ms - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (samples.len() - 1) as f64;
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    Some(result * (interval / sampled))
}

/// Sum of `increase()` over several series (`sum(increase(sel[w]))`);
/// `None` when no series has two samples in range.
pub fn sum_increase<'a>(
    series: impl IntoIterator<Item = &'a [(i64, f64)]>,
    range_start_ms: i64,
    range_end_ms: i64,
) -> Option<f64> {
    series
        .into_iter()
        .filter_map(|s| extrapolated_increase(s, range_start_ms, range_end_ms))
        .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

/// Occurrence error ratio from event counts, NaN-free exactly like the
/// recording rules: no traffic → 0; clamped to [0, 1].
pub fn occurrence_error_ratio(
    numerator: Option<f64>,
    total: Option<f64>,
    numerator_is_good: bool,
) -> f64 {
    match total {
        Some(t) if t > 0.0 => {
            if numerator_is_good {
                (1.0 - numerator.unwrap_or(0.0) / t).max(0.0)
            } else {
                numerator.map(|n| (n / t).min(1.0)).unwrap_or(0.0)
            }
        }
        _ => 0.0,
    }
}

/// Error ratio of a timeslice SLI: the share of bad slices (0/1 values); 0 without slices.
pub fn slice_error_ratio(slices: &[f64]) -> f64 {
    if slices.is_empty() {
        0.0
    } else {
        slices.iter().sum::<f64>() / slices.len() as f64
    }
}

/// Burn rate: error ratio divided by the error budget (1 = exactly on budget).
pub fn burn_rate(slo: &Slo, error_ratio: f64) -> f64 {
    error_ratio / slo.error_budget()
}

/// Whether a tier fires given the error ratios of its long and short
/// windows, the events in its short window (None for timeslice SLIs) and the
/// period length in days (real month length for calendar months).
pub fn tier_fires(
    slo: &Slo,
    tier: &Tier,
    long_ratio: f64,
    short_ratio: f64,
    short_events: Option<f64>,
    period_days: f64,
) -> bool {
    let threshold = tier.factor * period_days / 30.0 * slo.error_budget();
    let guard = match short_events {
        Some(n) if slo.has_traffic() && slo.alerting.min_events > 0 => {
            n >= slo.alerting.min_events as f64
        }
        _ => true,
    };
    long_ratio > threshold && short_ratio > threshold && guard
}

/// Remaining share of the error budget given the period's error ratio.
pub fn budget_remaining(slo: &Slo, period_error_ratio: f64) -> f64 {
    1.0 - period_error_ratio / slo.error_budget()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increase_matches_prometheus_examples() {
        // Fully covered window, samples on both edges: exact difference.
        let s = [(0, 0.0), (60_000, 10.0), (120_000, 20.0)];
        assert_eq!(extrapolated_increase(&s, 0, 120_000), Some(20.0));
        // Gap at both ends larger than 1.1 × interval: half an interval each side.
        // (A first value of 100 keeps the zero-crossing out of the range.)
        let s = [(100_000, 100.0), (110_000, 110.0), (120_000, 120.0)];
        assert_eq!(
            extrapolated_increase(&s, 0, 300_000),
            Some(20.0 * 30.0 / 20.0)
        );
        // Counter reset adds the value before the reset.
        let s = [(0, 5.0), (10_000, 8.0), (20_000, 2.0)];
        assert_eq!(extrapolated_increase(&s, 0, 20_000), Some(5.0));
        assert_eq!(extrapolated_increase(&s[..1], 0, 20_000), None);
        // Extrapolation towards the start stops where the counter would reach zero.
        let s = [(100_000, 10.0), (110_000, 20.0), (120_000, 30.0)];
        assert_eq!(
            extrapolated_increase(&s, 0, 120_000),
            Some(20.0 * 30.0 / 20.0)
        );
    }

    #[test]
    fn error_ratio_is_never_nan() {
        assert_eq!(occurrence_error_ratio(None, None, false), 0.0);
        assert_eq!(occurrence_error_ratio(Some(0.0), Some(0.0), true), 0.0);
        assert_eq!(occurrence_error_ratio(None, Some(10.0), true), 1.0);
        assert_eq!(occurrence_error_ratio(None, Some(10.0), false), 0.0);
        assert_eq!(occurrence_error_ratio(Some(11.0), Some(10.0), false), 1.0);
        assert_eq!(slice_error_ratio(&[]), 0.0);
    }
}
