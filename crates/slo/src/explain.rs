//! Plain-words explanation of an SLO and its alert tiers.

use crate::compile::{self, num, tier_words};
use crate::duration::Dur;
use crate::model::*;

/// Rules the compiler emits for this SLO, by kind.
pub fn rule_count(slo: &Slo) -> (usize, String) {
    let g = compile::rules_for_slo(slo);
    let rec = g.rules.iter().filter(|r| r.record.is_some()).count();
    let alerts = g.rules.len() - rec;
    (
        g.rules.len(),
        format!("{rec} recording + {alerts} alerting"),
    )
}

fn human_secs(s: f64) -> String {
    if s < 90.0 {
        format!("{} s", s.round())
    } else if s < 5400.0 {
        format!("{} min", num((s / 60.0 * 10.0).round() / 10.0))
    } else if s < 172_800.0 {
        format!("{} h", num((s / 3600.0 * 10.0).round() / 10.0))
    } else {
        format!("{} days", num((s / 86_400.0 * 10.0).round() / 10.0))
    }
}

pub fn explain(slo: &Slo) -> String {
    let mut o = String::new();
    let budget = slo.error_budget();
    o.push_str(&format!("SLO {} (service {})\n", slo.name, slo.service));
    o.push_str(&format!("  {}\n", slo.description));
    let unit = match (&slo.budgeting, &slo.sli) {
        (Budgeting::Occurrences, _) => "events".to_string(),
        (Budgeting::Timeslices { slice, .. }, _) => format!("{} slices", slice.words()),
    };
    o.push_str(&format!(
        "  Objective {}% of {unit} good over a {} window; error budget {}% = {} of total outage per {}.\n",
        num(slo.objective * 100.0),
        slo.window.words(),
        num(budget * 100.0),
        human_secs(budget * slo.window.nominal().as_secs_f64()),
        slo.window.words().replace("-day", " days"),
    ));
    o.push_str("  Alert tiers (factors are defined for 30 days and scaled so each tier burns the same share of the budget):\n");
    for t in &slo.alerting.tiers {
        let detect = slo.threshold_for(t, slo.window.nominal()) * t.long.as_secs_f64();
        o.push_str(&format!(
            "    tier {} ({}): {}. A total outage triggers it after about {}.\n",
            t.number,
            t.severity.as_str(),
            tier_words(slo, t),
            human_secs(detect)
        ));
    }
    if slo.has_traffic() && slo.alerting.min_events > 0 {
        o.push_str(&format!(
            "  Low-traffic guard: a tier stays silent unless its short window saw at least {} events.\n",
            slo.alerting.min_events
        ));
    }
    o.push_str(&format!(
        "  No data: recording rules report 0 (never NaN); a {} fires after {} without the SLI's series (absent()).\n",
        slo.alerting.no_data_severity.as_str(),
        slo.alerting.no_data_for.words()
    ));
    let (n, what) = rule_count(slo);
    o.push_str(&format!("  Prometheus rules: {n} ({what}).\n"));
    let _ = Dur::mins(1);
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn explains_default_tiers_in_plain_words() {
        let text = "service: s\nslos:\n  - name: a\n    objective: 0.999\n    window: {rolling: 30d}\n    sli: {availability: {matchers: {service: s}}}\n";
        let slo = &crate::validate::parse_str("s.yaml", text).unwrap()[0];
        let e = explain(slo);
        assert!(
            e.contains("pages when 2% of the 30-day budget burns within 1 h (burn rate 14.4)"),
            "{e}"
        );
        assert!(
            e.contains(
                "opens a ticket when 10% of the 30-day budget burns within 3 days (burn rate 1)"
            ),
            "{e}"
        );
        assert!(e.contains("Prometheus rules: 11"), "{e}");
        assert!(e.contains("43.2 min"), "{e}");
    }
}
