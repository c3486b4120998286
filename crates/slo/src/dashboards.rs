//! The dashboards, built with the typed model in `grafana` from the same SLOs
//! and the same typed metric names the services emit.

mod views;

use std::collections::BTreeMap;

use contracts::metrics::{self, labels, services};

use crate::compile::{self, PERIOD_ERROR_RATIO, num, ratio_metric, selector};
use crate::cost::Prices;
use crate::duration::Dur;
use crate::grafana::*;
use crate::model::*;

pub use views::{business, cost, infrastructure};

fn json(d: &Dashboard) -> Result<String, crate::Error> {
    serde_json::to_string_pretty(d)
        .map(|s| s + "\n")
        .map_err(|e| crate::Error::Internal(e.to_string()))
}

/// Error ratio of an SLO over a Grafana range variable (`$__range`), for
/// calendar budgets computed exactly over "this month/week so far".
pub fn error_ratio_over(slo: &Slo, range: &str) -> String {
    match (&slo.sli, &slo.budgeting) {
        (
            Sli::Events {
                numerator,
                numerator_is_good,
                total,
                ..
            },
            Budgeting::Occurrences,
        ) => {
            let n = numerator.increase(range);
            let t = total.increase(range);
            if *numerator_is_good {
                format!("clamp_min(1 - ({n} or on() vector(0)) / ({t} > 0), 0) or on() vector(0)")
            } else {
                format!("clamp_max({n} / ({t} > 0), 1) or on() vector(0)")
            }
        }
        _ => format!(
            "avg_over_time({}[{range}]) or on() vector(0)",
            selector(compile::SLICE_BAD, slo)
        ),
    }
}

fn budget_remaining(slo: &Slo) -> String {
    format!(
        "1 - {} / {}",
        selector(PERIOD_ERROR_RATIO, slo),
        num(slo.error_budget())
    )
}

fn slo_thresholds(slo: &Slo) -> Thresholds {
    Thresholds::base("red").then(slo.objective, "green")
}

fn budget_thresholds() -> Thresholds {
    Thresholds::base("red")
        .then(0.0, "orange")
        .then(0.25, "green")
}

fn alerts_firing(slo: &Slo) -> String {
    format!(
        "sum(ALERTS{{slo=\"{}\", alertstate=\"firing\", severity=\"page\"}}) * 2 or sum(ALERTS{{slo=\"{}\", alertstate=\"firing\"}}) or on() vector(0)",
        slo.name, slo.name
    )
}

/// One row of stats per SLO: target, SLI, budget remaining, burn rates, alert state.
pub fn overview(slos: &[Slo]) -> Dashboard {
    let mut b = Builder::new();
    for slo in slos {
        b.row(&format!("{} · {}", slo.service, slo.name));
        b.add(
            3,
            4,
            PanelSpec::stat("Objective", "percentunit")
                .describe(format!(
                    "{} over a {} window",
                    slo.description,
                    slo.window.words()
                ))
                .query(format!("vector({})", num(slo.objective)), "objective")
                .decimals(3),
        );
        b.add(
            4,
            4,
            PanelSpec::stat(format!("SLI ({})", slo.sli.kind_name()), "percentunit")
                .describe("Good share over the SLO window (traffic-weighted).")
                .query(format!("1 - {}", selector(PERIOD_ERROR_RATIO, slo)), "sli")
                .decimals(3)
                .thresholds(slo_thresholds(slo)),
        );
        b.add(
            4,
            4,
            PanelSpec::stat("Error budget remaining", "percentunit")
                .describe(
                    "Share of the window's error budget not yet spent; negative = SLO missed.",
                )
                .query(budget_remaining(slo), "budget")
                .decimals(1)
                .thresholds(budget_thresholds()),
        );
        let fast = slo
            .alerting
            .tiers
            .first()
            .map(|t| t.long)
            .unwrap_or(Dur::hours(1));
        let slow = slo
            .alerting
            .tiers
            .last()
            .map(|t| t.long)
            .unwrap_or(Dur::days(3));
        for w in [fast, slow] {
            b.add(
                4,
                4,
                PanelSpec::stat(format!("Burn rate {}", w.prom()), "x")
                    .describe("Error ratio divided by the error budget; 1 = exactly on budget.")
                    .query(
                        format!(
                            "{} / {}",
                            selector(&ratio_metric(w), slo),
                            num(slo.error_budget())
                        ),
                        "burn",
                    )
                    .decimals(2)
                    .thresholds(
                        Thresholds::base("green")
                            .then(1.0, "orange")
                            .then(6.0, "red"),
                    ),
            );
        }
        b.add(
            5,
            4,
            PanelSpec::stat("Alert state", "none")
                .describe("0 = quiet, 1 = ticket firing, 2 = page firing.")
                .query(alerts_firing(slo), "alerts")
                .thresholds(
                    Thresholds::base("green")
                        .then(1.0, "orange")
                        .then(2.0, "red"),
                ),
        );
    }
    dashboard(
        "slo-overview",
        "SLO overview",
        "Every SLO: objective, SLI, error budget remaining, burn rates and alert state. Generated from slo/*.yaml.",
        &["slo", "generated"],
        "utc",
        b.finish(),
        vec![],
    )
}

/// Per-service detail: budget, burn rates per alert window against the tier thresholds, SLI history.
pub fn detail(service: &str, slos: &[&Slo]) -> Dashboard {
    let mut b = Builder::new();
    let tz = slos
        .iter()
        .find_map(|s| match &s.window {
            Window::Calendar { tz, .. } => Some(tz.name().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "utc".into());
    for slo in slos {
        b.row(&format!(
            "{} — {:.3}% over {}",
            slo.name,
            slo.objective * 100.0,
            slo.window.words()
        ));
        b.add(
            6,
            5,
            PanelSpec::stat("Error budget remaining", "percentunit")
                .describe("Over the rolling SLO window (nominal length for calendar SLOs).")
                .query(budget_remaining(slo), "budget")
                .decimals(1)
                .thresholds(budget_thresholds()),
        );
        if let Window::Calendar { unit, tz } = &slo.window {
            let (from, what) = match unit {
                CalendarUnit::Month => ("now/M", "month"),
                CalendarUnit::Week => ("now/w", "week"),
            };
            b.add(
                6,
                5,
                PanelSpec::stat(
                    format!("Budget remaining this {what} ({tz})"),
                    "percentunit",
                )
                .describe(format!(
                    "Exact calendar period so far, in the dashboard time zone {tz}."
                ))
                .query(
                    format!(
                        "1 - ({}) / {}",
                        error_ratio_over(slo, "$__range"),
                        num(slo.error_budget())
                    ),
                    "budget",
                )
                .decimals(1)
                .thresholds(budget_thresholds())
                .time_from(from),
            );
        }
        b.add(
            6,
            5,
            PanelSpec::stat("SLI over the window", "percentunit")
                .query(format!("1 - {}", selector(PERIOD_ERROR_RATIO, slo)), "sli")
                .decimals(3)
                .thresholds(slo_thresholds(slo)),
        );
        b.add(
            6,
            5,
            PanelSpec::stat("Alert state", "none")
                .describe("0 = quiet, 1 = ticket firing, 2 = page firing.")
                .query(alerts_firing(slo), "alerts")
                .thresholds(
                    Thresholds::base("green")
                        .then(1.0, "orange")
                        .then(2.0, "red"),
                ),
        );
        let mut burn = PanelSpec::timeseries("Burn rate per alert window", "x")
            .describe(tier_description(slo));
        for w in slo.alert_windows() {
            burn = burn.query(
                format!(
                    "{} / {}",
                    selector(&ratio_metric(w), slo),
                    num(slo.error_budget())
                ),
                w.prom(),
            );
        }
        let mut th = Thresholds::base("green");
        let mut rates: Vec<f64> = slo
            .alerting
            .tiers
            .iter()
            .map(|t| t.burn_rate_for(slo.window.nominal()))
            .collect();
        rates.sort_by(f64::total_cmp);
        for (i, r) in rates.iter().enumerate() {
            th = th.then(
                *r,
                if i + 1 == rates.len() {
                    "red"
                } else {
                    "orange"
                },
            );
        }
        b.add(12, 8, burn.thresholds(th));
        b.add(
            12,
            8,
            PanelSpec::timeseries("SLI (5m and 1h)", "percentunit")
                .query(
                    format!("1 - {}", selector(&ratio_metric(Dur::mins(5)), slo)),
                    "5m",
                )
                .query(format!("1 - ({})", error_ratio_over(slo, "1h")), "1h")
                .range(0.0, 1.0)
                .thresholds(slo_thresholds(slo)),
        );
    }
    dashboard(
        &format!("slo-{service}"),
        &format!("SLOs · {service}"),
        &format!("Error budgets and burn rates of {service}. Generated from slo/*.yaml."),
        &["slo", "generated", service],
        &tz,
        b.finish(),
        vec![],
    )
}

fn tier_description(slo: &Slo) -> String {
    slo.alerting
        .tiers
        .iter()
        .map(|t| format!("Tier {}: {}.", t.number, compile::tier_words(slo, t)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sel(metric: &str, m: &[(&str, &str)]) -> String {
    let ms: Vec<Matcher> = m.iter().map(|(k, v)| Matcher::eq(k, v)).collect();
    Query::render_selector(metric, &ms)
}

/// RED metrics of one service (chosen by variable), stable vs canary.
pub fn red() -> Dashboard {
    use metrics::HTTP_SERVER_REQUEST_DURATION as H;
    let svc = [(labels::SERVICE, "$service")];
    let count = sel(&H.count(), &svc);
    let errors = sel(
        &H.count(),
        &[(labels::SERVICE, "$service"), (labels::STATUS_CLASS, "5xx")],
    );
    let bucket = sel(&H.bucket(), &svc);
    let mut b = Builder::new();
    b.row("Rate, errors, duration");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Requests per second by route", "reqps").query(
            format!(
                "sum by ({}) (rate({count}[$__rate_interval]))",
                labels::ROUTE
            ),
            "{{route}}",
        ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("5xx share", "percentunit")
            .query(
                format!(
                    "sum(rate({errors}[$__rate_interval])) / sum(rate({count}[$__rate_interval]))"
                ),
                "5xx",
            )
            .range(0.0, 1.0),
    );
    let mut lat = PanelSpec::timeseries("Latency quantiles", "s");
    for q in ["0.5", "0.95", "0.99"] {
        lat = lat.query(
            format!("histogram_quantile({q}, sum by (le) (rate({bucket}[$__rate_interval])))"),
            format!("p{}", &q[2..]),
        );
    }
    b.add(8, 8, lat.exemplars());
    b.row("By status class and route");
    b.add(
        12,
        8,
        PanelSpec::timeseries("Requests by status class", "reqps").query(
            format!(
                "sum by ({}) (rate({count}[$__rate_interval]))",
                labels::STATUS_CLASS
            ),
            "{{status_class}}",
        ),
    );
    b.add(
        12,
        8,
        PanelSpec::timeseries("p99 latency by route", "s")
            .query(
                format!(
                    "histogram_quantile(0.99, sum by (le, {}) (rate({bucket}[$__rate_interval])))",
                    labels::ROUTE
                ),
                "{{route}}",
            )
            .exemplars(),
    );
    dashboard(
        "service-red",
        "Service RED",
        "Rate, errors and duration of an HTTP service from the typed RED histogram.",
        &["red", "generated"],
        "utc",
        b.finish(),
        vec![label_variable("service", "Service", &H.count())],
    )
}

/// Consumer lag (seconds and records), throughput, failures, DLQ, outbox and projection freshness.
pub fn kafka() -> Dashboard {
    use metrics::*;
    let mut b = Builder::new();
    b.row("Consumer lag");
    b.add(
        12,
        8,
        PanelSpec::timeseries("Lag (seconds, worst partition)", "s").query(
            format!(
                "max by ({}, {}) ({})",
                labels::GROUP,
                labels::TOPIC,
                CONSUMER_GROUP_LAG_SECONDS.name
            ),
            "{{group}} / {{topic}}",
        ),
    );
    b.add(
        12,
        8,
        PanelSpec::timeseries("Lag (records)", "short").query(
            format!(
                "sum by ({}, {}) ({})",
                labels::GROUP,
                labels::TOPIC,
                CONSUMER_GROUP_LAG_MESSAGES.name
            ),
            "{{group}} / {{topic}}",
        ),
    );
    b.row("Throughput and failures");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Produced per second", "short").query(
            format!(
                "sum by ({}) (rate({}[$__rate_interval]))",
                labels::TOPIC,
                KAFKA_MESSAGES_PRODUCED.series()
            ),
            "{{topic}}",
        ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Consumed per second", "short").query(
            format!(
                "sum by ({}, {}) (rate({}[$__rate_interval]))",
                labels::SERVICE,
                labels::TOPIC,
                KAFKA_MESSAGES_CONSUMED.series()
            ),
            "{{service}} {{topic}}",
        ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Failures and dead letters per second", "short")
            .query(
                format!(
                    "sum by ({}) (rate({}[$__rate_interval]))",
                    labels::SERVICE,
                    KAFKA_MESSAGES_FAILED.series()
                ),
                "failed {{service}}",
            )
            .query(
                format!(
                    "sum by ({}) (rate({}[$__rate_interval]))",
                    labels::REASON,
                    DLQ_MESSAGES.series()
                ),
                "dlq {{reason}}",
            ),
    );
    b.row("Outbox and projection");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Outbox backlog", "short")
            .query(format!("sum({})", OUTBOX_BACKLOG.name), "events"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Oldest unsent outbox event", "s")
            .query(format!("max({})", OUTBOX_OLDEST_AGE.name), "age"),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Projection freshness", "s")
            .query(
                format!(
                    "histogram_quantile(0.5, sum by (le) (rate({}[$__rate_interval])))",
                    PROJECTION_FRESHNESS.bucket()
                ),
                "p50",
            )
            .query(
                format!(
                    "histogram_quantile(0.99, sum by (le) (rate({}[$__rate_interval])))",
                    PROJECTION_FRESHNESS.bucket()
                ),
                "p99",
            )
            .exemplars(),
    );
    dashboard(
        "kafka-lag",
        "Kafka lag and pipeline",
        "Consumer-group lag in seconds and records, Kafka throughput, DLQ, outbox and projection freshness.",
        &["kafka", "generated"],
        "utc",
        b.finish(),
        vec![],
    )
}

/// Stable vs canary of one service under the same live traffic.
pub fn canary() -> Dashboard {
    use metrics::HTTP_SERVER_REQUEST_DURATION as H;
    let svc = [(labels::SERVICE, "$service")];
    let count = sel(&H.count(), &svc);
    let errors = sel(
        &H.count(),
        &[(labels::SERVICE, "$service"), (labels::STATUS_CLASS, "5xx")],
    );
    let bucket = sel(&H.bucket(), &svc);
    let v = labels::VERSION;
    let mut b = Builder::new();
    b.row("Stable vs canary");
    b.add(8, 8, PanelSpec::timeseries("Traffic share", "percentunit").query(format!("sum by ({v}) (rate({count}[$__rate_interval])) / ignoring({v}) group_left sum(rate({count}[$__rate_interval]))"), "{{version}}").range(0.0, 1.0));
    b.add(8, 8, PanelSpec::timeseries("5xx share", "percentunit").query(format!("sum by ({v}) (rate({errors}[$__rate_interval])) / sum by ({v}) (rate({count}[$__rate_interval]))"), "{{version}}"));
    b.add(
        8,
        8,
        PanelSpec::timeseries("p99 latency", "s").query(
            format!(
                "histogram_quantile(0.99, sum by (le, {v}) (rate({bucket}[$__rate_interval])))"
            ),
            "{{version}}",
        ),
    );
    b.row("Requests");
    b.add(
        24,
        8,
        PanelSpec::timeseries("Requests per second", "reqps").query(
            format!(
                "sum by ({v}, {}) (rate({count}[$__rate_interval]))",
                labels::STATUS_CLASS
            ),
            "{{version}} {{status_class}}",
        ),
    );
    // What the observer's canary controller decided (docs/canary.md).
    let c = labels::CANARY;
    b.row("Canary controller");
    b.add(
        8,
        8,
        PanelSpec::timeseries("Canary weight", "percent")
            .query(
                format!("max by ({c}) ({})", metrics::CANARY_WEIGHT.name),
                "{{canary}}",
            )
            .range(0.0, 100.0),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Sequential tests vs rollback boundary", "short")
            .query(
                format!(
                    "max by ({c}, {}) ({})",
                    labels::TEST,
                    metrics::CANARY_LOG_LIKELIHOOD_RATIO.name
                ),
                "{{canary}} {{test}}",
            )
            .query(
                format!("max by ({c}) ({})", metrics::CANARY_ROLLBACK_BOUNDARY.name),
                "{{canary}} rollback boundary",
            ),
    );
    b.add(
        8,
        8,
        PanelSpec::timeseries("Decisions", "short").query(
            format!(
                "sum by ({c}, {}) (increase({}[$__rate_interval]))",
                labels::VERDICT,
                metrics::CANARY_DECISIONS.series()
            ),
            "{{canary}} {{verdict}}",
        ),
    );
    let mut vars = vec![label_variable("service", "Service", &H.count())];
    vars[0].query = format!("label_values({}, {})", H.count(), labels::SERVICE);
    let _ = services::COMMAND;
    dashboard(
        "canary",
        "Canary vs stable",
        "Canary and stable builds compared under the same live traffic (label `version`).",
        &["canary", "generated"],
        "utc",
        b.finish(),
        vars,
    )
}

/// One panel per operational alert (alerts sharing a panel title share the
/// panel), described with the alert it belongs to.
pub fn operations(t: &crate::ops::Thresholds) -> Dashboard {
    // (title, unit, queries, alerts) in alert order; alerts sharing a title share the panel.
    type OpsPanel = (String, &'static str, Vec<(String, String)>, Vec<String>);
    let mut panels: Vec<OpsPanel> = Vec::new();
    for a in crate::ops::alerts(t) {
        let what = format!("{} ({}): `{}`", a.name, a.severity.as_str(), a.expr);
        let q = (a.panel.expr.clone(), a.panel.legend.clone());
        match panels.iter_mut().find(|p| p.0 == a.panel.title) {
            Some(p) => {
                if !p.2.contains(&q) {
                    p.2.push(q);
                }
                p.3.push(what);
            }
            None => panels.push((a.panel.title.clone(), a.panel.unit, vec![q], vec![what])),
        }
    }
    let mut b = Builder::new();
    b.row("Operational alerts (docs/runbook.md)");
    for (title, unit, queries, alerts) in panels {
        let mut spec = PanelSpec::timeseries(title, unit);
        for (expr, legend) in queries {
            spec = spec.query(expr, legend);
        }
        b.add(
            8,
            8,
            spec.describe(format!("Alerts: {}", alerts.join("; "))),
        );
    }
    dashboard(
        "operations",
        "Operations",
        "What the operational alerts watch: observer and scrape targets, DLQ, outbox, breakers, consumer-group status, uptime probes, certificates and Alertmanager.",
        &["operations", "generated"],
        "utc",
        b.finish(),
        vec![],
    )
}

/// All dashboards by file name; `prices` is the cost view's table (`slo/cost.yaml`).
pub fn all(
    slos: &[Slo],
    thresholds: &crate::ops::Thresholds,
    prices: &Prices,
) -> Result<BTreeMap<String, String>, crate::Error> {
    let mut out = BTreeMap::new();
    out.insert("slo-overview.json".into(), json(&overview(slos))?);
    let mut by_service: BTreeMap<&str, Vec<&Slo>> = BTreeMap::new();
    for s in slos {
        by_service.entry(&s.service).or_default().push(s);
    }
    for (svc, list) in by_service {
        out.insert(format!("slo-{svc}.json"), json(&detail(svc, &list))?);
    }
    out.insert("service-red.json".into(), json(&red())?);
    out.insert("kafka-lag.json".into(), json(&kafka())?);
    out.insert("canary.json".into(), json(&canary())?);
    out.insert("operations.json".into(), json(&operations(thresholds))?);
    out.insert("business.json".into(), json(&business())?);
    out.insert("infrastructure.json".into(), json(&infrastructure())?);
    out.insert("cost.json".into(), json(&cost(prices))?);
    Ok(out)
}

/// Grafana provisioning: the Prometheus datasource and a file provider that
/// loads the dashboards mounted at `/var/lib/grafana/dashboards`.
pub fn provisioning() -> Result<BTreeMap<String, String>, crate::Error> {
    #[derive(serde::Serialize)]
    struct Datasources {
        #[serde(rename = "apiVersion")]
        api_version: u32,
        datasources: Vec<Ds>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Ds {
        name: &'static str,
        uid: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
        access: &'static str,
        url: &'static str,
        is_default: bool,
        editable: bool,
        json_data: DsJson,
    }
    /// Exemplars carry `trace_id`; Grafana links them to the Tempo
    /// datasource (uid `tempo`, deploy/grafana/datasources/loki-tempo.yaml).
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct DsJson {
        exemplar_trace_id_destinations: Vec<ExemplarLink>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ExemplarLink {
        name: &'static str,
        datasource_uid: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Providers {
        #[serde(rename = "apiVersion")]
        api_version: u32,
        providers: Vec<Provider>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Provider {
        name: &'static str,
        folder: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
        disable_deletion: bool,
        allow_ui_updates: bool,
        update_interval_seconds: u32,
        options: ProviderOptions,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ProviderOptions {
        path: &'static str,
        folders_from_files_structure: bool,
    }
    let mut out = BTreeMap::new();
    out.insert(
        "datasources/prometheus.yaml".into(),
        compile::to_yaml(&Datasources {
            api_version: 1,
            datasources: vec![Ds {
                name: "Prometheus",
                uid: "prometheus",
                kind: "prometheus",
                access: "proxy",
                url: "http://prometheus:9090",
                is_default: true,
                editable: false,
                json_data: DsJson {
                    exemplar_trace_id_destinations: vec![ExemplarLink {
                        name: "trace_id",
                        datasource_uid: "tempo",
                    }],
                },
            }],
        })?,
    );
    out.insert(
        "dashboards/todo.yaml".into(),
        compile::to_yaml(&Providers {
            api_version: 1,
            providers: vec![Provider {
                name: "todo-observability",
                folder: "Todo",
                kind: "file",
                disable_deletion: true,
                allow_ui_updates: false,
                update_interval_seconds: 60,
                options: ProviderOptions {
                    path: "/var/lib/grafana/dashboards",
                    folders_from_files_structure: false,
                },
            }],
        })?,
    );
    Ok(out)
}
