//! Sloth and Pyrra imports and the OpenSLO round trip, end to end through the
//! `todoctl slo` functions: import → validate → generate on every documented
//! example form (crates/slo/tests/fixtures/import/), located refusals, and
//! import(export(spec)) == spec for every spec in slo/.
mod common;

use std::path::{Path, PathBuf};

use common::*;

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(repo_root().join("crates/slo/tests/fixtures/import"))
            .expect("examples dir")
            .map(|e| e.expect("entry").path())
            .collect();
    v.sort();
    v
}

fn import_into(file: &Path, dir: &Path) -> slo::cli::Outcome {
    slo::cli::import(file, dir)
}

#[test]
fn every_example_imports_validates_and_generates() {
    let ex = examples();
    assert!(ex.len() >= 6, "{ex:?}");
    for file in ex {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = dir.path().join("slo");
        let out = import_into(&file, &specs);
        assert!(out.ok, "{}: {}", file.display(), out.stderr);
        let v = slo::cli::validate(&specs, &[]);
        assert!(v.ok, "{}: {}", file.display(), v.stderr);
        let g = slo::cli::generate(&specs, dir.path(), false, &slo::Options::default());
        assert!(g.ok, "{}: {}", file.display(), g.stderr);
        assert!(
            std::fs::read_dir(dir.path().join("alerts"))
                .expect("alerts")
                .any(|e| e
                    .expect("e")
                    .path()
                    .to_string_lossy()
                    .ends_with(".rules.yaml")),
            "{}: no rules generated",
            file.display()
        );
    }
}

fn import_one(name: &str) -> (slo::spec::SpecFile, Vec<String>) {
    let path = repo_root()
        .join("crates/slo/tests/fixtures/import")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read");
    let (files, notes) = slo::import::convert(&path.display().to_string(), &text).expect("import");
    assert_eq!(files.len(), 1, "{files:?}");
    let body = files[0].1.lines().skip(1).collect::<Vec<_>>().join("\n");
    (serde_norway::from_str(&body).expect("spec"), notes)
}

#[test]
fn sloth_fields_map_as_documented() {
    for (file, crd) in [
        ("sloth-getting-started.yml", false),
        ("sloth-k8s-getting-started.yml", true),
    ] {
        let (f, notes) = import_one(file);
        assert_eq!(f.service, "myservice");
        // Sloth's `tier` label would clash with ours
        assert_eq!(f.labels.get("source_tier").map(String::as_str), Some("2"));
        let a = f.slos[0].alerting.clone().expect("alerting");
        let page = a.page_alert.clone().expect("page_alert");
        let ticket = a.ticket_alert.clone().expect("ticket_alert");
        assert_eq!(page.labels["category"], "availability");
        // Sloth's one `alerting.name` names both alerts (told apart by severity)
        assert_eq!(
            page.name.as_deref(),
            Some("MyServiceHighErrorRate"),
            "{file}"
        );
        assert_eq!(ticket.name, page.name, "{file}");
        assert_eq!(page.labels["routing_key"], "myteam");
        let want_for = (!crd).then(|| slo::duration::Dur::mins(5));
        assert_eq!(page.for_, want_for, "{file}");
        // Sloth's `severity: pageteam` would break our routing on `severity`
        assert_eq!(page.labels["source_severity"], "pageteam");
        assert_eq!(ticket.labels["slack_channel"], "#alerts-myteam");
        assert_eq!(ticket.labels["category"], "availability");
        assert_eq!(
            page.annotations["summary"],
            "High error rate on 'myservice' requests responses"
        );
        let s = &f.slos[0];
        assert_eq!(s.objective, 0.999);
        assert_eq!(s.window.rolling, Some(slo::duration::Dur::days(30)));
        let r = s.sli.ratio.as_ref().expect("ratio");
        assert_eq!(
            r.bad.as_ref().and_then(|q| q.promql.as_deref()),
            Some(
                r#"sum(increase(http_request_duration_seconds_count{code=~"(5..|429)",job="myservice"}[$window]))"#
            )
        );
        let tiers = s
            .alerting
            .as_ref()
            .and_then(|a| a.tiers.clone())
            .expect("tiers");
        let got: Vec<(f64, String, String)> = tiers
            .iter()
            .map(|t| (t.factor, t.long.to_string(), t.short.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (14.4, "1h".into(), "5m".into()),
                (6.0, "6h".into(), "30m".into()),
                (3.0, "1d".into(), "2h".into()),
                (1.0, "3d".into(), "6h".into()),
            ],
            "{file}"
        );
        assert!(
            !notes.iter().any(|n| n.contains("alert name")),
            "{crd}: {notes:?}"
        );
    }
    // page_alert.disable drops the page tiers
    let (f, _) = import_one("sloth-home-wifi.yml");
    let tiers = f.slos[0]
        .alerting
        .as_ref()
        .and_then(|a| a.tiers.clone())
        .expect("tiers");
    assert!(
        tiers
            .iter()
            .all(|t| t.severity == slo::spec::Severity::Ticket),
        "{tiers:?}"
    );
    assert_eq!(f.slos[0].objective, 0.95);
}

#[test]
fn pyrra_fields_map_as_documented() {
    let (f, _) = import_one("pyrra-ratio.yaml");
    let s = &f.slos[0];
    assert_eq!(s.objective, 0.9999);
    assert_eq!(s.window.rolling, Some(slo::duration::Dur::days(14)));
    let r = s.sli.ratio.as_ref().expect("ratio");
    let bad = r.bad.as_ref().expect("bad");
    assert_eq!(
        bad.metric.as_deref(),
        Some("prometheus_http_requests_total")
    );
    assert_eq!(bad.matchers["code"], "=~5..");
    // Pyrra for 14 days: 30m/3m (2.5m rounds up like Go), 3h/15m, 12h/1h, 2d/3h
    let tiers = s
        .alerting
        .as_ref()
        .and_then(|a| a.tiers.clone())
        .expect("tiers");
    let got: Vec<(String, String)> = tiers
        .iter()
        .map(|t| (t.long.to_string(), t.short.to_string()))
        .collect();
    assert_eq!(
        got,
        [("30m", "3m"), ("3h", "15m"), ("12h", "1h"), ("2d", "3h")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // factor 14 on a 14-day window = 30 on our 30-day scale
    assert!((tiers[0].factor - 30.0).abs() < 1e-9);
    // Pyrra's `for` of each tier, exactly: window/20160, /2688, /672, /224 =
    // 1m, 8m (7.5m rounds up like Go), 30m, 90m on 2 weeks
    assert_eq!(
        tiers.iter().map(|t| t.for_).collect::<Vec<_>>(),
        [1, 8, 30, 90].map(|m| Some(slo::duration::Dur::mins(m)))
    );
    let a = s.alerting.clone().expect("alerting");
    assert_eq!(a.page_alert, None);
    assert_eq!(a.ticket_alert, None);
    let (f, _) = import_one("pyrra-bool-gauge.yaml");
    assert_eq!(f.labels["team"], "operations");
    assert_eq!(f.labels["namespace"], "probes");
    let r = f.slos[0].sli.ratio.as_ref().expect("ratio");
    assert_eq!(
        r.total.promql.as_deref(),
        Some(
            r#"sum(count_over_time(probe_success{instance="https://example.com", job="blackbox"}[$window]))"#
        )
    );
    let (f, _) = import_one("pyrra-latency.yaml");
    let r = f.slos[0].sli.ratio.as_ref().expect("ratio");
    assert_eq!(r.good.as_ref().expect("good").matchers["le"], "1");
}

/// (file body, field the error must name, line it must point at).
const REFUSED: &[(&str, &str, &str, usize)] = &[
    (
        "sloth-plugin.yml",
        "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli:\n      plugin:\n        id: sloth-common/availability\n",
        "slos[0].sli.plugin",
        7,
    ),
    (
        "sloth-raw.yml",
        "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli:\n      raw:\n        error_ratio_query: sum(rate(e[{{.window}}]))/sum(rate(t[{{.window}}]))\n",
        "slos[0].sli.raw",
        7,
    ),
    (
        "sloth-irate.yml",
        "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli:\n      events:\n        error_query: sum(irate(e_total[{{.window}}]))\n        total_query: sum(rate(t_total[{{.window}}]))\n",
        "slos[0].sli.events.error_query",
        8,
    ),
    (
        "pyrra-grouping.yaml",
        "apiVersion: pyrra.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata:\n  name: x\nspec:\n  target: \"99\"\n  window: 4w\n  indicator:\n    ratio:\n      errors:\n        metric: a_total{code=~\"5..\"}\n      total:\n        metric: a_total\n      grouping:\n        - handler\n",
        "spec.indicator.ratio.grouping",
        14,
    ),
];

#[test]
fn unsupported_input_names_file_line_and_field() {
    for (name, body, field, line) in REFUSED {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        let out = slo::cli::import(&path, &dir.path().join("slo"));
        assert!(!out.ok, "{name}: accepted");
        let want = format!("{}:{line}:", path.display());
        assert!(
            out.stderr.contains(&want) && out.stderr.contains(field),
            "{name}: want `{want}` and `{field}` in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn irate_error_points_into_the_query() {
    let body = "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli:\n      events:\n        error_query: sum(irate(e_total[{{.window}}]))\n        total_query: sum(rate(t_total[{{.window}}]))\n";
    let e = slo::sloth::import("f.yml", body).expect_err("refused");
    // the value starts at column 22 of line 8; `irate` 4 characters later
    assert_eq!((e.0[0].line, e.0[0].column), (8, 26), "{e}");
}

#[test]
fn openslo_export_round_trips_every_spec() {
    let specs = repo_root().join("slo");
    let want = slo::openslo::read_spec_files(&specs).expect("specs");
    let text = slo::openslo::export_dir(&specs).expect("export");
    let mut got = slo::openslo::import("export.yaml", &text).expect("import");
    got.sort_by(|a, b| a.service.cmp(&b.service));
    let mut want = want;
    want.sort_by(|a, b| a.service.cmp(&b.service));
    assert_eq!(got, want);
}

/// The page of each imported SLO fires and resolves at the minute the source
/// tool's own tier predicts, proven on Prometheus by `promtool test rules`.
///
/// Source tiers, from the tools (not from our import): Sloth pages at 14.4×
/// the error budget over 1h and 5m (30-day period); Pyrra's first critical
/// tier is 14× over window/672 and window/8064 rounded to the minute (30m
/// and 3m for the 2-week examples), on `(1 - target)` as is.
///
/// Scenario: a clean history of one long window, then a bad share `s` ≈
/// 3.7 × threshold θ (whole events per minute) for one long window, then healthy. Minute-sampled, the
/// long ratio after t minutes is s·t/L, so the page fires at the first t
/// with s·t/L > θ; after the outage the short ratio is s·(S−u)/S, so the
/// page resolves at the first u with s·(S−u)/S ≤ θ. The alert's `for`
/// (Sloth's `page_alert.for`, Pyrra's per-tier `for`) delays the firing.
#[test]
fn imported_pages_fire_and_resolve_when_the_source_tool_predicts() {
    let promtool = require_tool("promtool");
    // (file, page tier, factor, long, short, `for` of that tier), in minutes
    for (file, tier, factor, long, short, hold) in [
        // `page_alert.for: 5m` in the file
        (
            "sloth-getting-started.yml",
            1u32,
            14.4,
            60usize,
            5usize,
            5usize,
        ),
        ("sloth-k8s-getting-started.yml", 1, 14.4, 60, 5, 0),
        // Pyrra's tiers hold window/20160 = 1m and window/2688 = 8m on 2 weeks
        ("pyrra-ratio.yaml", 1, 14.0, 30, 3, 1),
        ("pyrra-ratio.yaml", 2, 7.0, 180, 15, 8),
        ("pyrra-latency.yaml", 1, 14.0, 30, 3, 1),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = dir.path().join("slo");
        let out = slo::cli::import(
            &repo_root()
                .join("crates/slo/tests/fixtures/import")
                .join(file),
            &specs,
        );
        assert!(out.ok, "{file}: {}", out.stderr);
        let slos = slo::validate::load_dir(&specs).expect("valid");
        let s = &slos[0];
        if file.starts_with("sloth") {
            // the imported name is the rules' and the promtool tests' alertname
            for sev in [slo::spec::Severity::Page, slo::spec::Severity::Ticket] {
                assert_eq!(
                    slo::compile::burn_alert_name(s, sev),
                    "MyServiceHighErrorRate"
                );
            }
        }
        let theta = factor * (1.0 - s.objective);
        // whole bad events per minute: promtool accumulates `a+bxn` in
        // floats, and a fractional increment drifts into a counter reset
        let rate = slo::promtest::RATE_PER_MIN;
        // a share whose window ratios never land on θ (no tie to round either way)
        // of any tier (the scenario's checks cover every tier)
        let off_theta = |share: f64| {
            s.alerting.tiers.iter().all(|tr| {
                let th = s.threshold_for(tr, s.window.nominal());
                [tr.long, tr.short].iter().all(|w| {
                    let n = (w.as_secs() / 60) as usize;
                    (0..=n).all(|t| (share * t as f64 / n as f64 - th).abs() > 1e-6 * th)
                })
            })
        };
        let share = (0..40)
            .map(|i| ((3.7 + 0.1 * i as f64) * theta * rate).round() / rate)
            .find(|sh| off_theta(*sh))
            .expect("a share off the threshold");
        assert!(
            share > theta && share < 1.0,
            "{file}: share {share}, θ {theta}"
        );
        let fire = (1..=long)
            .find(|t| share * *t as f64 / long as f64 > theta)
            .expect("fires")
            + hold;
        let resolve = (0..=short)
            .find(|u| share * (short - u) as f64 / short as f64 <= theta)
            .expect("resolves");
        let (h, d) = (long, long);
        let pattern = slo::promtest::Pattern::Events(
            (0..h + d + short + 5)
                .map(|m| {
                    let bad = if m >= h && m < h + d { share } else { 0.0 };
                    (
                        slo::promtest::RATE_PER_MIN,
                        slo::promtest::RATE_PER_MIN * bad,
                    )
                })
                .collect(),
        );
        let checkpoints = vec![h + fire - 1, h + fire, h + d + resolve - 1, h + d + resolve];
        let sim = slo::promtest::Simulator::new(s, &pattern);
        let pages = |t: usize| sim.firing(t).page.contains(&tier);
        assert_eq!(
            checkpoints.iter().map(|t| pages(*t)).collect::<Vec<_>>(),
            [false, true, true, false],
            "{file}: our tier {tier} disagrees with the source's prediction (fire +{fire}m, resolve +{resolve}m)"
        );
        let test = slo::promtest::test_file_with(
            s,
            &slo::Options::default().runbook_base,
            vec![slo::promtest::Scenario {
                name: "source-prediction",
                what: format!(
                    "page fires {fire} min into the outage and resolves {resolve} min after it"
                ),
                pattern,
                checkpoints,
                no_data_at: None,
            }],
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        promtool_passes(&promtool, file, &specs, dir.path(), s, &test);
    }
    gauge_pages_fire_and_resolve_when_the_source_tool_predicts(&promtool);
}

/// Writes `test` next to the generated scenarios of the imported SLO and runs
/// both through `promtool test rules`.
fn promtool_passes(
    promtool: &Path,
    file: &str,
    specs: &Path,
    dir: &Path,
    s: &slo::model::Slo,
    test: &str,
) {
    let g = slo::cli::generate(specs, dir, false, &slo::Options::default());
    assert!(g.ok, "{}", g.stderr);
    let path = dir.join("alerts/tests/source-prediction.test.yaml");
    std::fs::write(&path, test).expect("write");
    // the generated scenarios of the imported SLO, and the source-prediction one
    let generated = dir.join(format!("alerts/tests/{}.test.yaml", s.name));
    let mut files = vec![path];
    if slo::promtest::subquery_steps_over_promtool_limit(s).is_some() {
        // promtool cannot evaluate the period's subquery (a dashboard-only
        // record no alert reads): drop that record, and no scenarios are generated
        let rules = dir.join(format!("alerts/{}.rules.yaml", s.service));
        let text = std::fs::read_to_string(&rules).expect("rules");
        let mut doc: serde_norway::Value = serde_norway::from_str(&text).expect("yaml");
        for g in doc["groups"].as_sequence_mut().expect("groups") {
            g["rules"]
                .as_sequence_mut()
                .expect("rules")
                .retain(|r| r["record"].as_str() != Some(slo::compile::PERIOD_ERROR_RATIO));
        }
        std::fs::write(&rules, serde_norway::to_string(&doc).expect("yaml")).expect("write");
        let readme = std::fs::read_to_string(dir.join("alerts/tests/README.md")).expect("readme");
        assert!(
            readme.contains(&s.name) && !generated.exists(),
            "{file}: {readme}"
        );
    } else {
        assert!(
            generated.exists(),
            "{file}: no generated scenarios: {}",
            std::fs::read_to_string(dir.join("alerts/tests/README.md")).unwrap_or_default()
        );
        files.push(generated);
    }
    let out = std::process::Command::new(promtool)
        .arg("test")
        .arg("rules")
        .args(&files)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{file}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gauge forms: Pyrra's `bool_gauge` (`sum_over_time(g[w])` good samples
/// over `count_over_time(g[w])`) and Sloth's home-wifi subqueries
/// (`sum_over_time(count(g < 0.75)[w:])` over `sum_over_time(count(g)[w:])`).
/// The SLI counts gauge samples, one a minute; both tools' ratio over a
/// window of w minutes at minute T is the share of bad samples at minutes
/// `T-w ..= T` (Prometheus ranges and `[w:]` subqueries on the minute include
/// the left edge). The source tool's alert fires at the first minute T at
/// which both of the tier's ratios exceed θ = factor × (1 − target) at every
/// evaluation of `T-for ..= T`, and resolves at the first minute they do not.
///
/// Scenario: one long window of good samples, then one long window where a
/// share ≈ 3.7θ of the samples is bad (every k-th sample spread evenly), then good.
fn gauge_pages_fire_and_resolve_when_the_source_tool_predicts(promtool: &Path) {
    // (file, source severity, factor, long, short, `for` of that tier), in minutes
    for (file, sev, factor, long, short, hold) in [
        // Pyrra on 28 days: 14× over 1h/5m held 2m, 7× over 6h/30m held 15m
        (
            "pyrra-bool-gauge.yaml",
            "page",
            14.0,
            60usize,
            5usize,
            2usize,
        ),
        ("pyrra-bool-gauge.yaml", "page", 7.0, 360, 30, 15),
        // Sloth: page disabled in the file; its first ticket tier is 3× over
        // 1d/2h, no `for` given
        ("sloth-home-wifi.yml", "ticket", 3.0, 1440, 120, 0),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = dir.path().join("slo");
        let out = slo::cli::import(
            &repo_root()
                .join("crates/slo/tests/fixtures/import")
                .join(file),
            &specs,
        );
        assert!(out.ok, "{file}: {}", out.stderr);
        let slos = slo::validate::load_dir(&specs).expect("valid");
        let s = &slos[0];
        assert!(
            slo::promtest::gauge_sli(s).is_some(),
            "{file}: not a gauge SLI"
        );
        let tier = s
            .alerting
            .tiers
            .iter()
            .find(|t| {
                t.long == slo::duration::Dur::mins(long as u64)
                    && t.short == slo::duration::Dur::mins(short as u64)
            })
            .unwrap_or_else(|| panic!("{file}: no tier {long}m/{short}m"));
        assert_eq!(tier.severity.as_str(), sev, "{file}");
        let theta = factor * (1.0 - s.objective);
        let (h, d) = (long, long);
        let len = h + d + short + 5;
        // the share: bad samples every `k` minutes, so bad/all of a window
        // never lands on θ of any tier (no tie to round either way)
        let samples_for = |k: usize| -> Vec<bool> {
            (0..=len)
                .map(|m| m >= h && m < h + d && (m - h) % k == 0)
                .collect()
        };
        let ratio = |v: &[bool], t: usize, w: usize| -> f64 {
            let win = &v[t.saturating_sub(w)..=t];
            win.iter().filter(|b| **b).count() as f64 / win.len() as f64
        };
        let k = (1.0 / (3.7 * theta)).floor().max(2.0) as usize;
        let samples = samples_for(k);
        let share = 1.0 / k as f64;
        assert!(
            share > theta && share < 1.0,
            "{file}: share {share}, θ {theta}"
        );
        let cond = |t: usize| ratio(&samples, t, long) > theta && ratio(&samples, t, short) > theta;
        let holds = |t: usize| t >= hold && (t - hold..=t).all(cond);
        let fire = (h..h + d).find(|t| holds(*t)).expect("fires");
        let resolve = (h + d..len).find(|t| !holds(*t)).expect("resolves");
        let checkpoints = vec![fire - 1, fire, resolve - 1, resolve];
        let pattern = slo::promtest::Pattern::Samples(samples.clone());
        let sim = slo::promtest::Simulator::new(s, &pattern);
        let on = |t: usize| {
            let f = sim.firing(t);
            f.page.contains(&tier.number) || f.ticket.contains(&tier.number)
        };
        assert_eq!(
            checkpoints.iter().map(|t| on(*t)).collect::<Vec<_>>(),
            [false, true, true, false],
            "{file}: our tier {} disagrees with the source's prediction (fire at {fire}, resolve at {resolve})",
            tier.number
        );
        let test = slo::promtest::test_file_with(
            s,
            &slo::Options::default().runbook_base,
            vec![slo::promtest::Scenario {
                name: "source-prediction",
                what: format!(
                    "one sample in {k} bad from minute {h}: the {sev} fires {} min into the outage and resolves {} min after it",
                    fire - h,
                    resolve - h - d
                ),
                pattern,
                checkpoints,
                no_data_at: None,
            }],
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        promtool_passes(promtool, file, &specs, dir.path(), s, &test);
    }
}

#[test]
fn alert_labels_may_not_replace_the_routing_labels() {
    let text = "service: a\nslos:\n  - name: x\n    objective: 0.99\n    window: {rolling: 30d}\n    sli:\n      ratio:\n        bad: {metric: e_total}\n        total: {metric: t_total}\n    alerting:\n      page_alert:\n        labels:\n          severity: pageteam\n";
    let e = slo::validate::parse_str("slo/a.yaml", text).expect_err("reserved");
    assert_eq!(
        (e.0[0].line, e.0[0].field.as_str()),
        (13, "slos[0].alerting.page_alert.labels.severity"),
        "{e}"
    );
}

#[test]
fn alert_name_must_be_a_prometheus_name() {
    let text = "service: a\nslos:\n  - name: x\n    objective: 0.99\n    window: {rolling: 30d}\n    sli:\n      ratio:\n        bad: {metric: e_total}\n        total: {metric: t_total}\n    alerting:\n      ticket_alert:\n        name: 9 bad name\n";
    let e = slo::validate::parse_str("slo/a.yaml", text).expect_err("bad name");
    assert_eq!(
        (e.0[0].line, e.0[0].field.as_str()),
        (12, "slos[0].alerting.ticket_alert.name"),
        "{e}"
    );
}
