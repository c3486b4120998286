//! The on-disk spec format (`slo/*.yaml`), exactly as users write it.
//! Every struct rejects unknown fields; semantic checks live in `validate`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;

/// One spec file: the SLOs of one service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Value of the `service` label on every rule and alert of this file.
    pub service: String,
    /// Extra labels added to every alert of this file (e.g. `team`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub slos: Vec<SloSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Unique across all files; lower-case letters, digits and `-`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Share of good events (or good time slices), e.g. `0.999`.
    pub objective: f64,
    pub window: WindowSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgeting: Option<BudgetingSpec>,
    pub sli: SliSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerting: Option<AlertingSpec>,
}

/// Exactly one of `rolling` or `calendar`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarUnit>,
    /// IANA time zone of calendar periods; default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CalendarUnit {
    Week,
    Month,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetingSpec {
    pub method: BudgetingMethod,
    /// Length of one time slice (timeslices only); default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Dur>,
    /// A slice is good when its own good ratio reaches this (event SLIs with timeslices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_objective: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BudgetingMethod {
    Occurrences,
    Timeslices,
}

/// Exactly one SLI kind.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SliSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<RatioSpec>,
    /// HTTP availability from the typed RED histogram: 5xx responses are bad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AvailabilitySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<ThresholdSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<ThresholdSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_lag: Option<ConsumerLagSpec>,
    /// Any PromQL instant value compared with a bound, per time slice
    /// (e.g. OpenSLO `thresholdMetric`). Requires timeslices budgeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_threshold: Option<QueryThresholdSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryThresholdSpec {
    pub promql: String,
    pub good_when: Comparison,
    pub value: f64,
}

/// When a value is good relative to the bound.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Below,
    AtOrBelow,
    Above,
    AtOrAbove,
}

impl Comparison {
    /// PromQL operator that selects *bad* values.
    pub fn bad_op(self) -> &'static str {
        match self {
            Comparison::Below => ">=",
            Comparison::AtOrBelow => ">",
            Comparison::Above => "<=",
            Comparison::AtOrAbove => "<",
        }
    }
}

/// `good`/`total` or `bad`/`total`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good: Option<QuerySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<QuerySpec>,
    pub total: QuerySpec,
}

/// A counter selector (`metric` + `matchers`) or raw PromQL that returns an
/// event count over `$window`, e.g. `sum(increase(x_total[$window]))`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Label matchers: `value` (equal), `!=value`, `=~regex`, `!~regex`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promql: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AvailabilitySpec {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
}

/// Share of observations at or under a histogram bucket boundary.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Histogram family name (without `_bucket`). Defaults to the typed
    /// contract metric (HTTP duration for latency, projection freshness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    pub threshold_seconds: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    /// Bucket boundaries; required only for histograms not in the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerLagSpec {
    pub group: String,
    pub topic: String,
    /// A minute (slice) is good when the group's worst partition lag is under this.
    pub max_lag_seconds: f64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertingSpec {
    /// Omit for the SRE Workbook default set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<TierSpec>>,
    /// Low-traffic guard: a tier fires only with at least this many events in its short window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoDataSpec>,
    /// Extra labels and annotations of the page alert (e.g. from Sloth's `page_alert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_alert: Option<AlertMetaSpec>,
    /// Extra labels and annotations of the ticket alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_alert: Option<AlertMetaSpec>,
}

/// Labels added to an alert and annotations added to (or replacing) ours.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertMetaSpec {
    /// Alert name replacing the generated `<Slo>BurnRatePage`/`<Slo>BurnRateTicket`;
    /// the page and ticket alert may share one (told apart by `severity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long a tier's condition must hold before the alert fires (Prometheus `for`).
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub severity: Severity,
    /// Burn-rate factor as defined for a 30-day period; scaled for other periods.
    pub factor: f64,
    pub long: Dur,
    pub short: Dur,
    /// This tier's Prometheus `for`, overriding its alert's
    /// (`page_alert.for`/`ticket_alert.for`); e.g. from a Pyrra import.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoDataSpec {
    /// How long the SLI's data must be missing before the alert fires; default `15m`.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}
