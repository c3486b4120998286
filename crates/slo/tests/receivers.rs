//! Receivers per target (`slo/receivers.yaml`): only the compose demo may
//! deliver to a loopback pager, and no generated config carries a credential.
mod common;

use serde_norway::Value;

use common::*;

/// Fields of Alertmanager receivers that hold a credential; configs must
/// name a file instead (`<field>_file`, `credentials_file`, `password_file`).
const INLINE_SECRET_FIELDS: &[&str] = &[
    "routing_key",
    "service_key",
    "api_key",
    "api_url",
    "bot_token",
    "token",
    "password",
    "credentials",
    "auth_token",
    "user_key",
    "webhook_url",
    "secret",
];

/// Loopback receivers and inline credentials of one config, as `path: why`.
fn problems(config: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let key = k.as_str().unwrap_or_default();
                    let here = format!("{path}.{key}");
                    let set = !matches!(v, Value::Null) && v.as_str() != Some("");
                    if INLINE_SECRET_FIELDS.contains(&key) && set {
                        out.push(format!("{here}: credential written inline"));
                    }
                    if key == "url"
                        && let Some(url) = v.as_str()
                    {
                        let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
                        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                        if authority.contains('@') || url.contains('?') {
                            out.push(format!("{here}: URL carries credentials: {url}"));
                        }
                        let host = authority.rsplit('@').next().unwrap_or_default();
                        let host = host.rsplit_once(':').map(|x| x.0).unwrap_or(host);
                        if slo::receivers::is_loopback(host) {
                            out.push(format!("{here}: loopback receiver {url}"));
                        }
                    }
                    walk(v, &here, out);
                }
            }
            Value::Sequence(s) => {
                for (i, v) in s.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&config["receivers"], "receivers", &mut out);
    walk(&config["global"], "global", &mut out);
    out
}

#[test]
fn only_the_compose_demo_pages_a_loopback_pager_and_no_config_holds_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    slo::generate(&repo_root().join("slo"), dir.path()).expect("generate");
    let secrets = alertmanager_secrets(dir.path());
    let names: Vec<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "secret-alertmanager-dev",
            "secret-alertmanager-prod",
            "secret-alertmanager-staging"
        ]
    );
    for (name, text) in &secrets {
        let cfg: Value = serde_norway::from_str(text).expect("yaml");
        let found = problems(&cfg);
        assert!(found.is_empty(), "{name}: {found:#?}");
        for file in text
            .lines()
            .filter_map(|l| l.split_once("_file: ").map(|x| x.1.trim()))
        {
            assert!(
                file.starts_with("/etc/alertmanager/secrets/alertmanager-receivers/"),
                "{name}: {file} is not in the mounted receiver Secret"
            );
        }
    }
    // The demo is the one config that reaches the pager on loopback.
    let demo: Value = serde_norway::from_str(
        &std::fs::read_to_string(dir.path().join("alerts/alertmanager.yml")).expect("read"),
    )
    .expect("yaml");
    let found = problems(&demo);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found.iter().all(|p| p.contains("127.0.0.1:9095")));
}

#[test]
fn prod_pages_pagerduty_and_tickets_opsgenie_and_slack() {
    let r = receivers();
    let prod = slo::receivers::Target::Overlay("prod".into());
    let cfg = slo::compile::to_yaml(&slo::alertmanager::config_for(&[], &r, &prod)).expect("yaml");
    let v: Value = serde_norway::from_str(&cfg).expect("yaml");
    let kinds = |i: usize| -> Vec<String> {
        let mut k: Vec<String> = v["receivers"][i]
            .as_mapping()
            .expect("receiver")
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .filter(|k| k.ends_with("_configs"))
            .collect();
        k.sort();
        k
    };
    assert_eq!(v["receivers"][0]["name"], "oncall");
    assert_eq!(kinds(0), ["pagerduty_configs"]);
    assert_eq!(kinds(1), ["opsgenie_configs", "slack_configs"]);
}

#[test]
fn the_checker_itself_finds_loopback_and_inline_credentials() {
    let bad: Value = serde_norway::from_str(
        "receivers:\n- name: oncall\n  pagerduty_configs: [{routing_key: abc}]\n  webhook_configs: [{url: 'http://localhost:9095/x'}, {url: 'https://u:p@h.example.com/'}, {url: 'https://h.example.com/?token=1'}]\n  slack_configs: [{api_url: 'https://hooks.slack.com/services/T/B/X', channel: '#a'}]\n",
    )
    .expect("yaml");
    assert_eq!(problems(&bad).len(), 5, "{:#?}", problems(&bad));
}

#[test]
fn invalid_receivers_name_file_line_and_field() {
    let ok_compose = "compose:\n  oncall: [{webhook: {url: 'http://127.0.0.1:9095/a'}}]\n  ticket: [{webhook: {url: 'http://127.0.0.1:9095/b'}}]\n";
    let cases: &[(&str, &str, usize)] = &[
        (
            "compose:\n  oncall: []\n  ticket: [{webhook: {url: 'http://127.0.0.1:9095/b'}}]\n",
            "compose.oncall",
            2,
        ),
        (
            "compose:\n  oncall: [{pagerduty: {}}]\n  ticket: [{webhook: {url: 'http://127.0.0.1:9095/b'}}]\n",
            "compose.oncall[0].pagerduty",
            2,
        ),
        (
            &format!(
                "{ok_compose}kubernetes:\n  overlays:\n    prod:\n      oncall: [{{pagerduty: {{}}}}]\n      ticket:\n        - webhook: {{url: 'http://127.0.0.1:9095/alerts/ticket'}}\n"
            ),
            "kubernetes.overlays.prod.ticket[0].webhook.url",
            9,
        ),
        (
            &format!(
                "{ok_compose}kubernetes:\n  overlays:\n    dev:\n      oncall: [{{slack: {{channel: '#a'}}}}]\n      ticket:\n        - webhook: {{url: 'https://hooks.example.com/x?token=s3cret'}}\n"
            ),
            "kubernetes.overlays.dev.ticket[0].webhook.url",
            9,
        ),
        (
            &format!(
                "{ok_compose}kubernetes:\n  overlays:\n    prod:\n      oncall:\n        - pagerduty: {{routing_key: abc}}\n      ticket: [{{slack: {{channel: '#a'}}}}]\n"
            ),
            "routing_key",
            8,
        ),
        (
            &format!(
                "{ok_compose}kubernetes:\n  overlays:\n    prod:\n      oncall: [{{pagerduty: {{}}}}]\n      ticket:\n        - opsgenie: {{priority: P9}}\n"
            ),
            "kubernetes.overlays.prod.ticket[0].opsgenie.priority",
            9,
        ),
    ];
    for (text, field, line) in cases {
        let errs = slo::receivers::parse_str("slo/receivers.yaml", text)
            .expect_err(&format!("accepted:\n{text}"));
        let e = &errs.0[0];
        assert!(
            e.field.contains(field) && e.line == *line && e.file == "slo/receivers.yaml",
            "want {field} at line {line}, got {e}"
        );
    }
}

#[test]
fn without_a_receivers_file_only_the_demo_pager_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = slo::receivers::load(dir.path()).expect("load");
    assert_eq!(r, slo::Receivers::demo());
    assert_eq!(r.targets(), [slo::receivers::Target::Compose]);
    // and the committed demo config is exactly that
    let slos = slo::validate::load_dir(&repo_root().join("slo")).expect("specs");
    let demo = slo::compile::to_yaml(&slo::alertmanager::config_for(
        &slos,
        &r,
        &slo::receivers::Target::Compose,
    ))
    .expect("yaml");
    assert_eq!(
        demo,
        std::fs::read_to_string(repo_root().join("alerts/alertmanager.yml")).expect("read")
    );
}
