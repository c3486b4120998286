//! Generated `promtool test rules` files, one per SLO, with scenarios that
//! prove each tier fires and resolves when the burn-rate math says so.
//!
//! Expected alerts come from [`Simulator`], an independent model of the
//! generated rules on synthetic data: series are sampled every minute from
//! value 0, rules evaluated on the minute, so Prometheus' `increase()` is an
//! exact difference (no extrapolation: the window's first sample sits on its
//! left edge, or the series starts at 0) and a subquery `[w:1m]` covers the
//! steps `t-w ..= t` (Prometheus 2.x ranges include the left edge).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compile::{self, num};
use crate::duration::Dur;
use crate::model::*;

/// Synthetic traffic per minute for event SLIs.
pub const RATE_PER_MIN: f64 = 1000.0;

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Per minute (index m covers minute m-1 → m): (events, bad events).
    Events(Vec<(f64, f64)>),
    /// Lag gauge sample at each minute (index m = minute m).
    Lag(Vec<f64>),
    /// One gauge sample at each minute (index m = minute m), `true` when
    /// bad: event SLIs that count gauge samples ([`gauge_sli`]).
    Samples(Vec<bool>),
    /// No SLI data at all.
    Nothing(usize),
}

impl Pattern {
    pub fn minutes(&self) -> usize {
        match self {
            Pattern::Events(v) => v.len(),
            Pattern::Lag(v) => v.len().saturating_sub(1),
            Pattern::Samples(v) => v.len().saturating_sub(1),
            Pattern::Nothing(n) => *n,
        }
    }
}

/// The independent model of the generated rules.
pub struct Simulator<'a> {
    pub slo: &'a Slo,
    bad: Vec<f64>,
    total: Vec<f64>,
    lag: Vec<f64>,
    samples: Vec<bool>,
    pub guard: bool,
}

/// Which tiers fire at a minute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Firing {
    pub page: Vec<u32>,
    pub ticket: Vec<u32>,
    /// Smallest relative distance of any compared value to its threshold.
    pub margin: f64,
}

impl<'a> Simulator<'a> {
    pub fn new(slo: &'a Slo, p: &Pattern) -> Self {
        let (mut bad, mut total, mut lag) = (vec![0.0], vec![0.0], Vec::new());
        let mut samples = Vec::new();
        match p {
            Pattern::Events(v) => {
                for (t, b) in v {
                    bad.push(bad[bad.len() - 1] + b);
                    total.push(total[total.len() - 1] + t);
                }
            }
            Pattern::Lag(v) => lag = v.clone(),
            Pattern::Samples(v) => samples = v.clone(),
            Pattern::Nothing(_) => {}
        }
        Simulator {
            slo,
            bad,
            total,
            lag,
            samples,
            guard: true,
        }
    }

    fn inc(series: &[f64], t: usize, w: usize) -> Option<f64> {
        if t == 0 || t >= series.len() {
            return None;
        }
        Some(series[t] - series[t.saturating_sub(w)])
    }

    /// Bad and all gauge samples in the window `t-w ..= t` (Prometheus 2.x
    /// ranges and `[w:]` subqueries on the minute include the left edge).
    fn sample_counts(&self, t: usize, w: usize) -> Option<(usize, usize)> {
        if t >= self.samples.len() {
            return None;
        }
        let window = &self.samples[t.saturating_sub(w)..=t];
        Some((window.iter().filter(|b| **b).count(), window.len()))
    }

    /// Error ratio recorded for window `w` minutes at minute `t`.
    pub fn error_ratio(&self, t: usize, w: usize) -> f64 {
        if !self.samples.is_empty() {
            return self
                .sample_counts(t, w)
                .map(|(b, n)| b as f64 / n as f64)
                .unwrap_or(0.0);
        }
        match &self.slo.sli {
            Sli::Events {
                numerator_is_good, ..
            } => {
                let (Some(b), Some(tot)) =
                    (Self::inc(&self.bad, t, w), Self::inc(&self.total, t, w))
                else {
                    return 0.0;
                };
                if tot <= 0.0 {
                    return 0.0;
                }
                if *numerator_is_good {
                    let good = tot - b;
                    (1.0 - good / tot).max(0.0)
                } else {
                    (b / tot).min(1.0)
                }
            }
            Sli::ConsumerLag {
                max_lag_seconds, ..
            } => {
                if self.lag.is_empty() || t >= self.lag.len() {
                    return 0.0;
                }
                let from = t.saturating_sub(w);
                let n = (t - from + 1) as f64;
                let bad = (from..=t)
                    .filter(|s| self.lag[*s] > *max_lag_seconds)
                    .count() as f64;
                bad / n
            }
            Sli::QueryThreshold { .. } => 0.0,
        }
    }

    fn threshold(&self, tier: &Tier) -> f64 {
        // Parse the rendered PromQL constant so the model compares exactly what Prometheus compares.
        match &self.slo.window {
            Window::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => {
                let per_day: f64 = num(tier.factor * self.slo.error_budget() / 30.0)
                    .parse()
                    .unwrap_or(f64::NAN);
                per_day * 31.0 // promtool evaluates in January 1970
            }
            w => num(self.slo.threshold_for(tier, w.nominal()))
                .parse()
                .unwrap_or(f64::NAN),
        }
    }

    /// Tiers firing at minute `t`: a tier's condition held at every
    /// evaluation of the last `for` minutes of its alert (Prometheus `for`).
    pub fn firing(&self, t: usize) -> Firing {
        let now = self.condition(t);
        let mut f = Firing {
            margin: now.margin,
            ..Default::default()
        };
        for tier in &self.slo.alerting.tiers {
            let list = |x: &Firing| match tier.severity {
                Severity::Page => x.page.contains(&tier.number),
                Severity::Ticket => x.ticket.contains(&tier.number),
            };
            if !list(&now) {
                continue;
            }
            let hold = self
                .slo
                .alerting
                .hold(tier)
                .map(|d| (d.as_secs() / 60) as usize)
                .unwrap_or(0);
            let mut on = t >= hold;
            for past in t.saturating_sub(hold)..t {
                let c = self.condition(past);
                f.margin = f.margin.min(c.margin);
                on &= list(&c);
            }
            if on {
                match tier.severity {
                    Severity::Page => f.page.push(tier.number),
                    Severity::Ticket => f.ticket.push(tier.number),
                }
            }
        }
        f
    }

    /// Tiers whose condition (both windows over the threshold, guard met) holds at minute `t`.
    pub fn condition(&self, t: usize) -> Firing {
        let mut f = Firing {
            margin: f64::INFINITY,
            ..Default::default()
        };
        for tier in &self.slo.alerting.tiers {
            let th = self.threshold(tier);
            let mins = |d: Dur| (d.as_secs() / 60) as usize;
            let long = self.error_ratio(t, mins(tier.long));
            let short = self.error_ratio(t, mins(tier.short));
            for v in [long, short] {
                f.margin = f.margin.min((v - th).abs() / th);
            }
            let mut on = long > th && short > th;
            if self.guard && self.slo.has_traffic() && self.slo.alerting.min_events > 0 {
                let n = if self.samples.is_empty() {
                    Self::inc(&self.total, t, mins(tier.short)).unwrap_or(-1.0)
                } else {
                    self.sample_counts(t, mins(tier.short))
                        .map(|(_, n)| n as f64)
                        .unwrap_or(-1.0)
                };
                let me = self.slo.alerting.min_events as f64;
                if n >= 0.0 {
                    f.margin = f.margin.min(((n - me).abs() + 0.5) / me.max(1.0));
                }
                on &= n >= me;
            }
            if on {
                match tier.severity {
                    Severity::Page => f.page.push(tier.number),
                    Severity::Ticket => f.ticket.push(tier.number),
                }
            }
        }
        f
    }

    /// First minute in `from..to` at which `tier` fires.
    pub fn first_firing(&self, tier: u32, from: usize, to: usize) -> Option<usize> {
        (from..to).find(|t| {
            let f = self.firing(*t);
            f.page.contains(&tier) || f.ticket.contains(&tier)
        })
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub what: String,
    pub pattern: Pattern,
    pub checkpoints: Vec<usize>,
    /// Minute at which the no-data alert must fire (no-data scenario only).
    pub no_data_at: Option<usize>,
}

fn minutes(d: Dur) -> usize {
    (d.as_secs() / 60) as usize
}

/// Minute offset at which the fastest page tier must fire after a total
/// outage preceded by a clean hour: error ratio over the long window L grows
/// as t/L, so it crosses the threshold θ at t = θ·L.
pub fn predicted_page_minutes(slo: &Slo) -> Option<(u32, f64)> {
    let t = slo
        .alerting
        .tiers
        .iter()
        .find(|t| t.severity == Severity::Page)?;
    let sim = Simulator::new(slo, &Pattern::Nothing(0));
    let th = sim.threshold(t);
    let mut longest_window = minutes(t.long) as f64;
    if matches!(slo.sli, Sli::ConsumerLag { .. }) || gauge_sli(slo).is_some() {
        longest_window += 1.0; // t-w ..= t slices
    }
    Some((t.number, th * longest_window))
}

pub fn scenarios(slo: &Slo) -> Vec<Scenario> {
    let budget = slo.error_budget();
    let max_short = slo
        .alerting
        .tiers
        .iter()
        .map(|t| minutes(t.short))
        .max()
        .unwrap_or(60);
    let history = slo
        .alerting
        .tiers
        .iter()
        .filter(|t| t.severity == Severity::Page)
        .map(|t| minutes(t.long))
        .max()
        .unwrap_or(60);
    let is_lag = !matches!(slo.sli, Sli::Events { .. });
    // counted gauge samples: one sample a minute, like the lag gauge
    let sampled = is_lag || gauge_sli(slo).is_some();
    let bound = match &slo.sli {
        Sli::ConsumerLag {
            max_lag_seconds, ..
        } => *max_lag_seconds,
        _ => 0.0,
    };
    // Builds a pattern from "bad share" per minute.
    // `phase` starts the Bresenham accumulator of sampled SLIs
    let build_at = |len: usize, phase: f64, bad_share: &dyn Fn(usize) -> f64| -> Pattern {
        if sampled {
            // minute m is bad with the Bresenham spread of the share
            let mut bad = vec![false];
            let mut acc = phase;
            for m in 0..len {
                let s = bad_share(m);
                let before = acc;
                acc += s;
                bad.push(s >= 1.0 || (before >= 0.0 && acc.floor() > before.floor()));
            }
            if is_lag {
                Pattern::Lag(
                    bad.iter()
                        .map(|b| if *b { bound * 10.0 } else { bound * 0.1 })
                        .collect(),
                )
            } else {
                Pattern::Samples(bad)
            }
        } else {
            Pattern::Events(
                (0..len)
                    .map(|m| (RATE_PER_MIN, RATE_PER_MIN * bad_share(m)))
                    .collect(),
            )
        }
    };
    let build = |len: usize, bad_share: &dyn Fn(usize) -> f64| build_at(len, 0.0, bad_share);
    // A steady share of `mult`× the budget whose window ratios tie no
    // threshold at the checkpoints: with whole sample counts a round
    // threshold (0.005 = 1/200) can equal bad/all exactly while a window
    // fills, so gauge SLIs try nearby shares and phases. The first candidate
    // is the documented one (and the only one for counters).
    let steady = |len: usize, mults: &[f64], checkpoints: &[usize]| -> (f64, Pattern) {
        let phases: &[f64] = if sampled && !is_lag {
            // a negative phase delays the first bad sample by -phase/share minutes
            &[0.0, 0.5, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0]
        } else {
            &[0.0]
        };
        for m in mults {
            for ph in phases {
                let p = build_at(len, *ph, &|_| m * budget);
                let sim = Simulator::new(slo, &p);
                if checkpoints.iter().all(|c| sim.firing(*c).margin >= 1e-6) {
                    return (*m, p);
                }
            }
        }
        (mults[0], build(len, &|_| mults[0] * budget))
    };
    let mults = |first: f64, others: &[f64]| -> Vec<f64> {
        let mut v = vec![first];
        if sampled && !is_lag {
            v.extend_from_slice(others);
        }
        v
    };
    let mut out = Vec::new();
    let healthy_len = 720usize.max(max_short * 2);
    let checkpoints = vec![5, 60, 360, healthy_len];
    let (m, pattern) = steady(
        healthy_len,
        &mults(0.5, &[0.45, 0.55, 0.4, 0.6, 0.35, 0.65]),
        &checkpoints,
    );
    out.push(Scenario {
        name: "healthy",
        what: if m == 0.5 {
            "errors at half the budget rate for a day: nothing fires".into()
        } else {
            format!(
                "errors at {}× the budget rate for a day: nothing fires",
                num(m)
            )
        },
        pattern,
        checkpoints,
        no_data_at: None,
    });
    let (_, pred) = predicted_page_minutes(slo).unwrap_or((0, 1.0));
    let fire = pred.floor() as usize + 1;
    out.push(Scenario {
        name: "total-outage",
        what: format!(
            "every event fails from minute {history} on, after a clean {}: the fastest page tier fires {} min after the outage starts (threshold × long window = {} min)",
            Dur::mins(history as u64).words(),
            fire,
            num(pred)
        ),
        pattern: build(history + 120, &|m| if m >= history { 1.0 } else { 0.0 }),
        checkpoints: vec![history + fire - 1, history + fire, history + 30, history + 120],
        no_data_at: None,
    });
    let slow_len = 720usize.max(max_short * 2);
    let checkpoints = vec![60, 360, 720, slow_len];
    let (m, pattern) = steady(
        slow_len,
        &mults(1.5, &[1.45, 1.55, 1.4, 1.6, 1.35, 1.65, 1.3, 1.7]),
        &checkpoints,
    );
    out.push(Scenario {
        name: "slow-burn",
        what: format!(
            "errors at {}× the budget rate for a day: only the ticket fires",
            num(m)
        ),
        pattern,
        checkpoints,
        no_data_at: None,
    });
    let rec_len = history + 60 + max_short + 30;
    out.push(Scenario {
        name: "recovery",
        what: format!(
            "one-hour outage, then healthy: every alert resolves once the longest short window ({}) has passed",
            Dur::mins(max_short as u64).words()
        ),
        pattern: build(rec_len, &|m| if m >= history && m < history + 60 { 1.0 } else { 0.0 }),
        checkpoints: vec![history + 60, history + 70, history + 120, history + 60 + max_short + 1, rec_len],
        no_data_at: None,
    });
    if !sampled {
        let len = 360;
        out.push(Scenario {
            name: "low-traffic",
            what: format!(
                "one request every 10 minutes, all failing: the low-traffic guard (min {} events in the short window) suppresses the page",
                slo.alerting.min_events
            ),
            pattern: Pattern::Events((0..len).map(|m| if (m + 1) % 10 == 0 { (1.0, 1.0) } else { (0.0, 0.0) }).collect()),
            checkpoints: vec![10, 60, 120, 360],
            no_data_at: None,
        });
    }
    let nd = minutes(slo.alerting.no_data_for);
    out.push(Scenario {
        name: "no-data",
        what: format!(
            "no SLI series at all: no burn alert, the no-data alert fires after {}",
            slo.alerting.no_data_for.words()
        ),
        pattern: Pattern::Nothing(nd + 5),
        checkpoints: vec![nd - 1, nd + 1],
        no_data_at: Some(nd),
    });
    out
}

// ---- promtool test file model ----

#[derive(Serialize)]
pub(crate) struct TestFile {
    pub(crate) rule_files: Vec<String>,
    pub(crate) evaluation_interval: String,
    pub(crate) tests: Vec<TestGroup>,
}

#[derive(Serialize)]
pub(crate) struct TestGroup {
    pub(crate) name: String,
    pub(crate) interval: String,
    pub(crate) input_series: Vec<InputSeries>,
    pub(crate) alert_rule_test: Vec<AlertTest>,
}

#[derive(Serialize)]
pub(crate) struct InputSeries {
    pub(crate) series: String,
    pub(crate) values: String,
}

#[derive(Serialize)]
pub(crate) struct AlertTest {
    pub(crate) eval_time: String,
    pub(crate) alertname: String,
    pub(crate) exp_alerts: Vec<ExpAlert>,
}

#[derive(Serialize)]
pub(crate) struct ExpAlert {
    pub(crate) exp_labels: BTreeMap<String, String>,
    pub(crate) exp_annotations: BTreeMap<String, String>,
}

/// Cumulative series in promtool's expanding notation, from per-minute increments.
pub fn counter_values(incs: &[f64]) -> String {
    let mut parts = vec!["0".to_string()];
    let mut v = 0.0;
    let mut i = 0;
    while i < incs.len() {
        let b = incs[i];
        let mut j = i;
        while j < incs.len() && incs[j] == b {
            j += 1;
        }
        let n = j - i;
        let start = v + b;
        if n == 1 {
            parts.push(num(start));
        } else {
            parts.push(format!("{}+{}x{}", num(start), num(b), n - 1));
        }
        v += b * n as f64;
        i = j;
    }
    parts.join(" ")
}

fn gauge_values(vals: &[f64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < vals.len() {
        let mut j = i;
        while j < vals.len() && vals[j] == vals[i] {
            j += 1;
        }
        let n = j - i;
        parts.push(if n == 1 {
            num(vals[i])
        } else {
            format!("{}+0x{}", num(vals[i]), n - 1)
        });
        i = j;
    }
    parts.join(" ")
}

/// Equality labels a synthetic series needs to match `m`; None if a regex
/// matcher makes that ambiguous.
fn eq_labels(m: &[Matcher]) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for x in m {
        match x.op {
            MatchOp::Eq => {
                out.insert(x.name.clone(), x.value.clone());
            }
            MatchOp::Ne | MatchOp::Nre => {}
            MatchOp::Re if x.name == "le" && x.value.ends_with("(\\.0)?") => {
                out.insert("le".into(), x.value.trim_end_matches("(\\.0)?").to_string());
            }
            MatchOp::Re => {
                out.insert(x.name.clone(), regex_example(&x.value)?);
            }
        }
    }
    Some(out)
}

/// Whether `value` matches the PromQL regex `re` (anchored at both ends).
pub fn regex_matches(re: &str, value: &str) -> Option<bool> {
    regex::Regex::new(&format!("^(?:{re})$"))
        .ok()
        .map(|r| r.is_match(value))
}

/// A label value matching the PromQL regex `re`, found among a few simple
/// candidates (the first alternative with `.`/classes/repeats filled in),
/// each checked with the regex engine; None when none fits.
pub fn regex_example(re: &str) -> Option<String> {
    let first_alt = |s: &str| -> String {
        let mut depth = 0i32;
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                '|' if depth <= 0 => break,
                _ => {}
            }
            out.push(c);
        }
        out
    };
    let simplify = |s: &str| -> String {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '(' | ')' | '^' | '$' | '*' | '?' | '+' => {}
                '|' => {
                    // inner alternation: keep the first branch
                    let mut depth = 0;
                    while let Some(&n) = chars.peek() {
                        if n == '(' {
                            depth += 1;
                        }
                        if n == ')' {
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        }
                        chars.next();
                    }
                }
                '.' => out.push('0'),
                '\\' => match chars.next() {
                    Some('d') => out.push('0'),
                    Some('w') => out.push('a'),
                    Some(o) => out.push(o),
                    None => {}
                },
                '[' => {
                    let mut first = None;
                    for n in chars.by_ref() {
                        if n == ']' {
                            break;
                        }
                        if first.is_none() && n != '^' {
                            first = Some(n);
                        }
                    }
                    out.extend(first);
                }
                '{' => {
                    for n in chars.by_ref() {
                        if n == '}' {
                            break;
                        }
                    }
                }
                c => out.push(c),
            }
        }
        out
    };
    let candidates = [
        simplify(&first_alt(re)),
        simplify(re),
        re.to_string(),
        String::new(),
    ];
    candidates
        .into_iter()
        .find(|c| regex_matches(re, c) == Some(true))
}

fn render_series(metric: &str, l: &BTreeMap<String, String>) -> String {
    let ms: Vec<Matcher> = l.iter().map(|(k, v)| Matcher::eq(k, v)).collect();
    Query::render_selector(metric, &ms)
}

/// An event SLI that counts the samples of one gauge (Pyrra's `bool_gauge`,
/// Sloth's `count(g < c)` subqueries; see [`crate::promql::sampled_gauge`]):
/// the gauge's metric and matchers, a bad and a good sample value.
pub fn gauge_sli(slo: &Slo) -> Option<(String, Vec<Matcher>, f64, f64)> {
    match &slo.sli {
        Sli::Events {
            numerator: Query::Promql(n),
            numerator_is_good,
            total: Query::Promql(t),
            ..
        } => crate::promql::sampled_gauge(n, *numerator_is_good, t),
        _ => None,
    }
}

/// Steps a `[w:]` subquery may take in `promtool test rules`: its test
/// engine loads far fewer samples per query than Prometheus. Observed with
/// promtool 2.42: a 3-day subquery at 1m (4,320 steps) evaluates, the 30-day
/// period (43,200) fails; 10,000 is assumed as the bound.
pub const PROMTOOL_SUBQUERY_STEPS: u64 = 10_000;

/// Steps of the longest `[$window:]` subquery (the period's) when more than
/// [`PROMTOOL_SUBQUERY_STEPS`].
pub fn subquery_steps_over_promtool_limit(slo: &Slo) -> Option<u64> {
    let Sli::Events {
        numerator, total, ..
    } = &slo.sli
    else {
        return None;
    };
    let sub = format!("[{}:", crate::promql::WINDOW);
    let uses = [numerator, total]
        .iter()
        .any(|q| matches!(q, Query::Promql(p) if p.replace(' ', "").contains(&sub)));
    let steps = slo.window.nominal().as_secs() / 60;
    (uses && steps > PROMTOOL_SUBQUERY_STEPS).then_some(steps)
}

/// Input series for a pattern, or the reason the SLI cannot be synthesised.
fn input_series(slo: &Slo, p: &Pattern) -> Result<Vec<InputSeries>, String> {
    match (p, &slo.sli) {
        (Pattern::Nothing(_), _) => Ok(vec![InputSeries {
            series: "up{job=\"synthetic\"}".into(),
            values: "1+0x10".into(),
        }]),
        (Pattern::Lag(v), Sli::ConsumerLag { group, topic, .. }) => {
            let mut l = BTreeMap::new();
            l.insert("group".to_string(), group.clone());
            l.insert("topic".to_string(), topic.clone());
            l.insert("partition".to_string(), "0".to_string());
            Ok(vec![InputSeries {
                series: render_series(contracts::metrics::CONSUMER_GROUP_LAG_SECONDS.name, &l),
                values: gauge_values(v),
            }])
        }
        (
            Pattern::Events(v),
            Sli::Events {
                numerator,
                numerator_is_good,
                total,
                ..
            },
        ) => {
            // raw PromQL that counts one counter is synthesised like a selector
            let sel = |q: &Query| -> Result<(String, Vec<Matcher>), String> {
                match q {
                    Query::Selector { metric, matchers } => Ok((metric.clone(), matchers.clone())),
                    Query::Promql(p) => crate::promql::counted_selector(p).ok_or_else(|| {
                        "raw PromQL that is not `increase` of one counter cannot be synthesised"
                            .to_string()
                    }),
                }
            };
            let ((nm, nmat), (tm, tmat)) = (sel(numerator)?, sel(total)?);
            let (nm, tm) = (&nm, &tm);
            let nl = eq_labels(&nmat).ok_or("a regex matcher has no simple matching value")?;
            let tl = eq_labels(&tmat).ok_or("a regex matcher has no simple matching value")?;
            let bad: Vec<f64> = v.iter().map(|(_, b)| *b).collect();
            let tot: Vec<f64> = v.iter().map(|(t, _)| *t).collect();
            let num_incs: Vec<f64> = if *numerator_is_good {
                v.iter().map(|(t, b)| t - b).collect()
            } else {
                bad.clone()
            };
            if nm != tm {
                return Ok(vec![
                    InputSeries {
                        series: render_series(nm, &nl),
                        values: counter_values(&num_incs),
                    },
                    InputSeries {
                        series: render_series(tm, &tl),
                        values: counter_values(&tot),
                    },
                ]);
            }
            // Same counter: numerator series plus the rest, told apart by a label.
            let mut union = tl.clone();
            union.extend(nl.clone());
            let mut other = tl.clone();
            let distinguishing: Vec<&String> = nl.keys().filter(|k| !tl.contains_key(*k)).collect();
            if distinguishing.is_empty() {
                return Err("numerator and total cannot be told apart by an equality label".into());
            }
            for k in distinguishing {
                // the other series must fall outside the numerator's matcher
                let excluded = nmat.iter().filter(|m| &m.name == k).all(|m| match m.op {
                    MatchOp::Re => regex_matches(&m.value, "synthetic-other") == Some(false),
                    MatchOp::Eq => m.value != "synthetic-other",
                    _ => false,
                });
                if !excluded {
                    return Err(format!("no value of `{k}` outside the numerator's matcher"));
                }
                other.insert(k.clone(), "synthetic-other".into());
            }
            // and inside the total's matchers
            for m in &tmat {
                let v = other.get(&m.name).map(String::as_str).unwrap_or("");
                let inside = match m.op {
                    MatchOp::Eq => m.value == v,
                    MatchOp::Ne => m.value != v,
                    MatchOp::Re => regex_matches(&m.value, v) == Some(true),
                    MatchOp::Nre => regex_matches(&m.value, v) == Some(false),
                };
                if !inside {
                    return Err(format!(
                        "the synthetic series falls outside the total's matcher on `{}`",
                        m.name
                    ));
                }
            }
            let rest: Vec<f64> = tot.iter().zip(&num_incs).map(|(t, n)| t - n).collect();
            Ok(vec![
                InputSeries {
                    series: render_series(nm, &union),
                    values: counter_values(&num_incs),
                },
                InputSeries {
                    series: render_series(tm, &other),
                    values: counter_values(&rest),
                },
            ])
        }
        (Pattern::Samples(v), _) => {
            let (metric, matchers, bad, good) =
                gauge_sli(slo).ok_or("the SLI does not count gauge samples")?;
            let l = eq_labels(&matchers).ok_or("a regex matcher has no simple matching value")?;
            let vals: Vec<f64> = v.iter().map(|b| if *b { bad } else { good }).collect();
            Ok(vec![InputSeries {
                series: render_series(&metric, &l),
                values: gauge_values(&vals),
            }])
        }
        _ => Err("pattern does not fit the SLI".into()),
    }
}

fn exp_burn(slo: &Slo, sev: Severity, tiers: &[u32], runbook_base: &str) -> Vec<ExpAlert> {
    let all: Vec<&Tier> = slo
        .alerting
        .tiers
        .iter()
        .filter(|t| t.severity == sev)
        .collect();
    let mut ann = compile::burn_annotations(slo, &all, sev);
    ann.insert(
        "runbook_url".into(),
        crate::ops::runbook_url(runbook_base, &compile::burn_alert_name(slo, sev)),
    );
    tiers
        .iter()
        .map(|n| {
            let mut l = BTreeMap::new();
            l.insert("slo".to_string(), slo.name.clone());
            l.insert("service".to_string(), slo.service.clone());
            l.extend(slo.labels.clone());
            l.extend(slo.alerting.meta(sev).labels.clone());
            l.insert("severity".into(), sev.as_str().into());
            l.insert("tier".into(), n.to_string());
            ExpAlert {
                exp_labels: l,
                exp_annotations: ann.clone(),
            }
        })
        .collect()
}

fn exp_no_data(slo: &Slo, runbook_base: &str) -> ExpAlert {
    let group = compile::rules_for_slo_linked(slo, runbook_base);
    let rule = group
        .rules
        .iter()
        .find(|r| r.alert.as_deref() == Some(compile::no_data_alert_name(slo).as_str()));
    let mut l = rule.map(|r| r.labels.clone()).unwrap_or_default();
    // absent() keeps the equality matchers of its selector as labels.
    let sel_labels = match &slo.sli {
        Sli::Events {
            total: Query::Selector { matchers, .. },
            ..
        } => matchers
            .iter()
            .filter(|m| m.op == MatchOp::Eq)
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect(),
        Sli::ConsumerLag { group, topic, .. } => BTreeMap::from([
            ("group".to_string(), group.clone()),
            ("topic".to_string(), topic.clone()),
        ]),
        _ => BTreeMap::new(),
    };
    for (k, v) in sel_labels {
        l.entry(k).or_insert(v);
    }
    ExpAlert {
        exp_labels: l,
        exp_annotations: rule.map(|r| r.annotations.clone()).unwrap_or_default(),
    }
}

/// Result of planning one SLO's tests: the file or why it is not possible.
pub fn test_file(slo: &Slo, runbook_base: &str) -> Result<String, String> {
    if let Some(steps) = subquery_steps_over_promtool_limit(slo) {
        return Err(format!(
            "its `[$window:]` subquery over the {} period evaluates {steps} one-minute steps, more than `promtool test rules` loads per query (`query processing would load too many samples into memory`); Prometheus' default limit (50,000,000) is not hit",
            slo.window.nominal().words()
        ));
    }
    test_file_with(slo, runbook_base, scenarios(slo))
}

/// A promtool test file for given scenarios (e.g. an import's source-tool
/// prediction), with the alerts the simulator expects at each checkpoint.
pub fn test_file_with(
    slo: &Slo,
    runbook_base: &str,
    scenarios: Vec<Scenario>,
) -> Result<String, String> {
    let mut groups = Vec::new();
    for sc in scenarios {
        let series = input_series(slo, &sc.pattern)?;
        let sim = Simulator::new(slo, &sc.pattern);
        let mut checks = Vec::new();
        for &cp in &sc.checkpoints {
            let f = sim.firing(cp);
            if f.margin < 1e-6 {
                return Err(format!(
                    "scenario {} minute {cp} sits on a threshold (margin {})",
                    sc.name, f.margin
                ));
            }
            let page = if matches!(sc.pattern, Pattern::Nothing(_)) {
                vec![]
            } else {
                f.page.clone()
            };
            let ticket = if matches!(sc.pattern, Pattern::Nothing(_)) {
                vec![]
            } else {
                f.ticket.clone()
            };
            let page_name = compile::burn_alert_name(slo, Severity::Page);
            let ticket_name = compile::burn_alert_name(slo, Severity::Ticket);
            let page_exp = exp_burn(slo, Severity::Page, &page, runbook_base);
            let ticket_exp = exp_burn(slo, Severity::Ticket, &ticket, runbook_base);
            if page_name == ticket_name {
                // One name for both (as Sloth does): promtool compares all the
                // alerts of that name, told apart by `severity`.
                checks.push(AlertTest {
                    eval_time: format!("{cp}m"),
                    alertname: page_name,
                    exp_alerts: page_exp.into_iter().chain(ticket_exp).collect(),
                });
            } else {
                checks.push(AlertTest {
                    eval_time: format!("{cp}m"),
                    alertname: page_name,
                    exp_alerts: page_exp,
                });
                checks.push(AlertTest {
                    eval_time: format!("{cp}m"),
                    alertname: ticket_name,
                    exp_alerts: ticket_exp,
                });
            }
            if let Some(at) = sc.no_data_at {
                checks.push(AlertTest {
                    eval_time: format!("{cp}m"),
                    alertname: compile::no_data_alert_name(slo),
                    exp_alerts: if cp >= at {
                        vec![exp_no_data(slo, runbook_base)]
                    } else {
                        vec![]
                    },
                });
            }
        }
        groups.push(TestGroup {
            name: format!("{}: {} — {}", slo.name, sc.name, sc.what),
            interval: "1m".into(),
            input_series: series,
            alert_rule_test: checks,
        });
    }
    let tf = TestFile {
        rule_files: vec![format!("../{}.rules.yaml", slo.service)],
        evaluation_interval: "1m".into(),
        tests: groups,
    };
    compile::to_yaml(&tf).map_err(|e| e.to_string())
}

/// Test files for every SLO whose SLI can be synthesised. SLOs that cannot
/// (raw PromQL, regex matchers) get a README line saying so instead of a
/// silent gap.
pub fn test_files(
    slos: &[Slo],
    runbook_base: &str,
) -> Result<BTreeMap<String, String>, crate::Error> {
    let mut out = BTreeMap::new();
    let mut skipped = Vec::new();
    for s in slos {
        match test_file(s, runbook_base) {
            Ok(t) => {
                out.insert(format!("{}.test.yaml", s.name), t);
            }
            Err(why) => skipped.push(format!(
                "- `{}`: no generated test ({why}); cover it with a hand-written test.",
                s.name
            )),
        }
    }
    let mut readme = String::from(
        "# Generated promtool unit tests\n\nRun `promtool test rules alerts/tests/*.test.yaml`. Each file holds, per SLO, the scenarios healthy, total-outage, slow-burn, recovery, low-traffic (event SLIs) and no-data, with the alerts the burn-rate math predicts at each checkpoint. `operations.test.yaml` proves each operational alert (`crates/slo/src/ops.rs`) fires and resolves on its schedule.\n",
    );
    if !skipped.is_empty() {
        readme.push_str("\nSLOs without generated tests:\n\n");
        readme.push_str(&skipped.join("\n"));
        readme.push('\n');
    }
    out.insert("README.md".into(), readme);
    Ok(out)
}
