//! Every generated alert links its runbook section, the anchor exists in
//! docs/runbook.md (GitHub's slug of a heading), and the section says what to
//! look at (**Check.**), what to do (**Fix.**) and how to know the fix worked
//! (**Verify.**).
mod common;

use std::collections::BTreeMap;

use slo::ops::github_anchor;

const LEAD_INS: [&str; 3] = ["**Check.**", "**Fix.**", "**Verify.**"];

/// Runbook sections by anchor: each heading's text up to the next heading.
fn sections(runbook: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut in_code = false;
    for line in runbook.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            if let Some((a, body)) = current.take() {
                out.insert(a, body);
            }
            current = Some((github_anchor(line.trim_start_matches('#')), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((a, body)) = current {
        out.insert(a, body);
    }
    out
}

/// (alert name, runbook_url or None) of every alert rule in the generated rule files.
fn alerts(artifacts: &BTreeMap<std::path::PathBuf, String>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (path, text) in artifacts {
        let name = path.to_string_lossy();
        if !(name.starts_with("alerts/") && name.ends_with(".rules.yaml")) {
            continue;
        }
        let doc: serde_norway::Value = serde_norway::from_str(text).expect("rules yaml");
        for g in doc["groups"].as_sequence().expect("groups") {
            for r in g["rules"].as_sequence().expect("rules") {
                if let Some(alert) = r["alert"].as_str() {
                    let url = r["annotations"]["runbook_url"].as_str().map(str::to_string);
                    out.push((alert.to_string(), url));
                }
            }
        }
    }
    out
}

#[test]
fn every_alert_links_a_runbook_section_with_check_fix_and_verify() {
    let root = common::repo_root();
    let slos = slo::validate::load_dir(&root.join("slo")).expect("specs");
    let receivers = slo::receivers::load(&root.join("slo")).expect("receivers");
    let artifacts =
        slo::artifacts(&slos, &receivers, &slo::cost::Prices::unpriced()).expect("artifacts");
    let runbook = std::fs::read_to_string(root.join("docs/runbook.md")).expect("runbook");
    let secs = sections(&runbook);
    let prefix = format!("{}/docs/runbook.md#", slo::compile::DEFAULT_RUNBOOK_BASE);
    let all = alerts(&artifacts);
    assert!(
        all.len() >= 28,
        "expected SLO and operational alerts, got {all:?}"
    );
    let mut problems = Vec::new();
    for (alert, url) in &all {
        let Some(url) = url else {
            problems.push(format!("{alert}: no runbook_url annotation"));
            continue;
        };
        let Some(anchor) = url.strip_prefix(&prefix) else {
            problems.push(format!(
                "{alert}: runbook_url {url} does not start with {prefix}"
            ));
            continue;
        };
        let Some(body) = secs.get(anchor) else {
            problems.push(format!(
                "{alert}: anchor #{anchor} is no heading of docs/runbook.md"
            ));
            continue;
        };
        for lead in LEAD_INS {
            if !body.contains(lead) {
                problems.push(format!("{alert}: runbook section #{anchor} lacks {lead}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_default_base_is_the_workspace_repository_on_main() {
    assert_eq!(
        slo::compile::DEFAULT_RUNBOOK_BASE,
        "https://github.com/todo-observability/platform/blob/main"
    );
}

#[test]
fn the_runbook_base_is_a_generator_option() {
    let slos = slo::validate::load_dir(&common::repo_root().join("slo")).expect("specs");
    let opts = slo::Options {
        runbook_base: "https://git.example.com/todo/".into(),
        ..slo::Options::default()
    };
    let all = alerts(
        &slo::artifacts_with(
            &slos,
            &slo::Receivers::demo(),
            &slo::cost::Prices::unpriced(),
            &opts,
        )
        .expect("artifacts"),
    );
    for (alert, url) in all {
        let want = format!(
            "https://git.example.com/todo/docs/runbook.md#{}",
            alert.to_lowercase()
        );
        assert_eq!(url.as_deref(), Some(want.as_str()), "{alert}");
    }
}

#[test]
fn anchors_follow_githubs_slug_rules() {
    assert_eq!(github_anchor("ObserverDown"), "observerdown");
    assert_eq!(
        github_anchor(" Not alerts, but often asked"),
        "not-alerts-but-often-asked"
    );
    assert_eq!(
        github_anchor("`todo-events.dlq` DLQ_x"),
        "todo-eventsdlq-dlq_x"
    );
}

#[test]
fn a_section_without_verify_is_found() {
    let secs = sections("# R\n## Alerts\n### A\n**Check.** x\n**Fix.** y\n### B\n**Verify.** z\n");
    assert!(!secs["a"].contains("**Verify.**"));
    assert!(secs["b"].contains("**Verify.**"));
}
