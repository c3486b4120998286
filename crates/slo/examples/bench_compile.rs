//! Compiles 1,000 SLOs (parse + validate + rules + Alertmanager + dashboards)
//! and prints the time and rules per SLO.
//!
//! `CARGO_TARGET_DIR=target-slo cargo run --release -p slo --example bench_compile`
use std::time::Instant;

fn spec(service: usize, n: usize) -> String {
    let mut s = format!("service: svc-{service}\nslos:\n");
    for i in 0..n {
        let name = format!("svc-{service}-slo-{i}");
        let body = match i % 5 {
            0 => "    objective: 0.999\n    window: {rolling: 30d}\n    sli: {availability: {matchers: {service: svc}}}\n".to_string(),
            1 => "    objective: 0.99\n    window: {rolling: 28d}\n    sli: {latency: {threshold_seconds: 0.25, matchers: {service: svc}}}\n".to_string(),
            2 => "    objective: 0.99\n    window: {calendar: month, time_zone: Europe/Berlin}\n    sli: {freshness: {threshold_seconds: 1}}\n".to_string(),
            3 => "    objective: 0.99\n    window: {rolling: 30d}\n    sli: {consumer_lag: {group: g, topic: t, max_lag_seconds: 30}}\n".to_string(),
            _ => "    objective: 0.995\n    window: {calendar: week}\n    sli:\n      ratio:\n        bad: {metric: errors_total, matchers: {job: x}}\n        total: {metric: requests_total, matchers: {job: x}}\n".to_string(),
        };
        s.push_str(&format!("  - name: {name}\n{body}"));
    }
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let services = 50;
    let per = 20;
    let texts: Vec<(String, String)> = (0..services)
        .map(|s| (format!("svc-{s}.yaml"), spec(s, per)))
        .collect();
    let mut best = f64::INFINITY;
    let mut rules = 0usize;
    let mut slo_count = 0usize;
    let mut dash_bytes = 0usize;
    for _ in 0..5 {
        let t = Instant::now();
        let slos = slo::validate::load_texts(&texts)?;
        let files = slo::compile::rule_files(&slos, slo::compile::DEFAULT_RUNBOOK_BASE);
        let mut yaml = 0usize;
        rules = 0;
        for f in files.values() {
            rules += f.groups.iter().map(|g| g.rules.len()).sum::<usize>();
            yaml += slo::compile::to_yaml(f)?.len();
        }
        yaml += slo::compile::to_yaml(&slo::alertmanager::config_for(
            &slos,
            &slo::Receivers::demo(),
            &slo::receivers::Target::Compose,
        ))?
        .len();
        let dashboards = slo::dashboards::all(
            &slos,
            &slo::ops::Thresholds::default(),
            &slo::cost::Prices::unpriced(),
        )?;
        dash_bytes = dashboards.values().map(String::len).sum::<usize>() + yaml;
        best = best.min(t.elapsed().as_secs_f64());
        slo_count = slos.len();
    }
    println!("SLOs: {slo_count}");
    println!(
        "rules: {rules} ({:.2} per SLO)",
        rules as f64 / slo_count as f64
    );
    println!(
        "output: {:.1} MiB (rules, Alertmanager, dashboards)",
        dash_bytes as f64 / 1048576.0
    );
    println!(
        "best of 5: {:.1} ms for parse + validate + rules + dashboards",
        best * 1000.0
    );
    Ok(())
}
