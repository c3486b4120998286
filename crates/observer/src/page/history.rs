//! Series over time for the SLO pages, from Prometheus range queries of the
//! same expressions the native evaluation sends as instant queries
//! (`crate::slos`), so the graphs end at the numbers the API shows.

use slo::duration::Dur;
use slo::model::{Budgeting, Slo};

use crate::prom::{PromClient, PromError};

pub type Points = Vec<(f64, f64)>;

/// Points a graph asks for over its span.
const STEPS: f64 = 120.0;

/// Enough points to call a span drawn; with fewer, a shorter span is tried
/// (Prometheus that started an hour ago has one point in a 30-day span).
const ENOUGH: usize = 20;

/// Rates are per second over this window.
const RATE_WINDOW: Dur = Dur(300);

/// The error ratio of `slo` over `window`: the recording rules' expression
/// (`slo::compile::error_ratio_expr`), kept only where the window saw
/// traffic (or slices), so a graph does not invent a full budget for the
/// time before Prometheus had data.
pub fn error_ratio_query(slo: &Slo, window: Dur) -> String {
    let seen = slo::compile::total_events_expr(slo, window).unwrap_or_else(|| {
        format!(
            "count_over_time({}[{}])",
            slo::compile::selector(slo::compile::SLICE_BAD, slo),
            window.prom()
        )
    });
    format!(
        "({}) and on() ({seen} > 0)",
        slo::compile::error_ratio_expr(slo, window)
    )
}

/// Requests and errors per second, for SLIs budgeted by occurrences (a
/// timeslice SLI's ratio counts slices, not requests).
pub fn rate_queries(slo: &Slo) -> Option<(String, String)> {
    if !matches!(slo.budgeting, Budgeting::Occurrences) {
        return None;
    }
    let secs = RATE_WINDOW.as_secs();
    let requests = format!(
        "{} / {secs}",
        slo::compile::total_events_expr(slo, RATE_WINDOW)?
    );
    let errors = format!(
        "({}) * {requests}",
        slo::compile::error_ratio_expr(slo, RATE_WINDOW)
    );
    Some((requests, errors))
}

/// The span a page draws for `slo`: its whole budget period when Prometheus
/// has that much history, else the longest shorter span with enough points.
/// Returns the span in seconds and the budget remaining over it.
pub async fn budget(client: &PromClient, slo: &Slo, now: f64) -> Result<(f64, Points), PromError> {
    let period = slo.window.nominal();
    let q = error_ratio_query(slo, period);
    let mut best = (period.as_secs_f64(), Points::new());
    for span in spans(period.as_secs_f64()) {
        let ratio = first(client.range(&q, now - span, now, step(span)).await?);
        if ratio.len() > best.1.len() {
            best = (span, ratio);
        }
        if best.1.len() >= ENOUGH {
            break;
        }
    }
    let remaining = best
        .1
        .iter()
        .map(|&(t, r)| (t, slo::eval::budget_remaining(slo, r)))
        .collect();
    Ok((best.0, remaining))
}

/// Requests and errors per second over `span` seconds up to `now`.
pub async fn rates(
    client: &PromClient,
    slo: &Slo,
    span: f64,
    now: f64,
) -> Result<Option<(Points, Points)>, PromError> {
    let Some((requests, errors)) = rate_queries(slo) else {
        return Ok(None);
    };
    let (r, e) = futures::future::try_join(
        client.range(&requests, now - span, now, step(span)),
        client.range(&errors, now - span, now, step(span)),
    )
    .await?;
    Ok(Some((first(r), first(e))))
}

fn spans(period: f64) -> impl Iterator<Item = f64> {
    std::iter::once(period).chain(
        [86_400.0, 3_600.0, 600.0, 120.0]
            .into_iter()
            .filter(move |s| *s < period),
    )
}

fn step(span: f64) -> f64 {
    (span / STEPS).max(1.0)
}

fn first(series: Vec<crate::prom::RangeSeries>) -> Points {
    series
        .into_iter()
        .next()
        .map(|s| s.points)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_shrink_from_the_period() {
        assert_eq!(
            spans(30.0 * 86_400.0).collect::<Vec<_>>(),
            [2_592_000.0, 86_400.0, 3_600.0, 600.0, 120.0]
        );
        assert_eq!(spans(3_600.0).collect::<Vec<_>>(), [3_600.0, 600.0, 120.0]);
        assert_eq!(step(600.0), 5.0);
        assert_eq!(step(60.0), 1.0);
    }

    fn specs() -> Vec<Slo> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../slo");
        slo::validate::load_dir(&dir).expect("the repository's SLO specs")
    }

    #[test]
    fn budget_queries_keep_only_windows_with_traffic() {
        for slo in specs() {
            let q = error_ratio_query(&slo, slo.window.nominal());
            let rules = slo::compile::error_ratio_expr(&slo, slo.window.nominal());
            assert!(q.starts_with(&format!("({rules}) and on() (")), "{q}");
            assert!(q.ends_with(" > 0)"), "{q}");
        }
    }

    #[test]
    fn rates_only_for_occurrence_budgets() {
        for slo in specs() {
            let rates = rate_queries(&slo);
            assert_eq!(
                rates.is_some(),
                matches!(slo.budgeting, Budgeting::Occurrences)
                    && slo::compile::total_events_expr(&slo, RATE_WINDOW).is_some(),
                "{}",
                slo.name
            );
            if let Some((requests, errors)) = rates {
                assert!(requests.ends_with(" / 300"), "{requests}");
                assert!(errors.ends_with(&requests), "{errors}");
            }
        }
    }
}
