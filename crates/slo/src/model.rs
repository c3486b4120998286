//! The validated SLO model every compiler reads. Built only by `validate`
//! (from YAML) or `openslo` (import), so its invariants hold everywhere.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::duration::Dur;
pub use crate::spec::{CalendarUnit, Comparison, Severity};

/// Burn-rate factors of the SRE Workbook are defined for this period.
pub const REFERENCE_PERIOD: Dur = Dur::days(30);

#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub name: String,
    pub service: String,
    pub description: String,
    pub objective: f64,
    pub window: Window,
    pub budgeting: Budgeting,
    pub sli: Sli,
    pub alerting: Alerting,
    /// Extra alert labels (from the spec file's `labels`).
    pub labels: BTreeMap<String, String>,
    /// File the SLO came from, for messages.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    Rolling(Dur),
    Calendar {
        unit: CalendarUnit,
        tz: chrono_tz::Tz,
    },
}

impl Window {
    /// Length used for rolling recording rules and for scaling: the rolling
    /// length, 7 days for a week, 30 days for a month (alerts on monthly SLOs
    /// use the real month length at evaluation time, see `compile`).
    pub fn nominal(&self) -> Dur {
        match self {
            Window::Rolling(d) => *d,
            Window::Calendar {
                unit: CalendarUnit::Week,
                ..
            } => Dur::days(7),
            Window::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => Dur::days(30),
        }
    }
    /// Shortest possible period length (for "window shorter than alert" checks).
    pub fn shortest(&self) -> Dur {
        match self {
            Window::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => Dur::days(28),
            w => w.nominal(),
        }
    }
    /// Longest possible period length (for "tier can never fire" checks).
    pub fn longest(&self) -> Dur {
        match self {
            Window::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => Dur::days(31),
            w => w.nominal(),
        }
    }
    pub fn words(&self) -> String {
        match self {
            Window::Rolling(d) if d.as_secs() % 86_400 == 0 => {
                format!("{}-day", d.as_secs() / 86_400)
            }
            Window::Rolling(d) => format!("{} rolling", d.words()),
            Window::Calendar {
                unit: CalendarUnit::Week,
                tz,
            } => format!("calendar-week ({tz})"),
            Window::Calendar {
                unit: CalendarUnit::Month,
                tz,
            } => format!("calendar-month ({tz})"),
        }
    }
    /// Start and end (UTC) of the budget period containing `now`. Calendar
    /// periods start at local midnight of the 1st (month) or Monday (week) in
    /// the spec's time zone, so DST and real month lengths are exact.
    pub fn period_bounds(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            Window::Rolling(d) => (now - chrono::Duration::seconds(d.as_secs() as i64), now),
            Window::Calendar { unit, tz } => {
                let local = now.with_timezone(tz).date_naive();
                let (start, end) = match unit {
                    CalendarUnit::Month => {
                        let start = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)
                            .unwrap_or(local);
                        let (y, m) = if local.month() == 12 {
                            (local.year() + 1, 1)
                        } else {
                            (local.year(), local.month() + 1)
                        };
                        (start, NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(local))
                    }
                    CalendarUnit::Week => {
                        let start = local
                            - chrono::Duration::days(local.weekday().num_days_from_monday() as i64);
                        (start, start + chrono::Duration::days(7))
                    }
                };
                (local_midnight(tz, start), local_midnight(tz, end))
            }
        }
    }
}

fn local_midnight(tz: &chrono_tz::Tz, d: NaiveDate) -> DateTime<Utc> {
    // Midnight can be skipped by a DST jump in a few zones; take the earliest
    // valid instant of that day.
    (0..24)
        .find_map(|h| {
            d.and_hms_opt(h, 0, 0)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Budgeting {
    Occurrences,
    /// Budget counted in slices; for event SLIs a slice is good when its own
    /// good ratio reaches `slice_objective`, for consumer lag when the lag stays under the bound.
    Timeslices {
        slice: Dur,
        slice_objective: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    pub fn eq(name: &str, value: &str) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Eq,
            value: value.into(),
        }
    }
    /// `value`, `!=value`, `=~regex`, `!~regex`.
    pub fn parse(name: &str, spec: &str) -> Self {
        let (op, value) = if let Some(v) = spec.strip_prefix("=~") {
            (MatchOp::Re, v)
        } else if let Some(v) = spec.strip_prefix("!~") {
            (MatchOp::Nre, v)
        } else if let Some(v) = spec.strip_prefix("!=") {
            (MatchOp::Ne, v)
        } else {
            (MatchOp::Eq, spec)
        };
        Matcher {
            name: name.into(),
            op,
            value: value.into(),
        }
    }
    pub fn render(&self) -> String {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        };
        format!(
            "{}{}\"{}\"",
            self.name,
            op,
            self.value.replace('\\', "\\\\").replace('"', "\\\"")
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Selector {
        metric: String,
        matchers: Vec<Matcher>,
    },
    /// Raw PromQL returning an event count over `$window`.
    Promql(String),
}

impl Query {
    pub fn selector(metric: &str, matchers: Vec<Matcher>) -> Self {
        Query::Selector {
            metric: metric.into(),
            matchers,
        }
    }
    pub fn render_selector(metric: &str, matchers: &[Matcher]) -> String {
        if matchers.is_empty() {
            metric.to_string()
        } else {
            let m: Vec<String> = matchers.iter().map(Matcher::render).collect();
            format!("{metric}{{{}}}", m.join(", "))
        }
    }
    /// Event count over `window` as one unlabelled sample (or nothing).
    pub fn increase(&self, window: &str) -> String {
        match self {
            Query::Selector { metric, matchers } => {
                format!(
                    "sum(increase({}[{window}]))",
                    Self::render_selector(metric, matchers)
                )
            }
            Query::Promql(p) => format!("({})", p.replace("$window", window)),
        }
    }
    /// Existence check used by the no-data alert.
    pub fn presence(&self) -> String {
        match self {
            Query::Selector { metric, matchers } => Self::render_selector(metric, matchers),
            Query::Promql(p) => p.replace("$window", "5m"),
        }
    }
}

/// What the SLI is, in user terms (for dashboards and `explain`).
#[derive(Debug, Clone, PartialEq)]
pub enum SliKind {
    Ratio,
    Availability,
    Latency { threshold_seconds: f64 },
    Freshness { threshold_seconds: f64 },
    ConsumerLag,
    QueryThreshold,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// `good` (when `numerator_is_good`) or `bad` events over `total` events.
    Events {
        kind: SliKind,
        numerator: Query,
        numerator_is_good: bool,
        total: Query,
    },
    ConsumerLag {
        group: String,
        topic: String,
        max_lag_seconds: f64,
    },
    /// A PromQL value per slice compared with a bound (timeslices only).
    QueryThreshold {
        promql: String,
        good_when: Comparison,
        value: f64,
    },
}

impl Sli {
    pub fn kind(&self) -> SliKind {
        match self {
            Sli::Events { kind, .. } => kind.clone(),
            Sli::ConsumerLag { .. } => SliKind::ConsumerLag,
            Sli::QueryThreshold { .. } => SliKind::QueryThreshold,
        }
    }
    pub fn kind_name(&self) -> &'static str {
        match self.kind() {
            SliKind::Ratio => "ratio",
            SliKind::Availability => "availability",
            SliKind::Latency { .. } => "latency",
            SliKind::Freshness { .. } => "freshness",
            SliKind::ConsumerLag => "consumer_lag",
            SliKind::QueryThreshold => "query_threshold",
        }
    }
    /// The selector of the lag gauge for consumer-lag SLIs.
    pub fn lag_selector(group: &str, topic: &str) -> String {
        use contracts::metrics::{CONSUMER_GROUP_LAG_SECONDS, labels};
        Query::render_selector(
            CONSUMER_GROUP_LAG_SECONDS.name,
            &[
                Matcher::eq(labels::GROUP, group),
                Matcher::eq(labels::TOPIC, topic),
            ],
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// 1 = most urgent. Used in the `tier` label and for inhibition.
    pub number: u32,
    pub severity: Severity,
    /// Factor as defined for a 30-day period (SRE Workbook convention).
    pub factor: f64,
    pub long: Dur,
    pub short: Dur,
    /// This tier's own `for` (overrides its alert's `for`).
    pub for_: Option<Dur>,
}

impl Tier {
    /// Share of the whole period's budget this tier lets burn within `long`:
    /// `factor × long / 30d`. Scaling keeps this constant across periods.
    pub fn budget_fraction(&self) -> f64 {
        self.factor * self.long.as_secs_f64() / REFERENCE_PERIOD.as_secs_f64()
    }
    /// Burn rate for a period of `period`: `factor × period / 30d`.
    pub fn burn_rate_for(&self, period: Dur) -> f64 {
        self.factor * period.as_secs_f64() / REFERENCE_PERIOD.as_secs_f64()
    }
}

/// SRE Workbook defaults, ordered by urgency.
pub fn default_tiers() -> Vec<Tier> {
    vec![
        Tier {
            number: 1,
            severity: Severity::Page,
            factor: 14.4,
            long: Dur::hours(1),
            short: Dur::mins(5),
            for_: None,
        },
        Tier {
            number: 2,
            severity: Severity::Page,
            factor: 6.0,
            long: Dur::hours(6),
            short: Dur::mins(30),
            for_: None,
        },
        Tier {
            number: 3,
            severity: Severity::Ticket,
            factor: 3.0,
            long: Dur::days(1),
            short: Dur::hours(2),
            for_: None,
        },
        Tier {
            number: 4,
            severity: Severity::Ticket,
            factor: 1.0,
            long: Dur::days(3),
            short: Dur::hours(6),
            for_: None,
        },
    ]
}

pub const DEFAULT_MIN_EVENTS: u64 = 10;
pub const DEFAULT_NO_DATA_FOR: Dur = Dur::mins(15);

#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    pub tiers: Vec<Tier>,
    pub min_events: u64,
    pub no_data_for: Dur,
    pub no_data_severity: Severity,
    /// Extra labels and annotations of the page and ticket alerts.
    pub page_meta: AlertMeta,
    pub ticket_meta: AlertMeta,
}

/// Labels added to a burn alert; annotations added to (or replacing) ours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertMeta {
    /// Alert name replacing the generated `<Slo>BurnRatePage`/`Ticket` (Sloth's
    /// `alerting.name`); page and ticket may share it, told apart by `severity`.
    pub name: Option<String>,
    /// Prometheus `for` of the burn alert: a tier fires once its condition held this long.
    pub for_: Option<Dur>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Alerting {
    /// A tier's Prometheus `for`: its own, else its alert's.
    pub fn hold(&self, t: &Tier) -> Option<Dur> {
        t.for_.or(self.meta(t.severity).for_)
    }
    pub fn meta(&self, sev: Severity) -> &AlertMeta {
        match sev {
            Severity::Page => &self.page_meta,
            Severity::Ticket => &self.ticket_meta,
        }
    }
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            tiers: default_tiers(),
            min_events: DEFAULT_MIN_EVENTS,
            no_data_for: DEFAULT_NO_DATA_FOR,
            no_data_severity: Severity::Ticket,
            page_meta: AlertMeta::default(),
            ticket_meta: AlertMeta::default(),
        }
    }
}

impl Slo {
    pub fn error_budget(&self) -> f64 {
        1.0 - self.objective
    }
    /// Distinct alert windows, ascending.
    pub fn alert_windows(&self) -> Vec<Dur> {
        let mut w: Vec<Dur> = self
            .alerting
            .tiers
            .iter()
            .flat_map(|t| [t.short, t.long])
            .collect();
        w.sort();
        w.dedup();
        w
    }
    /// Error-ratio threshold of a tier for a period of `period`.
    pub fn threshold_for(&self, tier: &Tier, period: Dur) -> f64 {
        tier.burn_rate_for(period) * self.error_budget()
    }
    /// Whether the SLI counts events (and so has a low-traffic guard).
    pub fn has_traffic(&self) -> bool {
        matches!(self.sli, Sli::Events { .. })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn calendar_month_is_exact_in_time_zone() {
        let w = Window::Calendar {
            unit: CalendarUnit::Month,
            tz: chrono_tz::Europe::Berlin,
        };
        let now = Utc.with_ymd_and_hms(2024, 2, 15, 12, 0, 0).unwrap();
        let (s, e) = w.period_bounds(now);
        assert_eq!(s, Utc.with_ymd_and_hms(2024, 1, 31, 23, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2024, 2, 29, 23, 0, 0).unwrap());
        // March has a DST switch: 31 days minus one hour.
        let (s, e) = w.period_bounds(Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap());
        assert_eq!((e - s).num_hours(), 31 * 24 - 1);
    }

    #[test]
    fn week_starts_monday() {
        let w = Window::Calendar {
            unit: CalendarUnit::Week,
            tz: chrono_tz::UTC,
        };
        let (s, _) = w.period_bounds(Utc.with_ymd_and_hms(2024, 5, 16, 9, 0, 0).unwrap());
        assert_eq!(s, Utc.with_ymd_and_hms(2024, 5, 13, 0, 0, 0).unwrap());
    }

    #[test]
    fn scaling_preserves_budget_fraction() {
        let t = &default_tiers()[0];
        assert!((t.budget_fraction() - 0.02).abs() < 1e-12);
        let p = Dur::days(28);
        let rate = t.burn_rate_for(p);
        assert!((rate - 13.44).abs() < 1e-12);
        // fraction of a 28-day budget consumed in 1h at that rate is still 2%
        assert!((rate * 3600.0 / p.as_secs_f64() - 0.02).abs() < 1e-12);
    }
}
