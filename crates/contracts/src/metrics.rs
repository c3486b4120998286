//! The observability contract: every metric a service emits, in one typed
//! place. Services register from these definitions, and the SLO engine and
//! dashboard builder read the same definitions, so a renamed metric breaks the
//! build instead of a dashboard.

/// Kind of a metric as exposed in the OpenMetrics text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric family. `name` is the family name as it appears in PromQL without
/// suffixes: counters are exposed as `<name>_total`, histograms as
/// `<name>_bucket`, `<name>_sum` and `<name>_count`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// Histogram bucket upper bounds (seconds); empty for other kinds.
    pub buckets: &'static [f64],
}

impl Metric {
    /// Series name of a counter (`_total`) or the family name otherwise.
    pub fn series(&self) -> String {
        match self.kind {
            MetricKind::Counter => format!("{}_total", self.name),
            _ => self.name.to_string(),
        }
    }
    pub fn bucket(&self) -> String {
        format!("{}_bucket", self.name)
    }
    pub fn count(&self) -> String {
        format!("{}_count", self.name)
    }
    pub fn sum(&self) -> String {
        format!("{}_sum", self.name)
    }
}

/// Label names. Bounded: every value set is small and known.
pub mod labels {
    pub const SERVICE: &str = "service";
    pub const ROUTE: &str = "route";
    pub const METHOD: &str = "method";
    pub const STATUS_CLASS: &str = "status_class";
    /// `stable` or `canary`, from config, so two builds can be compared.
    pub const VERSION: &str = "version";
    pub const TOPIC: &str = "topic";
    pub const REASON: &str = "reason";
    pub const GROUP: &str = "group";
    pub const PARTITION: &str = "partition";
    pub const STATE: &str = "state";
    /// Observer: SLO name (bounded by the specs in `slo/`).
    pub const SLO: &str = "slo";
    /// Observer: evaluation window in PromQL notation (bounded by the tiers).
    pub const WINDOW: &str = "window";
    /// Observer: lag status (`OK`, `WARN`, `STALL`, `STOP`, `REWIND`, `IDLE`).
    pub const STATUS: &str = "status";
    /// Observer: canary name (one per canary spec).
    pub const CANARY: &str = "canary";
    /// Observer: canary verdict (`promote`, `complete`, `hold`, `rollback`, `pause`).
    pub const VERDICT: &str = "verdict";
    /// Observer: rollout phase.
    pub const PHASE: &str = "phase";
    /// Observer: which sequential test (`errors`, `latency`).
    pub const TEST: &str = "test";
    /// A dependency behind a circuit breaker (`postgres`, `kafka`, `prometheus`, …).
    pub const DEPENDENCY: &str = "dependency";
    /// Outcome of a guarded call (`ok`, `failed`, `rejected`).
    pub const OUTCOME: &str = "outcome";
}

/// Latency buckets for HTTP. Every SLO latency threshold must be one of these.
pub const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for event → read-model freshness.
pub const FRESHNESS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

use labels::*;

pub const HTTP_SERVER_REQUEST_DURATION: Metric = Metric {
    name: "http_server_request_duration_seconds",
    kind: MetricKind::Histogram,
    help: "Duration of HTTP requests handled by the server.",
    labels: &[SERVICE, ROUTE, METHOD, STATUS_CLASS, VERSION],
    buckets: HTTP_BUCKETS,
};

pub const HTTP_SERVER_ACTIVE_REQUESTS: Metric = Metric {
    name: "http_server_active_requests",
    kind: MetricKind::Gauge,
    help: "HTTP requests being handled right now (including the scrape itself).",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const KAFKA_MESSAGES_PRODUCED: Metric = Metric {
    name: "kafka_messages_produced",
    kind: MetricKind::Counter,
    help: "Records acknowledged by the broker.",
    labels: &[SERVICE, TOPIC, VERSION],
    buckets: &[],
};

pub const KAFKA_MESSAGES_CONSUMED: Metric = Metric {
    name: "kafka_messages_consumed",
    kind: MetricKind::Counter,
    help: "Records consumed and handled (applied, skipped as duplicate or dead-lettered).",
    labels: &[SERVICE, TOPIC, VERSION],
    buckets: &[],
};

pub const KAFKA_MESSAGES_FAILED: Metric = Metric {
    name: "kafka_messages_failed",
    kind: MetricKind::Counter,
    help: "Attempts to produce or handle a record that failed (each retry counts).",
    labels: &[SERVICE, TOPIC, VERSION],
    buckets: &[],
};

pub const DLQ_MESSAGES: Metric = Metric {
    name: "dlq_messages",
    kind: MetricKind::Counter,
    help: "Records sent to a dead-letter topic.",
    labels: &[SERVICE, TOPIC, REASON, VERSION],
    buckets: &[],
};

pub const PROJECTION_FRESHNESS: Metric = Metric {
    name: "projection_freshness_seconds",
    kind: MetricKind::Histogram,
    help: "Time from an event's occurred_at to it being applied to the read model.",
    labels: &[SERVICE, VERSION],
    buckets: FRESHNESS_BUCKETS,
};

pub const OUTBOX_BACKLOG: Metric = Metric {
    name: "outbox_backlog_events",
    kind: MetricKind::Gauge,
    help: "Events in the outbox not yet acknowledged by the broker.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const OUTBOX_OLDEST_AGE: Metric = Metric {
    name: "outbox_oldest_event_age_seconds",
    kind: MetricKind::Gauge,
    help: "Age of the oldest unsent outbox event (0 when empty).",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const TODOS_CREATED: Metric = Metric {
    name: "todos_created",
    kind: MetricKind::Counter,
    help: "Todos created.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const TODOS_COMPLETED: Metric = Metric {
    name: "todos_completed",
    kind: MetricKind::Counter,
    help: "Todos completed.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

/// Open todos whose due date has passed, from the event processor's due-date
/// table (refreshed on a tick; one series per replica, no per-user label).
pub const TODOS_OVERDUE: Metric = Metric {
    name: "todos_overdue",
    kind: MetricKind::Gauge,
    help: "Open todos whose due date has passed (the event processor's view).",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

/// Distinct users with at least one open todo: the business view of
/// "active users", counted in Postgres so that no user id becomes a label.
pub const USERS_ACTIVE: Metric = Metric {
    name: "users_active",
    kind: MetricKind::Gauge,
    help: "Users with at least one open todo (the event processor's view).",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

/// The PostgreSQL pool of a service (sqlx `size`, `num_idle`, `max_connections`).
pub const DB_POOL_CONNECTIONS: Metric = Metric {
    name: "db_pool_connections",
    kind: MetricKind::Gauge,
    help: "Connections open in the service's PostgreSQL pool (idle and in use).",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const DB_POOL_IDLE: Metric = Metric {
    name: "db_pool_idle_connections",
    kind: MetricKind::Gauge,
    help: "Idle connections in the service's PostgreSQL pool.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const DB_POOL_MAX: Metric = Metric {
    name: "db_pool_max_connections",
    kind: MetricKind::Gauge,
    help: "Upper bound of the service's PostgreSQL pool; callers wait for a connection when all are in use.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

/// Consumer-group lag exported by the observer, per partition.
pub const CONSUMER_GROUP_LAG_MESSAGES: Metric = Metric {
    name: "kafka_consumergroup_lag_messages",
    kind: MetricKind::Gauge,
    help: "Records between the group's committed offset and the partition end.",
    labels: &[GROUP, TOPIC, PARTITION],
    buckets: &[],
};

/// Consumer-group lag in seconds: age of the record at the committed offset.
pub const CONSUMER_GROUP_LAG_SECONDS: Metric = Metric {
    name: "kafka_consumergroup_lag_seconds",
    kind: MetricKind::Gauge,
    help: "Age of the oldest unconsumed record (timestamp of the record at the committed offset).",
    labels: &[GROUP, TOPIC, PARTITION],
    buckets: &[],
};

/// Observer: lag status of a group, one series per status set to 1 for the current one.
pub const CONSUMER_GROUP_STATUS: Metric = Metric {
    name: "kafka_consumergroup_status",
    kind: MetricKind::Gauge,
    help: "1 for the group's current lag status (worst partition), 0 for the others.",
    labels: &[GROUP, STATUS],
    buckets: &[],
};

/// Observer: live members of a group (0 for a group that is only committed offsets).
pub const CONSUMER_GROUP_MEMBERS: Metric = Metric {
    name: "kafka_consumergroup_members",
    kind: MetricKind::Gauge,
    help: "Members of the consumer group as reported by the broker.",
    labels: &[GROUP],
    buckets: &[],
};

/// Observer: catch-up ETA of a group at its current consume and produce rates.
pub const CONSUMER_GROUP_CATCHUP_ETA: Metric = Metric {
    name: "kafka_consumergroup_catchup_eta_seconds",
    kind: MetricKind::Gauge,
    help: "Seconds until the group's lag reaches zero at the window's consume and produce rates (absent when not catching up).",
    labels: &[GROUP],
    buckets: &[],
};

/// Observer: how long the last lag snapshot took (broker calls included).
pub const OBSERVER_LAG_SNAPSHOT_DURATION: Metric = Metric {
    name: "observer_lag_snapshot_duration_seconds",
    kind: MetricKind::Gauge,
    help: "Duration of the last lag snapshot (metadata, groups, offsets, record timestamps).",
    labels: &[],
    buckets: &[],
};

/// Observer: error ratio of an SLO over a window (same value as the recording rule).
pub const SLO_ERROR_RATIO: Metric = Metric {
    name: "slo_error_ratio",
    kind: MetricKind::Gauge,
    help: "SLI error ratio over the window, evaluated natively by the observer.",
    labels: &[SLO, SERVICE, WINDOW],
    buckets: &[],
};

/// Observer: burn rate of an SLO over a window.
pub const SLO_BURN_RATE: Metric = Metric {
    name: "slo_burn_rate",
    kind: MetricKind::Gauge,
    help: "Error ratio over the window divided by the error budget (1 = exactly on budget).",
    labels: &[SLO, SERVICE, WINDOW],
    buckets: &[],
};

/// Observer: share of the period's error budget left.
pub const SLO_ERROR_BUDGET_REMAINING: Metric = Metric {
    name: "slo_error_budget_remaining_ratio",
    kind: MetricKind::Gauge,
    help: "Share of the period's error budget left (negative when overspent).",
    labels: &[SLO, SERVICE],
    buckets: &[],
};

/// Observer: forecast time until the budget is spent.
pub const SLO_TIME_TO_EXHAUSTION: Metric = Metric {
    name: "slo_time_to_exhaustion_seconds",
    kind: MetricKind::Gauge,
    help: "Seconds until the error budget is spent at the first tier's long-window burn rate (absent when nothing burns).",
    labels: &[SLO, SERVICE],
    buckets: &[],
};

/// Observer: evaluation state of an SLO, one series per state.
pub const SLO_STATE: Metric = Metric {
    name: "slo_state",
    kind: MetricKind::Gauge,
    help: "1 for the SLO's current state (ok, burning, no_traffic, backend_down, error), 0 for the others.",
    labels: &[SLO, SERVICE, STATE],
    buckets: &[],
};

/// Observer: whether the metrics backend answered the last evaluation.
pub const SLO_BACKEND_UP: Metric = Metric {
    name: "slo_backend_up",
    kind: MetricKind::Gauge,
    help: "1 when Prometheus answered the last SLO evaluation, 0 when it was unreachable.",
    labels: &[],
    buckets: &[],
};

pub const CIRCUIT_BREAKER_STATE: Metric = Metric {
    name: "circuit_breaker_state",
    kind: MetricKind::Gauge,
    help: "State of the circuit breaker in front of a dependency: 0 closed, 1 half-open, 2 open.",
    labels: &[SERVICE, DEPENDENCY, VERSION],
    buckets: &[],
};

pub const DEPENDENCY_CALLS: Metric = Metric {
    name: "dependency_calls",
    kind: MetricKind::Counter,
    help: "Calls to a dependency through its circuit breaker, by outcome (rejected: refused while open).",
    labels: &[SERVICE, DEPENDENCY, OUTCOME, VERSION],
    buckets: &[],
};

pub const WRITES_SHED: Metric = Metric {
    name: "writes_shed",
    kind: MetricKind::Counter,
    help: "Writes refused with 503 because the outbox backlog passed its bound.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const PROJECTION_EVENTS_HELD: Metric = Metric {
    name: "projection_events_held",
    kind: MetricKind::Counter,
    help: "Events the projection received ahead of a missing earlier version of their todo: kept in the history and applied once the gap is filled.",
    labels: &[SERVICE, VERSION],
    buckets: &[],
};

pub const CANARY_DECISIONS: Metric = Metric {
    name: "canary_decisions",
    kind: MetricKind::Counter,
    help: "Canary analysis decisions by verdict (operator actions are in the decision log).",
    labels: &[CANARY, VERDICT],
    buckets: &[],
};

pub const CANARY_WEIGHT: Metric = Metric {
    name: "canary_weight_percent",
    kind: MetricKind::Gauge,
    help: "Share of traffic the rollout driver was last told to send to the canary.",
    labels: &[CANARY],
    buckets: &[],
};

pub const CANARY_PHASE: Metric = Metric {
    name: "canary_phase",
    kind: MetricKind::Gauge,
    help: "1 for the current phase of the canary's latest rollout, 0 for the others.",
    labels: &[CANARY, PHASE],
    buckets: &[],
};

pub const CANARY_LOG_LIKELIHOOD_RATIO: Metric = Metric {
    name: "canary_log_likelihood_ratio",
    kind: MetricKind::Gauge,
    help: "Running statistic of the sequential test in the current step; rollback at canary_rollback_boundary.",
    labels: &[CANARY, TEST],
    buckets: &[],
};

pub const CANARY_ROLLBACK_BOUNDARY: Metric = Metric {
    name: "canary_rollback_boundary",
    kind: MetricKind::Gauge,
    help: "Log-likelihood ratio at which the canary is rolled back in the current step.",
    labels: &[CANARY],
    buckets: &[],
};

/// Metrics only the observer emits.
pub const OBSERVER_METRICS: &[Metric] = &[
    CONSUMER_GROUP_LAG_MESSAGES,
    CONSUMER_GROUP_LAG_SECONDS,
    CONSUMER_GROUP_STATUS,
    CONSUMER_GROUP_MEMBERS,
    CONSUMER_GROUP_CATCHUP_ETA,
    OBSERVER_LAG_SNAPSHOT_DURATION,
    SLO_ERROR_RATIO,
    SLO_BURN_RATE,
    SLO_ERROR_BUDGET_REMAINING,
    SLO_TIME_TO_EXHAUSTION,
    SLO_STATE,
    SLO_BACKEND_UP,
    CANARY_DECISIONS,
    CANARY_WEIGHT,
    CANARY_PHASE,
    CANARY_LOG_LIKELIHOOD_RATIO,
    CANARY_ROLLBACK_BOUNDARY,
];

/// Service names as they appear in the `service` label.
pub mod services {
    pub const COMMAND: &str = "command-service";
    pub const QUERY: &str = "query-service";
    pub const EVENT_PROCESSOR: &str = "event-processor";
    pub const OBSERVER: &str = "observer";
}

/// Every metric above, for exhaustive checks in tests and generators.
pub const ALL: &[Metric] = &[
    HTTP_SERVER_REQUEST_DURATION,
    HTTP_SERVER_ACTIVE_REQUESTS,
    KAFKA_MESSAGES_PRODUCED,
    KAFKA_MESSAGES_CONSUMED,
    KAFKA_MESSAGES_FAILED,
    DLQ_MESSAGES,
    PROJECTION_FRESHNESS,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    TODOS_CREATED,
    TODOS_COMPLETED,
    TODOS_OVERDUE,
    USERS_ACTIVE,
    DB_POOL_CONNECTIONS,
    DB_POOL_IDLE,
    DB_POOL_MAX,
    CIRCUIT_BREAKER_STATE,
    DEPENDENCY_CALLS,
    WRITES_SHED,
    PROJECTION_EVENTS_HELD,
    CONSUMER_GROUP_LAG_MESSAGES,
    CONSUMER_GROUP_LAG_SECONDS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_histograms_have_sorted_buckets() {
        let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for m in ALL {
            assert_eq!(
                m.kind == MetricKind::Histogram,
                !m.buckets.is_empty(),
                "{}",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
            assert!(
                !m.name.ends_with("_total"),
                "{}: the _total suffix is added on exposition",
                m.name
            );
        }
    }
}
