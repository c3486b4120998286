//! Alertmanager routing generated from the same SLOs: severity routes,
//! grouping by SLO, inhibition of lower tiers while a higher one fires, and
//! the operational inhibitions (`ops::inhibitions`: observer down explains
//! the alerts computed from its metrics).

use serde::Serialize;

use crate::model::Slo;

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

#[derive(Debug, Serialize)]
pub struct Receiver {
    pub name: String,
    pub webhook_configs: Vec<Webhook>,
}

#[derive(Debug, Serialize)]
pub struct Webhook {
    pub url: String,
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

/// Placeholder webhook URLs on localhost: replace them with your pager and
/// ticketing integrations (the local stack points them at the observer).
pub const ONCALL_URL: &str = "http://127.0.0.1:9095/alerts/oncall";
pub const TICKET_URL: &str = "http://127.0.0.1:9095/alerts/ticket";

pub fn config(slos: &[Slo]) -> Config {
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
        receivers: vec![
            Receiver {
                name: ONCALL.into(),
                webhook_configs: vec![Webhook {
                    url: ONCALL_URL.into(),
                    send_resolved: true,
                }],
            },
            Receiver {
                name: TICKET.into(),
                webhook_configs: vec![Webhook {
                    url: TICKET_URL.into(),
                    send_resolved: true,
                }],
            },
        ],
        inhibit_rules: inhibit,
    }
}
