//! SLO → Prometheus recording and alerting rules.
//!
//! Per SLO (default tiers) the compiler emits 11 rules:
//! - one error-ratio recording rule per distinct alert window (7 for the
//!   default tiers: 5m, 30m, 1h, 2h, 6h, 1d, 3d), each computed directly from
//!   the counters as `sum(increase(bad[w])) / sum(increase(total[w]))`, so every
//!   window, long ones included, is traffic-weighted (never an average of
//!   short-window ratios, which over-weights quiet hours);
//! - one error-ratio rule over the SLO period (for budget remaining);
//! - one alert per severity (`page`, `ticket`); each alert series carries the
//!   `tier` label of the tier that matched, so Alertmanager can inhibit lower
//!   tiers;
//! - one no-data alert (`absent()`);
//! - for timeslice budgeting only, one more rule recording each slice as bad
//!   (1) or good (0) once per slice (12 in total).
//!
//! No-data policy: a recording rule never yields NaN. Denominators are filtered
//! with `> 0` and the whole expression ends in `or on() vector(0)`, so "no
//! traffic" records an error ratio of 0 (no budget burns when nobody is served),
//! and missing metrics are reported separately by the `absent()` alert.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::duration::Dur;
use crate::model::*;

pub const ERROR_RATIO: &str = "slo:sli_error:ratio_rate";
pub const PERIOD_ERROR_RATIO: &str = "slo:sli_error:ratio_period";
pub const SLICE_BAD: &str = "slo:sli_error:slice";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Number rendering without float noise (`0.0144`, not `0.014400000000000001`).
pub fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = 12 - (x.abs().log10().floor() as i32 + 1);
    let s = format!("{:.*}", digits.max(0) as usize, x);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub fn ratio_metric(w: Dur) -> String {
    format!("{ERROR_RATIO}{}", w.prom())
}

/// `AbcDefBurnRatePage` style names from `abc-def`.
pub fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The burn alert's name: the spec's `page_alert.name`/`ticket_alert.name`,
/// else `<Slo>BurnRatePage`/`<Slo>BurnRateTicket`.
pub fn burn_alert_name(slo: &Slo, sev: Severity) -> String {
    if let Some(n) = &slo.alerting.meta(sev).name {
        return n.clone();
    }
    match sev {
        Severity::Page => format!("{}BurnRatePage", camel(&slo.name)),
        Severity::Ticket => format!("{}BurnRateTicket", camel(&slo.name)),
    }
}

pub fn no_data_alert_name(slo: &Slo) -> String {
    format!("{}NoData", camel(&slo.name))
}

/// Occurrence error ratio over `w` (PromQL range string), NaN-free.
fn events_error_ratio(numerator: &Query, good: bool, total: &Query, w: &str) -> String {
    let n = numerator.increase(w);
    let t = total.increase(w);
    if good {
        format!("clamp_min(1 - ({n} or on() vector(0)) / ({t} > 0), 0) or on() vector(0)")
    } else {
        format!("clamp_max({n} / ({t} > 0), 1) or on() vector(0)")
    }
}

/// Per-slice badness (1 = bad slice, 0 = good), recorded once per slice by
/// a group whose evaluation interval is the slice length. Windows then
/// average these samples: each slice weighs the same, as timeslice budgeting
/// demands, and no long subquery is needed.
pub fn slice_expr(slo: &Slo) -> Option<String> {
    match (&slo.sli, &slo.budgeting) {
        (_, Budgeting::Occurrences) => None,
        (
            Sli::Events {
                numerator,
                numerator_is_good,
                total,
                ..
            },
            Budgeting::Timeslices {
                slice,
                slice_objective,
            },
        ) => {
            let inner = events_error_ratio(numerator, *numerator_is_good, total, &slice.prom());
            let bound = 1.0 - slice_objective.unwrap_or(0.99);
            Some(format!("({inner}) > bool {}", num(bound)))
        }
        (
            Sli::ConsumerLag {
                group,
                topic,
                max_lag_seconds,
            },
            Budgeting::Timeslices { .. },
        ) => Some(format!(
            "max({}) > bool {}",
            Sli::lag_selector(group, topic),
            num(*max_lag_seconds)
        )),
        (
            Sli::QueryThreshold {
                promql,
                good_when,
                value,
            },
            Budgeting::Timeslices { .. },
        ) => Some(format!(
            "max(({promql}) {} bool {})",
            good_when.bad_op(),
            num(*value)
        )),
    }
}

/// The SLI's error ratio (bad share of events, or of time slices) over `w`.
pub fn error_ratio_expr(slo: &Slo, w: Dur) -> String {
    let wp = w.prom();
    match (&slo.sli, &slo.budgeting) {
        (
            Sli::Events {
                numerator,
                numerator_is_good,
                total,
                ..
            },
            Budgeting::Occurrences,
        ) => events_error_ratio(numerator, *numerator_is_good, total, &wp),
        _ => format!(
            "avg_over_time({}[{wp}]) or on() vector(0)",
            selector(SLICE_BAD, slo)
        ),
    }
}

/// Events in the short window, for the low-traffic guard.
pub fn total_events_expr(slo: &Slo, w: Dur) -> Option<String> {
    match &slo.sli {
        Sli::Events { total, .. } => Some(total.increase(&w.prom())),
        Sli::ConsumerLag { .. } | Sli::QueryThreshold { .. } => None,
    }
}

/// Error-ratio threshold of a tier in PromQL. Rolling and weekly periods are
/// fixed; a calendar month uses its real length (`days_in_month()`, UTC).
pub fn threshold_expr(slo: &Slo, tier: &Tier) -> String {
    match &slo.window {
        Window::Calendar {
            unit: CalendarUnit::Month,
            ..
        } => {
            let per_day = tier.factor * slo.error_budget() / 30.0;
            format!("({} * scalar(days_in_month()))", num(per_day))
        }
        w => num(slo.threshold_for(tier, w.nominal())),
    }
}

fn base_labels(slo: &Slo) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("slo".to_string(), slo.name.clone());
    l.insert("service".to_string(), slo.service.clone());
    l
}

pub fn selector(metric: &str, slo: &Slo) -> String {
    format!("{metric}{{slo=\"{}\"}}", slo.name)
}

/// The condition of one tier: both windows above threshold (and enough traffic).
pub fn tier_condition(slo: &Slo, tier: &Tier) -> String {
    let th = threshold_expr(slo, tier);
    let mut c = format!(
        "{} > {th} and {} > {th}",
        selector(&ratio_metric(tier.long), slo),
        selector(&ratio_metric(tier.short), slo)
    );
    if let Some(t) = total_events_expr(slo, tier.short)
        && slo.alerting.min_events > 0
    {
        c.push_str(&format!(" and on() {t} >= {}", slo.alerting.min_events));
    }
    c
}

/// Burn rates in words: four decimals are plenty (`0.9333`, not `0.933333333333`).
fn rate_words(x: f64) -> String {
    num((x * 1e4).round() / 1e4)
}

fn pct(x: f64) -> String {
    num((x * 100.0 * 1e6).round() / 1e6)
}

/// Plain-words description of one tier (also used by `explain`).
pub fn tier_words(slo: &Slo, tier: &Tier) -> String {
    let verb = match tier.severity {
        Severity::Page => "pages",
        Severity::Ticket => "opens a ticket",
    };
    let rate = match &slo.window {
        Window::Calendar {
            unit: CalendarUnit::Month,
            ..
        } => format!(
            "burn rate {}–{} depending on the month's length",
            rate_words(tier.burn_rate_for(Dur::days(28))),
            rate_words(tier.burn_rate_for(Dur::days(31)))
        ),
        w => format!("burn rate {}", rate_words(tier.burn_rate_for(w.nominal()))),
    };
    format!(
        "{verb} when {}% of the {} budget burns within {} ({rate}), confirmed over the last {}",
        pct(tier.budget_fraction()),
        slo.window.words(),
        tier.long.words(),
        tier.short.words()
    )
}

/// Where `runbook_url` annotations point unless the generator is told
/// otherwise: the repository of `Cargo.toml`'s `[workspace.package]`.
pub const DEFAULT_RUNBOOK_BASE: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main");

/// The SLO's rules with runbook links under [`DEFAULT_RUNBOOK_BASE`].
pub fn rules_for_slo(slo: &Slo) -> RuleGroup {
    rules_for_slo_linked(slo, DEFAULT_RUNBOOK_BASE)
}

/// The SLO's rules; every alert gets `runbook_url` = `<base>/docs/runbook.md#<alert>`.
pub fn rules_for_slo_linked(slo: &Slo, runbook_base: &str) -> RuleGroup {
    let mut group = rules_unlinked(slo);
    for r in &mut group.rules {
        if let Some(name) = &r.alert {
            r.annotations.insert(
                "runbook_url".into(),
                crate::ops::runbook_url(runbook_base, name),
            );
        }
    }
    group
}

fn rules_unlinked(slo: &Slo) -> RuleGroup {
    let mut rules = Vec::new();
    let labels = base_labels(slo);
    if let Some(expr) = slice_expr(slo) {
        rules.push(Rule {
            record: Some(SLICE_BAD.to_string()),
            alert: None,
            expr,
            for_: None,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
        });
    }
    for w in slo.alert_windows() {
        rules.push(Rule {
            record: Some(ratio_metric(w)),
            alert: None,
            expr: error_ratio_expr(slo, w),
            for_: None,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
        });
    }
    rules.push(Rule {
        record: Some(PERIOD_ERROR_RATIO.to_string()),
        alert: None,
        expr: error_ratio_expr(slo, slo.window.nominal()),
        for_: None,
        labels: labels.clone(),
        annotations: BTreeMap::new(),
    });
    for sev in [Severity::Page, Severity::Ticket] {
        let tiers: Vec<&Tier> = slo
            .alerting
            .tiers
            .iter()
            .filter(|t| t.severity == sev)
            .collect();
        if tiers.is_empty() {
            continue;
        }
        let mut l = labels.clone();
        l.extend(slo.labels.clone());
        l.extend(slo.alerting.meta(sev).labels.clone());
        l.insert("severity".into(), sev.as_str().into());
        // One rule per distinct `for` (Prometheus' `for` is per rule): one
        // rule per severity unless tiers set their own `for` (Pyrra's).
        let mut holds: Vec<Option<Dur>> = Vec::new();
        for t in &tiers {
            let h = slo.alerting.hold(t);
            if !holds.contains(&h) {
                holds.push(h);
            }
        }
        for hold in holds {
            let expr = tiers
                .iter()
                .filter(|t| slo.alerting.hold(t) == hold)
                .map(|t| {
                    format!(
                        "label_replace({}, \"tier\", \"{}\", \"\", \"\")",
                        tier_condition(slo, t),
                        t.number
                    )
                })
                .collect::<Vec<_>>()
                .join(" or ");
            rules.push(Rule {
                record: None,
                alert: Some(burn_alert_name(slo, sev)),
                expr,
                for_: hold.map(|d| d.prom()),
                labels: l.clone(),
                annotations: burn_annotations(slo, &tiers, sev),
            });
        }
    }
    let mut l = labels.clone();
    l.extend(slo.labels.clone());
    l.insert(
        "severity".into(),
        slo.alerting.no_data_severity.as_str().into(),
    );
    l.insert("tier".into(), "no-data".into());
    let presence = match &slo.sli {
        Sli::Events { total, .. } => total.presence(),
        Sli::ConsumerLag { group, topic, .. } => Sli::lag_selector(group, topic),
        Sli::QueryThreshold { promql, .. } => promql.clone(),
    };
    let mut ann = BTreeMap::new();
    ann.insert(
        "summary".to_string(),
        format!(
            "{}: no SLI data for {}",
            slo.name,
            slo.alerting.no_data_for.words()
        ),
    );
    ann.insert(
        "description".to_string(),
        format!(
            "The series behind SLO {} of {} are missing, so its error budget cannot be evaluated (the recording rules report 0 meanwhile). Check that {} is up and scraped.",
            slo.name, slo.service, slo.service
        ),
    );
    rules.push(Rule {
        record: None,
        alert: Some(no_data_alert_name(slo)),
        expr: format!("absent({presence})"),
        for_: Some(slo.alerting.no_data_for.prom()),
        labels: l,
        annotations: ann,
    });
    let interval = match &slo.budgeting {
        Budgeting::Timeslices { slice, .. } => Some(slice.prom()),
        Budgeting::Occurrences => None,
    };
    RuleGroup {
        name: format!("slo-{}", slo.name),
        interval,
        rules,
    }
}

pub fn burn_annotations(slo: &Slo, tiers: &[&Tier], sev: Severity) -> BTreeMap<String, String> {
    let mut ann = BTreeMap::new();
    let what = match sev {
        Severity::Page => "fast",
        Severity::Ticket => "steadily",
    };
    ann.insert(
        "summary".to_string(),
        format!(
            "{}: error budget burning {what} ({})",
            slo.name,
            sev.as_str()
        ),
    );
    let tiers_txt = tiers
        .iter()
        .map(|t| format!("tier {}: {}", t.number, tier_words(slo, t)))
        .collect::<Vec<_>>()
        .join("; ");
    ann.insert(
        "description".to_string(),
        format!(
            "SLO {} of {} (objective {}%, {}): {}.",
            slo.name,
            slo.service,
            pct(slo.objective),
            slo.window.words(),
            tiers_txt
        ),
    );
    // the spec's own annotations (e.g. Sloth's summary) win
    ann.extend(slo.alerting.meta(sev).annotations.clone());
    ann
}

/// Rules grouped by service: one file per service, one group per SLO.
pub fn rule_files(slos: &[Slo], runbook_base: &str) -> BTreeMap<String, RuleFile> {
    let mut out: BTreeMap<String, RuleFile> = BTreeMap::new();
    for s in slos {
        out.entry(s.service.clone())
            .or_insert_with(|| RuleFile { groups: Vec::new() })
            .groups
            .push(rules_for_slo_linked(s, runbook_base));
    }
    out
}

pub const GENERATED_HEADER: &str =
    "# Generated by the `slo` crate from slo/*.yaml (`todoctl slo generate`). Do not edit.\n";

pub fn to_yaml<T: Serialize>(v: &T) -> Result<String, crate::Error> {
    serde_norway::to_string(v)
        .map(|s| format!("{GENERATED_HEADER}{s}"))
        .map_err(|e| crate::Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_without_noise() {
        assert_eq!(num(14.4 * 0.001), "0.0144");
        assert_eq!(num(6.0 * 0.001), "0.006");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.00048), "0.00048");
        assert_eq!(num(13.44), "13.44");
    }

    #[test]
    fn camel_names() {
        assert_eq!(camel("command-api-availability"), "CommandApiAvailability");
    }
}
