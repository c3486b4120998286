//! Alertmanager routing generated from the same SLOs: severity routes,
//! grouping by SLO, inhibition of lower tiers while a higher one fires, and
//! the operational inhibitions (`ops::inhibitions`: observer down explains
//! the alerts computed from its metrics).

use serde::Serialize;

use crate::model::Slo;
use crate::receivers::{Receivers, Target};

#[derive(Debug, Serialize)]
pub struct Config {
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<Inhibit>,
}

#[derive(Debug, Serialize)]
pub struct Route {
    pub receiver: String,
    pub group_by: Vec<String>,
    pub group_wait: String,
    pub group_interval: String,
    pub repeat_interval: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// One receiver; which integrations it has comes from `slo/receivers.yaml`
/// (`crate::receivers`).
#[derive(Debug, Default, Serialize)]
pub struct Receiver {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<Webhook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_configs: Vec<Pagerduty>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opsgenie_configs: Vec<Opsgenie>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<Slack>,
}

#[derive(Debug, Serialize)]
pub struct Webhook {
    pub url: String,
    pub send_resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpConfig>,
}

#[derive(Debug, Serialize)]
pub struct HttpConfig {
    pub authorization: Authorization,
}

/// Bearer token read from a mounted file at each request.
#[derive(Debug, Serialize)]
pub struct Authorization {
    pub credentials_file: String,
}

#[derive(Debug, Serialize)]
pub struct Pagerduty {
    pub routing_key_file: String,
    pub send_resolved: bool,
}

#[derive(Debug, Serialize)]
pub struct Opsgenie {
    pub api_key_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    pub send_resolved: bool,
}

#[derive(Debug, Serialize)]
pub struct Slack {
    pub api_url_file: String,
    pub channel: String,
    pub send_resolved: bool,
}

#[derive(Debug, Serialize)]
pub struct Inhibit {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<String>,
}

pub const ONCALL: &str = "oncall";
pub const TICKET: &str = "ticket";

/// The config of one target: routes and inhibition from the SLOs, receivers
/// from `slo/receivers.yaml`.
pub fn config_for(slos: &[Slo], receivers: &Receivers, target: &Target) -> Config {
    config(slos, receivers.render(target))
}

/// Routes and inhibition from the SLOs, with the given `oncall` and `ticket`
/// receivers.
fn config(slos: &[Slo], receivers: Vec<Receiver>) -> Config {
    let route = |receiver: &str, sev: &str, repeat: &str| Route {
        receiver: receiver.into(),
        group_by: vec!["slo".into()],
        group_wait: "30s".into(),
        group_interval: "5m".into(),
        repeat_interval: repeat.into(),
        matchers: vec![format!("severity=\"{sev}\"")],
        routes: vec![],
    };
    let max_tier = slos
        .iter()
        .flat_map(|s| s.alerting.tiers.iter().map(|t| t.number))
        .max()
        .unwrap_or(0);
    let mut inhibit = Vec::new();
    for hi in 1..max_tier {
        let lower: Vec<String> = (hi + 1..=max_tier).map(|t| t.to_string()).collect();
        inhibit.push(Inhibit {
            source_matchers: vec![format!("tier=\"{hi}\"")],
            target_matchers: vec![format!("tier=~\"{}\"", lower.join("|"))],
            equal: vec!["slo".into()],
        });
    }
    let lag_no_data: Vec<String> = slos
        .iter()
        .filter(|s| matches!(s.sli, crate::model::Sli::ConsumerLag { .. }))
        .map(crate::compile::no_data_alert_name)
        .collect();
    inhibit.extend(crate::ops::inhibitions(&lag_no_data));
    Config {
        route: Route {
            receiver: TICKET.into(),
            group_by: vec!["slo".into()],
            group_wait: "30s".into(),
            group_interval: "5m".into(),
            repeat_interval: "12h".into(),
            matchers: vec![],
            routes: vec![route(ONCALL, "page", "1h"), route(TICKET, "ticket", "12h")],
        },
        receivers,
        inhibit_rules: inhibit,
    }
}
