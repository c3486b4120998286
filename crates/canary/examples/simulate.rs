//! Simulated canaries: the false-rollback rate over healthy canaries, and
//! detection time against the canary's error rate and the total traffic.
//!
//! `cargo run --release -p canary --example simulate [-- RUNS [SPEC]]`
//!
//! SPEC is `default` (steps 5, 10, 25, 50, 100%, 100 requests per step) or
//! `stack` (the local stack's 10, 25, 50, 100%, 50 requests per step); both
//! analyse every 10 s. Healthy builds fail 0.05% of requests (inside a 99.9%
//! SLO) and 2% are slower than the latency threshold. Counts per interval
//! are drawn request by request from those rates; time is the end of the
//! interval whose analysis decided (the observer takes its baseline when the
//! rollout starts, so a real rollout's first analysis also comes one
//! interval in).

use canary::analysis::State;
use canary::{CanarySpec, Interval, Observation, Verdict, analyze};

const HEALTHY_ERR: f64 = 0.0005;
const SLOW: f64 = 0.02;

fn binomial(rng: &mut impl rand::Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.random::<f64>() < p).count() as u64
}

/// Runs one canary at `rate` requests/s; returns (verdict, seconds until it
/// was reached, the reason).
fn run(
    spec: &CanarySpec,
    rng: &mut impl rand::Rng,
    rate: f64,
    canary_err: f64,
    canary_slow: f64,
) -> (Verdict, u64, String) {
    let mut st = State::new(spec);
    let mut t = 0;
    while t < spec.max_duration_secs {
        t += spec.interval_secs;
        let pct = spec.steps[st.step] as f64 / 100.0;
        let total = (rate * spec.interval_secs as f64) as u64;
        let canary_n = binomial(rng, total, pct);
        let stable_n = total - canary_n;
        let stable = Observation {
            requests: stable_n,
            errors: binomial(rng, stable_n, HEALTHY_ERR),
            slow: binomial(rng, stable_n, SLOW),
        };
        let canary = Observation {
            requests: canary_n,
            errors: binomial(rng, canary_n, canary_err),
            slow: binomial(rng, canary_n, canary_slow),
        };
        let d = analyze(
            spec,
            &mut st,
            &Interval::Data {
                stable,
                canary,
                consumer: None,
            },
        );
        match d.verdict {
            Verdict::Rollback | Verdict::Complete => return (d.verdict, t, d.reason),
            _ => {}
        }
    }
    (Verdict::Hold, t, String::new())
}

/// Which check rolled back, from the decision's reason.
fn cause(reason: &str) -> &'static str {
    if reason.contains("sequential burn test") {
        "burn test"
    } else if reason.contains("burns its error budget at") {
        "burn guard"
    } else if reason.starts_with("errors") {
        "relative errors"
    } else if reason.starts_with("latency") {
        "relative latency"
    } else {
        "other"
    }
}

fn q(v: &[u64], p: f64) -> u64 {
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let which = args.next().unwrap_or_else(|| "default".into());
    let base = "name: sim\ntarget: command-service\nstable: s\ncanary: c\nstable_version: a\ncanary_version: b\n";
    let yaml = match which.as_str() {
        "stack" => format!("{base}steps: [10, 25, 50, 100]\nanalysis:\n  min_requests: 50\n"),
        _ => base.to_string(),
    };
    let spec = CanarySpec::from_yaml("sim.yaml", &yaml).expect("valid spec");
    let mut rng = rand::rng();
    println!(
        "spec {which}: steps {:?}, interval {} s, min_requests {}, alpha {}, ratio {}, sequential burn {}x; {runs} runs per row",
        spec.steps,
        spec.interval_secs,
        spec.analysis.min_requests,
        spec.analysis.alpha,
        spec.analysis.ratio,
        spec.analysis.sequential_burn_rate
    );
    println!();
    println!(
        "| healthy canaries at | false rollbacks | promoted to 100% | median time to 100% | rolled back by |"
    );
    println!("|---|---|---|---|---|");
    for rate in [10.0, 20.0, 50.0] {
        let (mut fr, mut done, mut times) = (0, 0, vec![]);
        let mut causes = std::collections::BTreeMap::<&str, u32>::new();
        for _ in 0..runs {
            match run(&spec, &mut rng, rate, HEALTHY_ERR, SLOW) {
                (Verdict::Rollback, _, why) => {
                    fr += 1;
                    *causes.entry(cause(&why)).or_default() += 1;
                }
                (Verdict::Complete, t, _) => {
                    done += 1;
                    times.push(t);
                }
                _ => {}
            }
        }
        times.sort_unstable();
        println!(
            "| {rate} req/s | {fr} ({:.2}%) | {done} | {} s | {causes:?} |",
            100.0 * fr as f64 / runs as f64,
            q(&times, 0.5)
        );
    }
    println!();
    println!("| canary error rate | traffic | detected | median | p90 |");
    println!("|---|---|---|---|---|");
    for err in [0.02, 0.05, 0.10, 0.20] {
        for rate in [5.0, 10.0, 20.0, 50.0] {
            let mut detect = vec![];
            for _ in 0..runs {
                if let (Verdict::Rollback, t, _) = run(&spec, &mut rng, rate, err, SLOW) {
                    detect.push(t);
                }
            }
            detect.sort_unstable();
            println!(
                "| {:.0}% | {rate} req/s | {:.1}% | {} s | {} s |",
                100.0 * err,
                100.0 * detect.len() as f64 / runs as f64,
                q(&detect, 0.5),
                q(&detect, 0.9)
            );
        }
    }
    // +200 ms on every canary request: all of them cross a threshold that
    // 2% of stable's requests cross.
    let mut slow = vec![];
    for _ in 0..runs {
        if let (Verdict::Rollback, t, _) = run(&spec, &mut rng, 10.0, HEALTHY_ERR, 1.0) {
            slow.push(t);
        }
    }
    slow.sort_unstable();
    println!();
    println!(
        "slow canary (+200 ms) at 10 req/s: detected {:.1}%, median {} s, p90 {} s",
        100.0 * slow.len() as f64 / runs as f64,
        q(&slow, 0.5),
        q(&slow, 0.9)
    );
}
