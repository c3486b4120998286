//! Where pages and tickets go, per deployment target (`slo/receivers.yaml`).
//!
//! Declared once; rendered into the Alertmanager receivers of every target:
//! the compose demo (`alerts/alertmanager.yml`, its pager webhook) and one
//! Kubernetes overlay each (`k8s/monitoring/secret-alertmanager-<overlay>.yaml`).
//! Kubernetes credentials are never written into a config: each is a key of
//! the Secret `kubernetes.secret`, which the Alertmanager resource mounts
//! (`spec.secrets`) at `/etc/alertmanager/secrets/<secret>/<key>`, and the
//! config names that file (`routing_key_file`, `api_key_file`,
//! `api_url_file`, `credentials_file`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::alertmanager::{
    Authorization, HttpConfig, Opsgenie, Pagerduty, Receiver, Slack, Webhook,
};
use crate::error::{Error, SpecErrors};
use crate::validate::{Ctx, check_yaml, load_side_file, valid_name};

/// File name of the receivers declaration inside the specs directory; the
/// SLO loader skips it.
pub const FILE: &str = "receivers.yaml";
/// Where the Prometheus Operator mounts the Secrets of `spec.secrets`.
pub const SECRETS_MOUNT: &str = "/etc/alertmanager/secrets";
/// Default Secret (namespace `monitoring`) holding the credentials.
pub const DEFAULT_SECRET: &str = "alertmanager-receivers";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiversFile {
    /// The compose demo and the local stack.
    pub compose: Routes,
    #[serde(default)]
    pub kubernetes: Option<Kubernetes>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    /// Secret in namespace `monitoring`, listed in the Alertmanager's `spec.secrets`.
    #[serde(default = "default_secret")]
    pub secret: String,
    /// Overlay name (`k8s/overlays/<name>`) → its routes.
    pub overlays: BTreeMap<String, Routes>,
}

fn default_secret() -> String {
    DEFAULT_SECRET.into()
}

/// The two receivers every target has: `oncall` (severity page) and `ticket`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    pub oncall: Vec<Integration>,
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    pub ticket: Vec<Integration>,
}

/// Exactly one integration per list entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Integration {
    Webhook(WebhookSpec),
    Pagerduty(PagerdutySpec),
    Opsgenie(OpsgenieSpec),
    Slack(SlackSpec),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// No credentials in it (no user info, no query string).
    pub url: String,
    /// Secret key holding a bearer token (Kubernetes only).
    #[serde(default)]
    pub secret_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutySpec {
    /// Secret key holding the Events API v2 routing key.
    #[serde(default)]
    pub secret_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieSpec {
    /// Secret key holding the API key.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// `P1`…`P5`; Opsgenie's default when unset.
    #[serde(default)]
    pub priority: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackSpec {
    pub channel: String,
    /// Secret key holding the incoming-webhook URL.
    #[serde(default)]
    pub secret_key: Option<String>,
}

impl Integration {
    fn kind(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::Pagerduty(_) => "pagerduty",
            Integration::Opsgenie(_) => "opsgenie",
            Integration::Slack(_) => "slack",
        }
    }

    /// The Secret key this integration reads, with the per-type default.
    pub fn secret_key(&self) -> Option<&str> {
        match self {
            Integration::Webhook(w) => w.secret_key.as_deref(),
            Integration::Pagerduty(p) => {
                Some(p.secret_key.as_deref().unwrap_or("pagerduty-routing-key"))
            }
            Integration::Opsgenie(o) => Some(o.secret_key.as_deref().unwrap_or("opsgenie-api-key")),
            Integration::Slack(s) => Some(s.secret_key.as_deref().unwrap_or("slack-api-url")),
        }
    }
}

/// One rendering target of the Alertmanager config.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Compose,
    Overlay(String),
}

/// Validated receivers of every target.
#[derive(Debug, Clone, PartialEq)]
pub struct Receivers {
    pub file: ReceiversFile,
}

impl Receivers {
    /// The compose demo's pager only (used when no receivers file exists).
    pub fn demo() -> Self {
        let hook = |path: &str| {
            vec![Integration::Webhook(WebhookSpec {
                url: format!("http://127.0.0.1:9095/alerts/{path}"),
                secret_key: None,
            })]
        };
        Receivers {
            file: ReceiversFile {
                compose: Routes {
                    oncall: hook("oncall"),
                    ticket: hook("ticket"),
                },
                kubernetes: None,
            },
        }
    }

    /// Every target: compose first, then the overlays by name.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = vec![Target::Compose];
        if let Some(k) = &self.file.kubernetes {
            t.extend(k.overlays.keys().cloned().map(Target::Overlay));
        }
        t
    }

    /// Alertmanager receivers `oncall` and `ticket` of one target.
    pub fn render(&self, target: &Target) -> Vec<Receiver> {
        let (routes, secret) = match target {
            Target::Compose => (&self.file.compose, None),
            Target::Overlay(name) => {
                let k = self.file.kubernetes.as_ref().expect("overlay target");
                (&k.overlays[name], Some(k.secret.as_str()))
            }
        };
        vec![
            receiver(crate::alertmanager::ONCALL, &routes.oncall, secret),
            receiver(crate::alertmanager::TICKET, &routes.ticket, secret),
        ]
    }
}

fn receiver(name: &str, integrations: &[Integration], secret: Option<&str>) -> Receiver {
    let file = |i: &Integration| {
        let key = i.secret_key().unwrap_or_default();
        format!("{SECRETS_MOUNT}/{}/{key}", secret.unwrap_or_default())
    };
    let mut r = Receiver {
        name: name.into(),
        ..Receiver::default()
    };
    for i in integrations {
        match i {
            Integration::Webhook(w) => r.webhook_configs.push(Webhook {
                url: w.url.clone(),
                send_resolved: true,
                http_config: w.secret_key.as_ref().map(|_| HttpConfig {
                    authorization: Authorization {
                        credentials_file: file(i),
                    },
                }),
            }),
            Integration::Pagerduty(_) => r.pagerduty_configs.push(Pagerduty {
                routing_key_file: file(i),
                send_resolved: true,
            }),
            Integration::Opsgenie(o) => r.opsgenie_configs.push(Opsgenie {
                api_key_file: file(i),
                priority: o.priority.clone(),
                send_resolved: true,
            }),
            Integration::Slack(s) => r.slack_configs.push(Slack {
                api_url_file: file(i),
                channel: s.channel.clone(),
                send_resolved: true,
            }),
        }
    }
    r
}

/// Reads `<dir>/receivers.yaml`; without one, the compose demo's pager only.
pub fn load(dir: &Path) -> Result<Receivers, Error> {
    load_side_file(dir, FILE, parse_str, Receivers::demo)
}

/// Parses and validates a receivers file; errors name file:line:col and field.
pub fn parse_str(file: &str, text: &str) -> Result<Receivers, SpecErrors> {
    check_yaml(file, text, |ctx, spec: &ReceiversFile| {
        check_file(ctx, spec);
        Receivers { file: spec.clone() }
    })
}

fn check_file(ctx: &mut Ctx<'_>, spec: &ReceiversFile) {
    check_routes(ctx, "compose", &spec.compose, false);
    let Some(k) = &spec.kubernetes else {
        return;
    };
    if !valid_name(&k.secret) {
        ctx.err(
            "kubernetes.secret",
            format!("`{}` is not a Kubernetes Secret name", k.secret),
            "use lower-case letters, digits and `-` (e.g. alertmanager-receivers)",
        );
    }
    if k.overlays.is_empty() {
        ctx.err(
            "kubernetes.overlays",
            "no overlay listed",
            "add one entry per k8s/overlays/<name>, or drop `kubernetes`",
        );
    }
    for (name, routes) in &k.overlays {
        if !valid_name(name) {
            ctx.err(
                &format!("kubernetes.overlays.{name}"),
                format!("`{name}` is not an overlay name"),
                "name the directory under k8s/overlays/ (lower-case letters, digits, `-`)",
            );
        }
        check_routes(ctx, &format!("kubernetes.overlays.{name}"), routes, true);
    }
}

fn check_routes(ctx: &mut Ctx<'_>, at: &str, routes: &Routes, cluster: bool) {
    for (receiver, list) in [("oncall", &routes.oncall), ("ticket", &routes.ticket)] {
        let field = format!("{at}.{receiver}");
        if list.is_empty() {
            ctx.err(
                &field,
                "no integration: alerts routed here would go nowhere",
                "list at least one of webhook, pagerduty, opsgenie, slack",
            );
        }
        for (i, integ) in list.iter().enumerate() {
            check_integration(
                ctx,
                &format!("{field}[{i}].{}", integ.kind()),
                integ,
                cluster,
            );
        }
    }
}

fn check_integration(ctx: &mut Ctx<'_>, field: &str, integ: &Integration, cluster: bool) {
    if !cluster {
        match integ {
            Integration::Webhook(w) if w.secret_key.is_none() => {}
            Integration::Webhook(_) => ctx.err(
                &format!("{field}.secret_key"),
                "the compose demo mounts no receiver Secret",
                "remove `secret_key`; credentials belong to a kubernetes overlay",
            ),
            _ => ctx.err(
                field,
                format!("`{}` needs a credential, and the compose demo mounts no receiver Secret", integ.kind()),
                "keep the compose demo on its pager webhook; declare this under kubernetes.overlays",
            ),
        }
    }
    if let Some(key) = integ.secret_key()
        && cluster
        && !valid_secret_key(key)
    {
        ctx.err(
            &format!("{field}.secret_key"),
            format!("`{key}` is not a valid Secret key"),
            "use letters, digits, `-`, `_` and `.`",
        );
    }
    match integ {
        Integration::Webhook(w) => {
            if let Some(problem) = url_problem(&w.url, cluster) {
                ctx.err(&format!("{field}.url"), problem.0, problem.1);
            }
        }
        Integration::Slack(s) => {
            if !s.channel.starts_with('#') && !s.channel.starts_with('@') {
                ctx.err(
                    &format!("{field}.channel"),
                    format!("`{}` is neither a #channel nor an @user", s.channel),
                    "write the channel as `#name`",
                );
            }
        }
        Integration::Opsgenie(o) => {
            if let Some(p) = &o.priority
                && !matches!(p.as_str(), "P1" | "P2" | "P3" | "P4" | "P5")
            {
                ctx.err(
                    &format!("{field}.priority"),
                    format!("`{p}` is not an Opsgenie priority"),
                    "use one of P1, P2, P3, P4, P5",
                );
            }
        }
        Integration::Pagerduty(_) => {}
    }
}

/// Why a webhook URL is refused, with the fix.
fn url_problem(url: &str, cluster: bool) -> Option<(String, String)> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Some((
            format!("`{url}` is not an http(s) URL"),
            "write the URL as http://host[:port]/path or https://…".into(),
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') || url.contains('?') {
        return Some((
            "the URL carries credentials (user info or a query string), which would be written into the config".into(),
            "put the token into the receiver Secret and name its key in `secret_key` (sent as a bearer token)".into(),
        ));
    }
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    if host.is_empty() {
        return Some((
            format!("`{url}` names no host"),
            "write the URL as http://host[:port]/path".into(),
        ));
    }
    if cluster && is_loopback(host) {
        return Some((
            format!("`{host}` is Alertmanager's own pod in a cluster: nothing listens there"),
            "point the webhook at a Service (name.namespace.svc) or an external URL".into(),
        ));
    }
    None
}

/// `localhost`, `127.0.0.0/8`, `::1`, `0.0.0.0`.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.ends_with(".localhost")
        || h.starts_with("127.")
        || h == "::1"
        || h == "0.0.0.0"
}

fn valid_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s != "."
        && s != ".."
}
