//! Paging through Alertmanager's API v2.
//!
//! Each evaluation turns the SLO snapshot into the set of alerts that should
//! be firing, with exactly the labels the generated alerting rules put on
//! theirs (`alertname`, `slo`, `service`, `severity`, `tier`, the spec's extra
//! labels), so Alertmanager deduplicates the observer's alert and the rule's
//! alert into one notification. Firing alerts are re-posted every evaluation
//! with `endsAt` a few intervals ahead; an alert that stops holding is posted
//! once more with `endsAt = now` (resolved).
//!
//! A burn alert whose spec sets `alerting.page_alert.for`/`ticket_alert.for`
//! is held as pending for that long before it is posted, as Prometheus holds
//! the generated rule; its name, labels and annotations come from the same
//! spec fields as the rule's.
//!
//! When Prometheus is unreachable the SLO alerts are neither refreshed nor
//! resolved (their state is unknown) and one separate alert,
//! `ObserverPrometheusUnreachable`, is raised instead.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use slo::Slo;
use slo::model::Severity;

use crate::slos::SloSnapshot;

pub const MONITORING_ALERT: &str = "ObserverPrometheusUnreachable";

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize)]
pub struct PostableAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

#[derive(Debug, Clone)]
struct Active {
    since: DateTime<Utc>,
    annotations: BTreeMap<String, String>,
    /// SLO alerts are held (not resolved) while the backend is down.
    is_slo: bool,
}

pub use observer_api::alerts::ActiveAlertView;

pub struct Pager {
    http: reqwest::Client,
    /// Guards posts to Alertmanager (set by the application).
    pub breaker: Option<std::sync::Arc<telemetry::retry::CircuitBreaker>>,
    url: Option<String>,
    generator_url: String,
    monitoring_severity: String,
    active: HashMap<Labels, Active>,
    /// Burn alerts whose condition holds but whose `for` has not elapsed yet.
    pending: HashMap<Labels, DateTime<Utc>>,
}

/// The spec's `for` of the burn alert with these labels (by `slo`, `severity`, `tier`).
fn hold_for(slos: &[Slo], labels: &Labels) -> Option<chrono::Duration> {
    let slo = slos.iter().find(|s| labels.get("slo") == Some(&s.name))?;
    let sev = match labels.get("severity").map(String::as_str) {
        Some("page") => Severity::Page,
        Some("ticket") => Severity::Ticket,
        _ => return None,
    };
    let tier = slo
        .alerting
        .tiers
        .iter()
        .find(|t| t.severity == sev && labels.get("tier") == Some(&t.number.to_string()))?;
    let d = slo.alerting.hold(tier)?;
    chrono::Duration::from_std(Duration::from_secs(d.as_secs())).ok()
}

/// Applies `for`: keeps out of `want` the alerts not yet active whose
/// condition has held for less than their `for` (as Prometheus' pending
/// state), recording in `pending` since when each holds. A pending alert
/// whose condition stops holding starts over, unless the backend is down
/// (its state is unknown then).
fn apply_for(
    want: &mut BTreeMap<Labels, BTreeMap<String, String>>,
    pending: &mut HashMap<Labels, DateTime<Utc>>,
    active: &HashMap<Labels, Active>,
    slos: &[Slo],
    now: DateTime<Utc>,
    backend_up: bool,
) {
    if backend_up {
        pending.retain(|l, _| want.contains_key(l));
    }
    want.retain(|labels, _| {
        if active.contains_key(labels) {
            return true;
        }
        let Some(hold) = hold_for(slos, labels) else {
            return true;
        };
        let since = *pending.entry(labels.clone()).or_insert(now);
        if now - since >= hold {
            pending.remove(labels);
            true
        } else {
            false
        }
    });
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alerts that should be firing for this snapshot: labels → annotations.
pub fn desired(
    snap: &SloSnapshot,
    slos: &[Slo],
    monitoring_severity: &str,
) -> BTreeMap<Labels, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if snap.backend.status != "up" {
        let mut l = Labels::new();
        l.insert("alertname".into(), MONITORING_ALERT.into());
        l.insert(
            "service".into(),
            contracts::metrics::services::OBSERVER.into(),
        );
        l.insert("severity".into(), monitoring_severity.into());
        l.insert("component".into(), "slo-evaluation".into());
        let mut a = BTreeMap::new();
        a.insert(
            "summary".into(),
            "The observer cannot query Prometheus: SLOs are not being evaluated".into(),
        );
        a.insert(
            "description".into(),
            format!(
                "Prometheus at {} does not answer ({}). This is a monitoring outage, not an SLO burn: SLO alerts are held until it is back.",
                snap.backend.url,
                snap.backend.error.clone().unwrap_or_default()
            ),
        );
        out.insert(l, a);
        return out;
    }
    for view in &snap.slos {
        let Some(slo) = slos.iter().find(|s| s.name == view.name) else {
            continue;
        };
        for f in &view.firing {
            let sev = if f.severity == "page" {
                Severity::Page
            } else {
                Severity::Ticket
            };
            let mut l = Labels::new();
            l.insert("slo".into(), slo.name.clone());
            l.insert("service".into(), slo.service.clone());
            l.extend(slo.labels.clone());
            // `page_alert`/`ticket_alert` labels, as on the generated rule
            l.extend(slo.alerting.meta(sev).labels.clone());
            l.insert("severity".into(), f.severity.clone());
            l.insert("tier".into(), f.tier.to_string());
            l.insert("alertname".into(), f.alertname.clone());
            let tiers: Vec<&slo::model::Tier> = slo
                .alerting
                .tiers
                .iter()
                .filter(|t| t.severity == sev)
                .collect();
            // The same annotations as the generated rule, runbook link included.
            let mut annotations = slo::compile::burn_annotations(slo, &tiers, sev);
            annotations.insert(
                "runbook_url".into(),
                slo::ops::runbook_url(slo::compile::DEFAULT_RUNBOOK_BASE, &f.alertname),
            );
            out.insert(l, annotations);
        }
    }
    out
}

impl Pager {
    pub fn new(
        url: Option<String>,
        generator_url: String,
        monitoring_severity: String,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            url: url.map(|u| u.trim_end_matches('/').to_string()),
            breaker: None,
            generator_url,
            monitoring_severity,
            active: HashMap::new(),
            pending: HashMap::new(),
        })
    }

    pub fn active(&self) -> Vec<ActiveAlertView> {
        let mut v: Vec<ActiveAlertView> = self
            .active
            .iter()
            .map(|(l, a)| ActiveAlertView {
                labels: l.clone(),
                since: ts(a.since),
            })
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// Reconcile with Alertmanager after an evaluation. `valid_for` is how
    /// long a firing alert stays firing without a refresh.
    pub async fn reconcile(&mut self, snap: &SloSnapshot, slos: &[Slo], valid_for: Duration) {
        let now = Utc::now();
        let backend_up = snap.backend.status == "up";
        let mut want = desired(snap, slos, &self.monitoring_severity);
        apply_for(
            &mut want,
            &mut self.pending,
            &self.active,
            slos,
            now,
            backend_up,
        );
        let ends =
            now + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::minutes(5));
        let mut batch = Vec::new();
        let mut next: HashMap<Labels, Active> = HashMap::new();
        for (labels, annotations) in &want {
            let since = self.active.get(labels).map_or(now, |a| a.since);
            batch.push(PostableAlert {
                labels: labels.clone(),
                annotations: annotations.clone(),
                starts_at: ts(since),
                ends_at: ts(ends),
                generator_url: self.generator_url.clone(),
            });
            next.insert(
                labels.clone(),
                Active {
                    since,
                    annotations: annotations.clone(),
                    is_slo: labels.get("alertname").map(String::as_str) != Some(MONITORING_ALERT),
                },
            );
        }
        let mut resolved = Vec::new();
        for (labels, a) in &self.active {
            if want.contains_key(labels) {
                continue;
            }
            if a.is_slo && !backend_up {
                // Unknown while Prometheus is down: hold, neither refresh nor resolve.
                next.insert(labels.clone(), a.clone());
                continue;
            }
            resolved.push((labels.clone(), a.clone()));
            batch.push(PostableAlert {
                labels: labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: ts(a.since),
                ends_at: ts(now),
                generator_url: self.generator_url.clone(),
            });
        }
        for (labels, _) in &resolved {
            tracing::info!(alert = ?labels, "alert resolved");
        }
        for labels in want.keys() {
            if !self.active.contains_key(labels) {
                tracing::warn!(alert = ?labels, "alert firing");
            }
        }
        let Some(url) = &self.url else {
            self.active = next;
            return;
        };
        if batch.is_empty() {
            self.active = next;
            return;
        }
        let posted = match self.breaker.as_ref().map(|b| b.check()).transpose() {
            Err(open) => Err(open.to_string()),
            Ok(permit) => {
                let r = self
                    .http
                    .post(format!("{url}/api/v2/alerts"))
                    .json(&batch)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| e.to_string());
                if let Some(p) = permit {
                    p.record(r.is_ok());
                }
                r
            }
        };
        match posted {
            Ok(_) => self.active = next,
            Err(e) => {
                tracing::warn!(error = %e, "posting alerts to Alertmanager failed; retrying next evaluation");
                // Keep the resolved ones so the resolve is retried.
                for (labels, a) in resolved {
                    next.insert(labels, a);
                }
                self.active = next;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::slos::{Backend, FiringTier, SloSnapshot, SloState, SloView};

    fn view(slo: &Slo, firing: Vec<FiringTier>) -> SloView {
        SloView {
            name: slo.name.clone(),
            service: slo.service.clone(),
            objective: slo.objective,
            period: slo.window.words(),
            sli_kind: slo.sli.kind_name().into(),
            state: SloState::Burning,
            sli: None,
            period_error_ratio: None,
            budget_remaining: None,
            time_to_exhaustion_seconds: None,
            windows: Vec::new(),
            firing,
            error: None,
        }
    }

    fn snapshot(status: &'static str, slos: Vec<SloView>) -> SloSnapshot {
        SloSnapshot {
            evaluated_at: 0.0,
            backend: Backend {
                status: status.into(),
                url: "http://prom".into(),
                error: None,
            },
            slos,
        }
    }

    /// The observer's alert carries exactly the labels Prometheus puts on the
    /// generated rule's alert (rule labels + `alertname` + `tier`), so
    /// Alertmanager sees one alert, whoever sent it.
    #[test]
    fn labels_equal_the_generated_rules_alert_labels() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../slo");
        let slos = slo::validate::load_dir(&root).expect("specs");
        assert_parity(&slos);
    }

    /// A spec naming its alerts (one name for both, as Sloth and Pyrra do)
    /// and setting their labels, annotations and `for`.
    const NAMED: &str = r##"
service: command-service
labels:
  team: todo
slos:
  - name: api-availability
    objective: 0.999
    window:
      rolling: 30d
    sli:
      availability:
        matchers:
          service: command-service
    alerting:
      page_alert:
        name: MyServiceHighErrorRate
        for: 5m
        labels:
          routing_key: myteam
        annotations:
          summary: High error rate
      ticket_alert:
        name: MyServiceHighErrorRate
        labels:
          slack_channel: "#alerts"
        annotations:
          runbook: https://example.org/rb
"##;

    #[test]
    fn named_alerts_carry_the_rules_name_labels_and_annotations() {
        let slos = slo::validate::parse_str("named.yaml", NAMED).expect("spec");
        assert_parity(&slos);
        let s = &slos[0];
        for sev in [Severity::Page, Severity::Ticket] {
            assert_eq!(
                slo::compile::burn_alert_name(s, sev),
                "MyServiceHighErrorRate"
            );
        }
        let page_tier = s.alerting.tiers[0].clone();
        let got = desired(
            &snapshot(
                "up",
                vec![view(
                    s,
                    vec![FiringTier {
                        tier: page_tier.number,
                        severity: "page".into(),
                        alertname: slo::compile::burn_alert_name(s, Severity::Page),
                    }],
                )],
            ),
            &slos,
            "ticket",
        );
        let (labels, annotations) = got.into_iter().next().expect("one");
        assert_eq!(labels["alertname"], "MyServiceHighErrorRate");
        assert_eq!(labels["routing_key"], "myteam");
        assert!(!labels.contains_key("slack_channel"));
        assert_eq!(annotations["summary"], "High error rate");
    }

    /// Tiers with their own `for` (as Pyrra's): one rule per `for`, and the
    /// observer's alert of each tier matches its rule.
    #[test]
    fn per_tier_for_matches_the_split_rules() {
        let text = "service: a\nslos:\n  - name: x\n    objective: 0.999\n    window: {rolling: 30d}\n    sli:\n      ratio:\n        bad: {metric: e_total}\n        total: {metric: t_total}\n    alerting:\n      page_alert: {for: 1m}\n      tiers:\n        - {severity: page, factor: 14.4, long: 1h, short: 5m, for: 2m}\n        - {severity: page, factor: 6, long: 6h, short: 30m}\n        - {severity: ticket, factor: 3, long: 1d, short: 2h, for: 1h}\n";
        let slos = slo::validate::parse_str("a.yaml", text).expect("spec");
        let rules = slo::compile::rules_for_slo(&slos[0]).rules;
        let fors: Vec<Option<String>> = rules
            .iter()
            .filter(|r| r.alert.as_deref().is_some_and(|a| a.contains("BurnRate")))
            .map(|r| r.for_.clone())
            .collect();
        assert_eq!(
            fors,
            [Some("2m"), Some("1m"), Some("1h")].map(|f| f.map(String::from))
        );
        assert_parity(&slos);
    }

    /// `page_alert.for: 5m` holds the observer's page as the rule's `for` does.
    #[test]
    fn for_holds_the_page_until_it_elapsed() {
        let slos = slo::validate::parse_str("named.yaml", NAMED).expect("spec");
        let s = &slos[0];
        let firing = |sev: Severity, tier: u32| FiringTier {
            tier,
            severity: sev.as_str().into(),
            alertname: slo::compile::burn_alert_name(s, sev),
        };
        let page_tier = s.alerting.tiers[0].number;
        let ticket_tier = s
            .alerting
            .tiers
            .iter()
            .find(|t| t.severity == Severity::Ticket)
            .expect("ticket tier")
            .number;
        let snap = snapshot(
            "up",
            vec![view(
                s,
                vec![
                    firing(Severity::Page, page_tier),
                    firing(Severity::Ticket, ticket_tier),
                ],
            )],
        );
        let t0 = Utc::now();
        let mut pending = HashMap::new();
        let active = HashMap::new();
        let sevs = |w: &BTreeMap<Labels, BTreeMap<String, String>>| {
            w.keys().map(|l| l["severity"].clone()).collect::<Vec<_>>()
        };
        let at = |mins: i64, pending: &mut HashMap<Labels, DateTime<Utc>>, snap: &SloSnapshot| {
            let mut want = desired(snap, &slos, "ticket");
            apply_for(
                &mut want,
                pending,
                &active,
                &slos,
                t0 + chrono::Duration::minutes(mins),
                true,
            );
            want
        };
        // the ticket has no `for`: at once; the page after 5 minutes
        assert_eq!(sevs(&at(0, &mut pending, &snap)), ["ticket"]);
        assert_eq!(sevs(&at(4, &mut pending, &snap)), ["ticket"]);
        assert_eq!(sevs(&at(5, &mut pending, &snap)), ["page", "ticket"]);
        // a condition that stops holding starts over
        let mut pending = HashMap::new();
        at(0, &mut pending, &snap);
        at(3, &mut pending, &snapshot("up", vec![view(s, vec![])]));
        assert_eq!(sevs(&at(6, &mut pending, &snap)), ["ticket"]);
        assert_eq!(sevs(&at(11, &mut pending, &snap)), ["page", "ticket"]);
    }

    /// For every tier of every SLO, the observer's alert has the labels and
    /// annotations Prometheus puts on the generated rule's alert.
    fn assert_parity(slos: &[Slo]) {
        for s in slos {
            let group = slo::compile::rules_for_slo(s);
            for tier in &s.alerting.tiers {
                let alertname = slo::compile::burn_alert_name(s, tier.severity);
                // page and ticket may share a name: the rule of this severity
                let rule = group
                    .rules
                    .iter()
                    .find(|r| {
                        r.alert.as_deref() == Some(alertname.as_str())
                            && r.labels.get("severity").map(String::as_str)
                                == Some(tier.severity.as_str())
                            && r.expr.contains(&format!("\"tier\", \"{}\"", tier.number))
                    })
                    .expect("rule");
                assert_eq!(
                    rule.for_,
                    s.alerting.hold(tier).map(|d| d.prom()),
                    "{}",
                    s.name
                );
                let mut want = rule.labels.clone();
                want.insert("alertname".into(), alertname.clone());
                want.insert("tier".into(), tier.number.to_string());
                let snap = snapshot(
                    "up",
                    vec![view(
                        s,
                        vec![FiringTier {
                            tier: tier.number,
                            severity: tier.severity.as_str().into(),
                            alertname: alertname.clone(),
                        }],
                    )],
                );
                let got = desired(&snap, slos, "ticket");
                assert_eq!(got.len(), 1);
                let (labels, annotations) = got.into_iter().next().expect("one");
                assert_eq!(labels, want, "{}", s.name);
                assert_eq!(annotations, rule.annotations, "{}", s.name);
            }
        }
    }

    #[test]
    fn backend_down_raises_only_the_monitoring_alert() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../slo");
        let slos = slo::validate::load_dir(&root).expect("specs");
        let got = desired(&snapshot("down", Vec::new()), &slos, "ticket");
        assert_eq!(got.len(), 1);
        let labels = got.keys().next().expect("one");
        assert_eq!(labels["alertname"], MONITORING_ALERT);
        assert_eq!(labels["severity"], "ticket");
        assert!(!labels.contains_key("slo"));
    }
}
