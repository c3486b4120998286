//! The claims the generated promtool tests make, checked on the independent
//! model for every SLO in slo/ (promtool then checks Prometheus agrees).
mod common;

use slo::model::{Severity, Sli};
use slo::promtest::{Pattern, Simulator, predicted_page_minutes, scenarios};

#[test]
fn scenarios_prove_what_the_issue_asks() {
    let slos = slo::validate::load_dir(&common::repo_root().join("slo")).expect("specs");
    assert!(slos.len() >= 6);
    for slo in &slos {
        let first_page = slo
            .alerting
            .tiers
            .iter()
            .find(|t| t.severity == Severity::Page)
            .expect("page tier")
            .number;
        for sc in scenarios(slo) {
            let sim = Simulator::new(slo, &sc.pattern);
            let at = |m: usize| sim.firing(m);
            match sc.name {
                "healthy" | "no-data" => {
                    for &c in &sc.checkpoints {
                        let f = at(c);
                        assert!(
                            f.page.is_empty() && f.ticket.is_empty(),
                            "{} {}: {f:?} at {c}",
                            slo.name,
                            sc.name
                        );
                    }
                }
                "total-outage" => {
                    let (tier, pred) = predicted_page_minutes(slo).expect("prediction");
                    assert_eq!(tier, first_page);
                    let start = sc.checkpoints[0] + 1 - (pred.floor() as usize + 1);
                    let fired = sim
                        .first_firing(first_page, start, start + 120)
                        .expect("page fires")
                        - start;
                    assert!(
                        fired as f64 >= pred && (fired as f64) < pred + 1.0,
                        "{}: page after {fired} min, math says {pred}",
                        slo.name
                    );
                    assert!(at(sc.checkpoints[1]).page.contains(&first_page));
                    assert!(!at(sc.checkpoints[0]).page.contains(&first_page));
                }
                "slow-burn" => {
                    for &c in &sc.checkpoints {
                        assert!(at(c).page.is_empty(), "{} slow burn paged at {c}", slo.name);
                    }
                    let last = *sc.checkpoints.last().expect("checkpoint");
                    assert!(
                        !at(last).ticket.is_empty(),
                        "{}: 1.5x burn must open a ticket",
                        slo.name
                    );
                }
                "recovery" => {
                    assert!(
                        !at(sc.checkpoints[0]).page.is_empty(),
                        "{}: outage must page",
                        slo.name
                    );
                    for &c in &sc.checkpoints[sc.checkpoints.len() - 2..] {
                        let f = at(c);
                        assert!(
                            f.page.is_empty() && f.ticket.is_empty(),
                            "{}: not resolved at {c}: {f:?}",
                            slo.name
                        );
                    }
                }
                "low-traffic" => {
                    assert!(matches!(slo.sli, Sli::Events { .. }));
                    for &c in &sc.checkpoints {
                        assert!(
                            at(c).page.is_empty(),
                            "{}: low traffic paged at {c}",
                            slo.name
                        );
                    }
                    // Control: without the guard the same traffic would page.
                    let mut unguarded = Simulator::new(slo, &sc.pattern);
                    unguarded.guard = false;
                    assert!(
                        sc.checkpoints
                            .iter()
                            .any(|c| !unguarded.firing(*c).page.is_empty()),
                        "{}: guard untested",
                        slo.name
                    );
                }
                other => panic!("unknown scenario {other}"),
            }
        }
        if matches!(slo.sli, Sli::Events { .. }) {
            assert!(scenarios(slo).iter().any(|s| s.name == "low-traffic"));
        }
        let _ = Pattern::Nothing(0);
    }
}
