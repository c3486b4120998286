//! Operational alerts: what can break outside the SLOs (the observer, scrape
//! targets, the DLQ, the outbox, breakers, consumer groups, uptime probes,
//! certificates, Alertmanager itself). One [`OpsAlert`] per alert is the
//! single definition from which the rule (`alerts/operations.rules.yaml`),
//! its promtool test (`alerts/tests/operations.test.yaml`), its dashboard
//! panel (`dashboards/operations.json`) and the Alertmanager inhibitions are
//! generated; docs/runbook.md has a section per alert (checked by a test).

use std::collections::BTreeMap;

use contracts::metrics::{self, labels};

use crate::compile::{self, Rule, RuleFile, RuleGroup, num};
use crate::duration::Dur;
use crate::model::Severity;

/// Thresholds of the operational alerts. Defaults are what the platform
/// runs with; docs/slo-spec.md ("Operational alerts") explains each.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Prometheus job that scrapes the observer.
    pub observer_job: String,
    /// How long a scrape target (or the observer) must be down.
    pub down_for: Dur,
    /// DLQ records per minute that page when sustained for `dlq_page_for`.
    pub dlq_page_per_minute: f64,
    pub dlq_page_for: Dur,
    /// The command service's `shed_outbox_backlog` (its default): writes
    /// are refused above this many unsent outbox rows.
    pub outbox_shed_bound: f64,
    /// Share of the shedding bound at which a growing backlog pages.
    pub outbox_share: f64,
    pub outbox_for: Dur,
    /// How long a breaker may stay open (or half-open) before it pages.
    pub breaker_open_for: Dur,
    pub lag_stall_for: Dur,
    pub probe_for: Dur,
    pub cert_expiry_days: u64,
    pub notifications_failing_for: Dur,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            observer_job: "observer".into(),
            down_for: Dur::mins(5),
            dlq_page_per_minute: 1.0,
            dlq_page_for: Dur::mins(15),
            outbox_shed_bound: 50_000.0,
            outbox_share: 0.5,
            outbox_for: Dur::mins(5),
            breaker_open_for: Dur::mins(10),
            lag_stall_for: Dur::mins(5),
            probe_for: Dur::mins(2),
            cert_expiry_days: 14,
            notifications_failing_for: Dur::mins(10),
        }
    }
}

/// One scenario of an alert's promtool test: input series sampled every
/// minute, and the minutes at which the alert must start and stop firing.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub what: String,
    pub series: Vec<(String, String)>,
    /// Labels of the firing alert besides `alertname` and the rule's labels.
    pub labels: BTreeMap<String, String>,
    pub fires_at: u64,
    /// Last minute checked as still firing (counters over a range keep an
    /// alert up for the range after the last increase).
    pub last_firing: u64,
    pub resolved_at: u64,
}

#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub unit: &'static str,
    pub expr: String,
    pub legend: String,
}

#[derive(Debug, Clone)]
pub struct OpsAlert {
    pub name: &'static str,
    pub severity: Severity,
    pub expr: String,
    pub for_: Dur,
    /// May use `{{ $labels.x }}` for labels the expression keeps.
    pub summary: String,
    pub description: String,
    /// Evaluated on metrics only the observer exports: inhibited while the
    /// observer is down.
    pub from_observer: bool,
    pub panel: Panel,
    pub schedules: Vec<Schedule>,
}

/// `alerts/operations.rules.yaml`, its test and its PrometheusRule.
pub const RULE_FILE: &str = "operations";

pub const OBSERVER_DOWN: &str = "ObserverDown";
pub const TARGET_DOWN: &str = "TargetDown";
pub const DLQ_RECORDS: &str = "DlqRecords";
pub const DLQ_RECORDS_SUSTAINED: &str = "DlqRecordsSustained";

fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mins(d: Dur) -> u64 {
    d.as_secs() / 60
}

/// Every operational alert, in runbook order.
pub fn alerts(t: &Thresholds) -> Vec<OpsAlert> {
    use metrics::*;
    let job = &t.observer_job;
    let down = mins(t.down_for);
    let up_obs = format!("up{{job=\"{job}\"}}");
    let obs_instance = format!("{job}:8080");
    let dlq = DLQ_MESSAGES.series();
    let (svc, topic) = (labels::SERVICE, labels::TOPIC);
    // `topic` is the source topic the record came from (bus::dlq).
    let dlq_labels = l(&[(svc, "event-processor"), (topic, "todo-events")]);
    let dlq_series = format!(
        "{dlq}{{service=\"event-processor\",topic=\"todo-events\",reason=\"handler-failed\",version=\"stable\"}}"
    );
    // DLQ page: ten times the threshold per minute from minute 11 to 50.
    let dlq_step = t.dlq_page_per_minute * 10.0;
    let outbox_bound = t.outbox_shed_bound * t.outbox_share;
    let outbox_step = t.outbox_shed_bound / 25.0;
    let outbox_first = 10 + (outbox_bound / outbox_step).floor() as u64 + 1;
    let cert_bound = t.cert_expiry_days * 86_400;
    let breaker = CIRCUIT_BREAKER_STATE.name;
    let status = CONSUMER_GROUP_STATUS.name;
    let backlog = OUTBOX_BACKLOG.name;
    [
        OpsAlert {
            name: OBSERVER_DOWN,
            severity: Severity::Page,
            expr: format!("{up_obs} == 0 or absent({up_obs})"),
            for_: t.down_for,
            summary: "The observer is down or not scraped".into(),
            description: format!("Prometheus has not scraped the observer (job {job}) for {}: consumer-lag metrics, lag status, native SLO evaluation, the status page and the canary controller are gone. Alerts derived from its metrics are inhibited meanwhile.", t.down_for.words()),
            from_observer: false,
            panel: Panel {
                title: "Observer up".into(),
                unit: "short",
                expr: format!("max({up_obs}) or vector(0)"),
                legend: "observer".into(),
            },
            schedules: Vec::from([
                Schedule {
                    what: "the observer's scrape fails from minute 10 to 29".into(),
                    series: Vec::from([(format!("up{{job=\"{job}\",instance=\"{obs_instance}\"}}"), "1x9 0x19 1x20".into())]),
                    labels: l(&[("job", job), ("instance", &obs_instance)]),
                    fires_at: 10 + down,
                    last_firing: 29,
                    resolved_at: 30,
                },
                Schedule {
                    what: "no observer target at all until minute 20".into(),
                    series: Vec::from([("up{job=\"query-service\",instance=\"query-service:8080\"}".into(), "1x40".into()), (format!("up{{job=\"{job}\",instance=\"{obs_instance}\"}}"), "_x20 1x20".into())]),
                    labels: l(&[("job", job)]),
                    fires_at: down,
                    last_firing: 19,
                    resolved_at: 20,
                },
            ]),
        },
        OpsAlert {
            name: TARGET_DOWN,
            severity: Severity::Ticket,
            expr: "up == 0".into(),
            for_: t.down_for,
            summary: "Scrape target {{ $labels.job }} / {{ $labels.instance }} is down".into(),
            description: format!("Prometheus could not scrape {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) for {}. Its metrics, and any SLO built on them, are blind.", t.down_for.words()),
            from_observer: false,
            panel: Panel {
                title: "Scrape targets down".into(),
                unit: "short",
                expr: "count by (job) (up == 0) or vector(0)".into(),
                legend: "{{job}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "query-service is unreachable from minute 10 to 29".into(),
                series: Vec::from([("up{job=\"query-service\",instance=\"query-service:8080\"}".into(), "1x9 0x19 1x20".into())]),
                labels: l(&[("job", "query-service"), ("instance", "query-service:8080")]),
                fires_at: 10 + down,
                last_firing: 29,
                resolved_at: 30,
            }]),
        },
        OpsAlert {
            name: DLQ_RECORDS,
            severity: Severity::Ticket,
            expr: format!("sum by ({svc}, {topic}) (increase({dlq}[10m])) > 0"),
            for_: Dur::secs(0),
            summary: "{{ $labels.service }} dead-lettered records from {{ $labels.topic }}".into(),
            description: "{{ $labels.service }} gave up on at least one record of {{ $labels.topic }} in the last 10 minutes and sent it to the dead-letter topic. A dead-lettered record is a todo change the read model or the notifications never saw.".into(),
            from_observer: false,
            panel: Panel {
                title: "Dead-lettered records per minute".into(),
                unit: "short",
                expr: format!("sum by ({svc}, {topic}) (rate({dlq}[$__rate_interval])) * 60"),
                legend: "{{service}} → {{topic}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "one record dead-lettered at minute 10".into(),
                series: Vec::from([(dlq_series.clone(), "0x9 1x40".into())]),
                labels: dlq_labels.clone(),
                fires_at: 10,
                last_firing: 18,
                resolved_at: 20,
            }]),
        },
        OpsAlert {
            name: DLQ_RECORDS_SUSTAINED,
            severity: Severity::Page,
            expr: format!("sum by ({svc}, {topic}) (rate({dlq}[5m])) * 60 > {}", num(t.dlq_page_per_minute)),
            for_: t.dlq_page_for,
            summary: "{{ $labels.service }} dead-letters records continuously".into(),
            description: format!("{{{{ $labels.service }}}} has dead-lettered more than {} record(s) of {{{{ $labels.topic }}}} per minute for {}: a producer or a handler rejects everything it sees.", num(t.dlq_page_per_minute), t.dlq_page_for.words()),
            from_observer: false,
            panel: Panel {
                title: "Dead-lettered records per minute".into(),
                unit: "short",
                expr: format!("sum by ({svc}, {topic}) (rate({dlq}[5m])) * 60"),
                legend: "{{service}} → {{topic}} (5m)".into(),
            },
            schedules: Vec::from([Schedule {
                what: format!("{} records per minute from minute 11 to 50", num(dlq_step)),
                series: Vec::from([(dlq_series, format!("0x10 {}+{}x39 {}x30", num(dlq_step), num(dlq_step), num(dlq_step * 40.0)))]),
                labels: dlq_labels,
                fires_at: 11 + mins(t.dlq_page_for),
                last_firing: 53,
                resolved_at: 55,
            }]),
        },
        OpsAlert {
            name: "OutboxBacklogNearShedding",
            severity: Severity::Page,
            expr: format!("max by ({svc}) ({backlog}) > {} and max by ({svc}) (deriv({backlog}[10m])) > 0", num(outbox_bound)),
            for_: t.outbox_for,
            summary: "{{ $labels.service }}: outbox backlog growing toward the shedding bound".into(),
            description: format!("More than {} events wait in the outbox of {{{{ $labels.service }}}} and the backlog keeps growing; at {} (shed_outbox_backlog) writes are refused with 503. The relay cannot publish to Kafka.", num(outbox_bound), num(t.outbox_shed_bound)),
            from_observer: false,
            panel: Panel {
                title: "Outbox backlog vs shedding bound".into(),
                unit: "short",
                expr: format!("max by ({svc}) ({backlog})"),
                legend: "{{service}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: format!("the backlog grows by {} per minute from minute 11 and drains at minute 36", num(outbox_step)),
                series: Vec::from([(format!("{backlog}{{service=\"command-service\",version=\"stable\"}}"), format!("0x10 {}+{}x24 0x20", num(outbox_step), num(outbox_step)))]),
                labels: l(&[(svc, "command-service")]),
                fires_at: outbox_first + mins(t.outbox_for),
                last_firing: 35,
                resolved_at: 36,
            }]),
        },
        OpsAlert {
            name: "CircuitBreakerOpen",
            severity: Severity::Page,
            expr: format!("max by ({svc}, {dep}) ({breaker}) > 0", dep = labels::DEPENDENCY),
            for_: t.breaker_open_for,
            summary: "{{ $labels.service }}: breaker to {{ $labels.dependency }} open".into(),
            description: format!("The circuit breaker of {{{{ $labels.service }}}} in front of {{{{ $labels.dependency }}}} has not closed for {} (open, or half-open probes keep failing): calls to it are refused.", t.breaker_open_for.words()),
            from_observer: false,
            panel: Panel {
                title: "Circuit breakers (0 closed, 1 half-open, 2 open)".into(),
                unit: "short",
                expr: format!("max by ({svc}, {dep}) ({breaker})", dep = labels::DEPENDENCY),
                legend: "{{service}} → {{dependency}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "the Postgres breaker opens at minute 10, probes half-open at 15, closes at 32".into(),
                series: Vec::from([(format!("{breaker}{{service=\"command-service\",dependency=\"postgres\",version=\"stable\"}}"), "0x9 2x4 1 2x15 0x20".into())]),
                labels: l(&[(svc, "command-service"), (labels::DEPENDENCY, "postgres")]),
                fires_at: 10 + mins(t.breaker_open_for),
                last_firing: 31,
                resolved_at: 32,
            }]),
        },
        OpsAlert {
            name: "ConsumerGroupStalled",
            severity: Severity::Page,
            expr: format!("max by ({g}) ({status}{{{s}=~\"STALL|STOP\"}}) == 1", g = labels::GROUP, s = labels::STATUS),
            for_: t.lag_stall_for,
            summary: "Consumer group {{ $labels.group }} is stalled or stopped".into(),
            description: format!("The observer has rated consumer group {{{{ $labels.group }}}} STALL (committing no progress while lag grows) or STOP (lag grows and nothing commits) for {}.", t.lag_stall_for.words()),
            from_observer: true,
            panel: Panel {
                title: "Consumer groups in STALL or STOP".into(),
                unit: "short",
                expr: format!("max by ({g}, {s}) ({status}{{{s}=~\"STALL|STOP\"}})", g = labels::GROUP, s = labels::STATUS),
                legend: "{{group}} {{status}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "query-service is STALL from minute 10 to 29".into(),
                series: Vec::from([(format!("{status}{{group=\"query-service\",status=\"STALL\"}}"), "0x9 1x19 0x20".into()), (format!("{status}{{group=\"query-service\",status=\"OK\"}}"), "1x9 0x19 1x20".into())]),
                labels: l(&[(labels::GROUP, "query-service")]),
                fires_at: 10 + mins(t.lag_stall_for),
                last_firing: 29,
                resolved_at: 30,
            }]),
        },
        OpsAlert {
            name: "ProbeFailing",
            severity: Severity::Page,
            expr: "probe_success == 0".into(),
            for_: t.probe_for,
            summary: "Uptime probe of {{ $labels.instance }} failing".into(),
            description: format!("The blackbox exporter's probe of {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) has failed for {}: users cannot reach that endpoint.", t.probe_for.words()),
            from_observer: false,
            panel: Panel {
                title: "Uptime probes".into(),
                unit: "short",
                expr: "min by (instance) (probe_success)".into(),
                legend: "{{instance}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "the gateway's /healthz fails from minute 10 to 19".into(),
                series: Vec::from([("probe_success{job=\"blackbox-http\",instance=\"http://haproxy:8080/healthz\"}".into(), "1x9 0x9 1x20".into())]),
                labels: l(&[("job", "blackbox-http"), ("instance", "http://haproxy:8080/healthz")]),
                fires_at: 10 + mins(t.probe_for),
                last_firing: 19,
                resolved_at: 20,
            }]),
        },
        OpsAlert {
            name: "CertificateExpiringSoon",
            severity: Severity::Ticket,
            expr: format!("probe_ssl_earliest_cert_expiry - time() < {cert_bound}"),
            for_: Dur::mins(10),
            summary: "Certificate of {{ $labels.instance }} expires within ".to_string() + &format!("{} days", t.cert_expiry_days),
            description: format!("The earliest certificate in the chain served by {{{{ $labels.instance }}}} expires in less than {} days.", t.cert_expiry_days),
            from_observer: false,
            panel: Panel {
                title: "Days until the earliest certificate expires".into(),
                unit: "d",
                expr: "min by (instance) (probe_ssl_earliest_cert_expiry - time()) / 86400".into(),
                legend: "{{instance}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "the certificate's expiry passes the bound at minute 31; renewed at minute 60".into(),
                series: Vec::from([("probe_ssl_earliest_cert_expiry{job=\"blackbox-http\",instance=\"https://todo.example.com/healthz\"}".into(), format!("{}x59 {}x30", cert_bound + 1800, cert_bound + 90 * 86_400))]),
                labels: l(&[("job", "blackbox-http"), ("instance", "https://todo.example.com/healthz")]),
                fires_at: 41,
                last_firing: 59,
                resolved_at: 60,
            }]),
        },
        OpsAlert {
            name: "AlertmanagerNotificationsFailing",
            severity: Severity::Page,
            expr: "sum by (integration) (rate(alertmanager_notifications_failed_total[5m])) > 0".into(),
            for_: t.notifications_failing_for,
            summary: "Alertmanager cannot deliver {{ $labels.integration }} notifications".into(),
            description: format!("Alertmanager's {{{{ $labels.integration }}}} notifications have failed for {}: pages and tickets may not reach anyone.", t.notifications_failing_for.words()),
            from_observer: false,
            panel: Panel {
                title: "Alertmanager failed notifications per minute".into(),
                unit: "short",
                expr: "sum by (integration) (rate(alertmanager_notifications_failed_total[$__rate_interval])) * 60".into(),
                legend: "{{integration}}".into(),
            },
            schedules: Vec::from([Schedule {
                what: "one failed webhook delivery per minute from minute 11 to 40".into(),
                series: Vec::from([("alertmanager_notifications_failed_total{job=\"alertmanager\",instance=\"alertmanager:9093\",integration=\"webhook\"}".into(), "0x10 1+1x29 30x30".into())]),
                labels: l(&[("integration", "webhook")]),
                fires_at: 11 + mins(t.notifications_failing_for),
                last_firing: 43,
                resolved_at: 45,
            }]),
        },
    ]
    .into()
}

/// `https://…/docs/runbook.md#anchor` for an alert: GitHub's anchor of the
/// `### <AlertName>` heading is the name in lower case.
pub fn runbook_url(base: &str, alert: &str) -> String {
    format!(
        "{}/docs/runbook.md#{}",
        base.trim_end_matches('/'),
        github_anchor(alert)
    )
}

/// GitHub's heading slug: lower case, spaces to `-`, everything but
/// letters, digits, `-` and `_` dropped.
pub fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The rule file `alerts/operations.rules.yaml`.
pub fn rule_file(t: &Thresholds, runbook_base: &str) -> RuleFile {
    let rules = alerts(t)
        .into_iter()
        .map(|a| Rule {
            record: None,
            alert: Some(a.name.into()),
            expr: a.expr.clone(),
            for_: (a.for_.as_secs() > 0).then(|| a.for_.prom()),
            labels: rule_labels(&a),
            annotations: annotations(&a, runbook_base),
        })
        .collect();
    RuleFile {
        groups: vec![RuleGroup {
            name: "operations".into(),
            interval: None,
            rules,
        }],
    }
}

fn rule_labels(a: &OpsAlert) -> BTreeMap<String, String> {
    l(&[
        ("severity", a.severity.as_str()),
        ("category", "operations"),
    ])
}

fn annotations(a: &OpsAlert, runbook_base: &str) -> BTreeMap<String, String> {
    l(&[
        ("summary", &a.summary),
        ("description", &a.description),
        ("runbook_url", &runbook_url(runbook_base, a.name)),
    ])
}

/// Inhibitions: the observer down explains every alert computed from the
/// observer's metrics (its own, and the no-data alerts of consumer-lag SLOs),
/// and its own failed scrape; a sustained DLQ page covers the ticket for the
/// same topic.
pub fn inhibitions(lag_no_data_alerts: &[String]) -> Vec<crate::alertmanager::Inhibit> {
    let mut derived: Vec<String> = alerts(&Thresholds::default())
        .iter()
        .filter(|a| a.from_observer)
        .map(|a| a.name.to_string())
        .collect();
    derived.extend(lag_no_data_alerts.iter().cloned());
    let name = |n: &str| format!("alertname=\"{n}\"");
    vec![
        crate::alertmanager::Inhibit {
            source_matchers: vec![name(OBSERVER_DOWN)],
            target_matchers: vec![format!("alertname=~\"{}\"", derived.join("|"))],
            equal: vec![],
        },
        crate::alertmanager::Inhibit {
            source_matchers: vec![name(OBSERVER_DOWN)],
            target_matchers: vec![name(TARGET_DOWN)],
            equal: vec!["job".into()],
        },
        crate::alertmanager::Inhibit {
            source_matchers: vec![name(DLQ_RECORDS_SUSTAINED)],
            target_matchers: vec![name(DLQ_RECORDS)],
            equal: vec![labels::SERVICE.into(), labels::TOPIC.into()],
        },
    ]
}

/// `{{ $labels.x }}` expanded with the alert's labels, as Prometheus does.
fn expand(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    out
}

/// The promtool test `alerts/tests/operations.test.yaml`: per alert and
/// schedule, nothing just before `fires_at`, the alert at `fires_at` and
/// `last_firing`, nothing at `resolved_at`.
pub fn test_file(t: &Thresholds, runbook_base: &str) -> Result<String, crate::Error> {
    use crate::promtest::{AlertTest, ExpAlert, InputSeries, TestFile, TestGroup};
    let mut groups = Vec::new();
    for a in alerts(t) {
        for s in &a.schedules {
            let mut want = rule_labels(&a);
            want.extend(s.labels.clone());
            let ann: BTreeMap<String, String> = annotations(&a, runbook_base)
                .into_iter()
                .map(|(k, v)| (k, expand(&v, &s.labels)))
                .collect();
            let check = |m: u64, firing: bool| AlertTest {
                eval_time: format!("{m}m"),
                alertname: a.name.into(),
                exp_alerts: if firing {
                    vec![ExpAlert {
                        exp_labels: want.clone(),
                        exp_annotations: ann.clone(),
                    }]
                } else {
                    vec![]
                },
            };
            groups.push(TestGroup {
                name: format!(
                    "{}: {} — fires at {} min, resolves at {} min",
                    a.name, s.what, s.fires_at, s.resolved_at
                ),
                interval: "1m".into(),
                input_series: s
                    .series
                    .iter()
                    .map(|(series, values)| InputSeries {
                        series: series.clone(),
                        values: values.clone(),
                    })
                    .collect(),
                alert_rule_test: vec![
                    check(s.fires_at - 1, false),
                    check(s.fires_at, true),
                    check(s.last_firing, true),
                    check(s.resolved_at, false),
                ],
            });
        }
    }
    compile::to_yaml(&TestFile {
        rule_files: vec!["../operations.rules.yaml".into()],
        evaluation_interval: "1m".into(),
        tests: groups,
    })
}
