//! The business, infrastructure and cost views the seed asks for, from the
//! same typed metric names the services emit (`contracts::metrics`) and,
//! for cost, the price table in `slo/cost.yaml` (`crate::cost`).

use contracts::metrics::{self as m, labels, services};
use contracts::topics;

use super::sel;
use crate::compile::num;
use crate::cost::Prices;
use crate::grafana::*;

/// `sum by (<by>) (rate(<series>[$__rate_interval]))`, times `scale`.
fn rate_by(series: &str, by: &[&str], scale: &str) -> String {
    let by = if by.is_empty() {
        String::new()
    } else {
        format!(" by ({})", by.join(", "))
    };
    format!("sum{by} (rate({series}[$__rate_interval])){scale}")
}

/// Per-second rate of a Kafka counter by service and topic.
fn per_topic(counter: &m::Metric) -> String {
    rate_by(&counter.series(), &[labels::SERVICE, labels::TOPIC], "")
}

/// Per-minute rate of what the event processor produced to `topic`.
fn produced_per_minute(topic: &str) -> String {
    let s = sel(
        &m::KAFKA_MESSAGES_PRODUCED.series(),
        &[
            (labels::SERVICE, services::EVENT_PROCESSOR),
            (labels::TOPIC, topic),
        ],
    );
    rate_by(&s, &[], " * 60")
}

/// Todos created, completed and overdue, active users, notification and user events.
pub fn business() -> Dashboard {
    let created = rate_by(&m::TODOS_CREATED.series(), &[], " * 60");
    let completed = rate_by(&m::TODOS_COMPLETED.series(), &[], " * 60");
    // Every processor replica counts the same table: the max, never the sum.
    let overdue = format!("max({})", m::TODOS_OVERDUE.name);
    let users = format!("max({})", m::USERS_ACTIVE.name);
    let mut b = Builder::new();
    b.row("Todos");
    b.add(
        6,
        4,
        PanelSpec::stat("Created per minute", "short")
            .query(created.clone(), "created")
            .decimals(1),
    );
    b.add(
        6,
        4,
        PanelSpec::stat("Completed per minute", "short")
            .query(completed.clone(), "completed")
            .decimals(1),
    );
    b.add(
        6,
        4,
        PanelSpec::stat("Overdue now", "short")
            .describe(
                "Open todos whose due date has passed (event processor, recounted every 15 s).",
            )
            .query(overdue.clone(), "overdue")
            .thresholds(Thresholds::base("green").then(1.0, "orange")),
    );
    b.add(
        6,
        4,
        PanelSpec::stat("Active users", "short")
            .describe("Users with at least one open todo, counted in Postgres by the event processor (no per-user label).")
            .query(users.clone(), "users"),
    );
    b.add(
        12,
        8,
        PanelSpec::timeseries("Created and completed per minute", "short")
            .describe("Command-service counters, all replicas and versions.")
            .query(created, "created")
            .query(completed, "completed"),
    );
    b.add(
        12,
        8,
        PanelSpec::timeseries("Overdue todos, and their change per minute", "short")
            .describe("Overdue open todos, and the per-minute derivative: todos falling overdue minus overdue todos completed or rescheduled.")
            .query(overdue, "overdue")
            .query(
                format!(
                    "max(deriv({}[$__rate_interval])) * 60",
                    m::TODOS_OVERDUE.name
                ),
                "change per minute",
            ),
    );
    b.row("Users and notifications");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Active users", "short")
            .describe("Users with at least one open todo.")
            .query(users, "active users"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("New users per minute", "short")
            .describe("user.registered events the event processor produced to user-events.")
            .query(produced_per_minute(topics::USER_EVENTS), "registered"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Notification events per minute", "short")
            .describe("Due-soon notifications the event processor produced to notification-events (on create and from the sweep).")
            .query(
                produced_per_minute(topics::NOTIFICATION_EVENTS),
                "notifications",
            ),
    );
    dashboard(
        "business",
        "Business",
        "Todos created, completed and overdue, active users and the notification and user events they cause. Generated from contracts::metrics.",
        &["business", "generated"],
        "utc",
        b.finish(),
        vec![],
    )
}

/// PostgreSQL pools, outbox, breakers, broker reachability and consumer throughput.
pub fn infrastructure() -> Dashboard {
    let open = m::DB_POOL_CONNECTIONS.name;
    let idle = m::DB_POOL_IDLE.name;
    let max = m::DB_POOL_MAX.name;
    let svc = labels::SERVICE;
    let dep = labels::DEPENDENCY;
    let breaker = m::CIRCUIT_BREAKER_STATE.name;
    let mut b = Builder::new();
    b.row("PostgreSQL connection pools");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Connections in use", "short")
            .describe("Open minus idle connections of each service's sqlx pool, against its bound.")
            .query(
                format!("sum by ({svc}) ({open} - {idle})"),
                "{{service}} in use",
            )
            .query(format!("sum by ({svc}) ({max})"), "{{service}} max"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Idle connections", "short")
            .query(format!("sum by ({svc}) ({idle})"), "{{service}}"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Pool saturation (waits when 100 %)", "percentunit")
            .describe("In-use connections over the pool bound, worst replica. sqlx counts no waits: at 100 % every connection is busy and further queries wait for one (up to the 2 s acquire timeout).")
            .query(
                format!("max by ({svc}) (({open} - {idle}) / ({max} > 0))"),
                "{{service}}",
            )
            .range(0.0, 1.0)
            .thresholds(Thresholds::base("green").then(0.8, "orange").then(1.0, "red")),
    );
    b.row("Outbox");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Outbox depth", "short")
            .describe(
                "Events committed but not yet acknowledged by the broker (leader relay's count).",
            )
            .query(format!("max({})", m::OUTBOX_BACKLOG.name), "events"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Oldest unsent outbox event", "s")
            .query(format!("max({})", m::OUTBOX_OLDEST_AGE.name), "age"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Writes shed per second", "short")
            .describe("Writes refused with 503 because the outbox passed its bound.")
            .query(rate_by(&m::WRITES_SHED.series(), &[svc], ""), "{{service}}"),
    );
    b.row("Circuit breakers and broker");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Breaker state (0 closed, 1 half-open, 2 open)", "short")
            .query(
                format!("max by ({svc}, {dep}) ({breaker})"),
                "{{service}} → {{dependency}}",
            )
            .range(0.0, 2.0)
            .thresholds(
                Thresholds::base("green")
                    .then(1.0, "orange")
                    .then(2.0, "red"),
            ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Dependency calls by outcome", "short").query(
            rate_by(&m::DEPENDENCY_CALLS.series(), &[dep, labels::OUTCOME], ""),
            "{{dependency}} {{outcome}}",
        ),
    );
    b.add(
        8,
        8,
        PanelSpec::stat("Broker reachable", "none")
            .describe("1 when no replica's Kafka breaker is open (the relay reaches the broker), 0 when one is.")
            .query(
                format!(
                    "min(max by ({svc}) ({}) < bool 2)",
                    sel(breaker, &[(dep, "kafka")])
                ),
                "reachable",
            )
            .thresholds(Thresholds::base("red").then(1.0, "green")),
    );
    b.row("Consumers");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Consumed per second", "short").query(
            per_topic(&m::KAFKA_MESSAGES_CONSUMED),
            "{{service}} {{topic}}",
        ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Produced and failed per second", "short")
            .query(
                per_topic(&m::KAFKA_MESSAGES_PRODUCED),
                "produced {{service}} {{topic}}",
            )
            .query(
                per_topic(&m::KAFKA_MESSAGES_FAILED),
                "failed {{service}} {{topic}}",
            ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Consumer group members", "short")
            .describe("Members per group as the observer sees them; 0 means nobody consumes.")
            .query(
                format!(
                    "max by ({}) ({})",
                    labels::GROUP,
                    m::CONSUMER_GROUP_MEMBERS.name
                ),
                "{{group}}",
            ),
    );
    dashboard(
        "infrastructure",
        "Infrastructure",
        "PostgreSQL pools, outbox depth, circuit breakers, broker reachability and consumer throughput. Generated from contracts::metrics.",
        &["infrastructure", "generated"],
        "utc",
        b.finish(),
        vec![],
    )
}

/// Replicas of `service` that Prometheus sees (each serves the RED gauge once).
fn replicas(service: &str) -> String {
    format!(
        "count({})",
        sel(
            m::HTTP_SERVER_ACTIVE_REQUESTS.name,
            &[(labels::SERVICE, service)]
        )
    )
}

/// Requests per replica-hour, and cost estimates from the price table.
pub fn cost(prices: &Prices) -> Dashboard {
    let unit = prices.unit();
    let cur = &prices.currency;
    let svc = labels::SERVICE;
    let count = m::HTTP_SERVER_REQUEST_DURATION.count();
    let active = m::HTTP_SERVER_ACTIVE_REQUESTS.name;
    let table: Vec<String> = prices
        .replica_hour
        .iter()
        .map(|(s, p)| format!("{s} {} {cur}", num(*p)))
        .collect();
    let source = format!(
        "Estimate: replicas Prometheus sees × price per replica-hour from slo/cost.yaml ({}). Not an invoice.",
        table.join(", ")
    );
    let per_service = |f: &dyn Fn(&str, f64) -> String| -> Vec<(String, String)> {
        prices
            .replica_hour
            .iter()
            .map(|(s, p)| (f(s, *p), s.clone()))
            .collect()
    };
    let hourly = per_service(&|s, p| format!("{} * {}", replicas(s), num(p)));
    let mut b = Builder::new();
    b.row("Load per replica");
    b.add(
        12,
        8,
        PanelSpec::timeseries("Replicas", "short")
            .describe("Replicas per service that expose metrics (one RED in-flight gauge each).")
            .query(format!("count by ({svc}) ({active})"), "{{service}}"),
    );
    b.add(
        12,
        8,
        PanelSpec::timeseries("Requests per replica-hour", "short")
            .describe("HTTP requests in the last hour divided by the replicas serving now.")
            .query(
                format!("sum by ({svc}) (increase({count}[1h])) / count by ({svc}) ({active})"),
                "{{service}}",
            ),
    );
    b.row("Cost (estimate)");
    let mut per_hour = PanelSpec::timeseries(format!("Estimated cost per hour ({cur})"), unit)
        .describe(source.clone());
    for (q, s) in &hourly {
        per_hour = per_hour.query(q.clone(), s.clone());
    }
    b.add(8, 8, per_hour);
    let total = hourly
        .iter()
        .map(|(q, _)| format!("({q} or on() vector(0))"))
        .collect::<Vec<_>>()
        .join(" + ");
    b.add(
        8,
        8,
        PanelSpec::stat(format!("Estimated cost over the range ({cur})"), unit)
            .describe(format!(
                "{source} Replica-hours sampled every 5 minutes over the dashboard range."
            ))
            .query(
                format!("sum_over_time(({total})[$__range:5m]) / 12"),
                "estimate",
            )
            .decimals(2),
    );
    let mut per_million =
        PanelSpec::timeseries(format!("Estimated cost per million requests ({cur})"), unit)
            .describe(format!(
                "{source} Hourly estimate divided by the requests of the last hour."
            ));
    for (q, s) in &hourly {
        per_million = per_million.query(
            format!(
                "({q}) / sum(increase({}[1h])) * 1e6",
                sel(&count, &[(svc, s)])
            ),
            s.clone(),
        );
    }
    b.add(8, 8, per_million);
    dashboard(
        "cost",
        "Cost (estimate)",
        &format!("Requests per replica-hour and a cost estimate. {source}"),
        &["cost", "generated"],
        "utc",
        b.finish(),
        vec![],
    )
}
