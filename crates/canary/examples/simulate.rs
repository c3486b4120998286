//! Simulated canaries: false-rollback rate over healthy canaries and
//! detection time for a canary failing 10% of requests, at 20 requests/s
//! through the default steps (5, 10, 25, 50, 100%) and 10 s intervals.
//!
//! `cargo run --release -p canary --example simulate [-- RUNS]`

use canary::analysis::State;
use canary::{CanarySpec, Interval, Observation, Verdict, analyze};

const RATE: f64 = 20.0;

fn binomial(rng: &mut impl rand::Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.random::<f64>() < p).count() as u64
}

/// Runs one canary; returns (verdict, seconds until it was reached).
fn run(
    spec: &CanarySpec,
    rng: &mut impl rand::Rng,
    stable_err: f64,
    canary_err: f64,
    slow: f64,
    canary_slow: f64,
) -> (Verdict, u64) {
    let mut st = State::new(spec);
    let mut t = 0;
    while t < spec.max_duration_secs {
        t += spec.interval_secs;
        let pct = spec.steps[st.step] as f64 / 100.0;
        let total = (RATE * spec.interval_secs as f64) as u64;
        let canary_n = binomial(rng, total, pct);
        let stable_n = total - canary_n;
        let stable = Observation {
            requests: stable_n,
            errors: binomial(rng, stable_n, stable_err),
            slow: binomial(rng, stable_n, slow),
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
            Verdict::Rollback | Verdict::Complete => return (d.verdict, t),
            _ => {}
        }
    }
    (Verdict::Hold, t)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let spec = CanarySpec::from_yaml(
        "sim.yaml",
        "name: sim\ntarget: command-service\nstable: s\ncanary: c\nstable_version: a\ncanary_version: b\n",
    )
    .expect("valid spec");
    let mut rng = rand::rng();
    // Healthy: both builds fail 0.05% of requests (inside a 99.9% SLO) and 2%
    // are slower than the latency threshold.
    let mut false_rollbacks = 0;
    let mut completed = 0;
    let mut durations = vec![];
    for _ in 0..runs {
        let (v, t) = run(&spec, &mut rng, 0.0005, 0.0005, 0.02, 0.02);
        match v {
            Verdict::Rollback => false_rollbacks += 1,
            Verdict::Complete => {
                completed += 1;
                durations.push(t);
            }
            _ => {}
        }
    }
    durations.sort_unstable();
    let mut detect = vec![];
    let mut missed = 0;
    for _ in 0..runs {
        match run(&spec, &mut rng, 0.0005, 0.10, 0.02, 0.02) {
            (Verdict::Rollback, t) => detect.push(t),
            _ => missed += 1,
        }
    }
    detect.sort_unstable();
    // +200 ms on every canary request: all of them cross a 250 ms threshold
    // that 2% of stable's requests cross.
    let mut slow_detect = vec![];
    for _ in 0..runs {
        if let (Verdict::Rollback, t) = run(&spec, &mut rng, 0.0005, 0.0005, 0.02, 1.0) {
            slow_detect.push(t);
        }
    }
    slow_detect.sort_unstable();
    let q = |v: &[u64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "runs per scenario: {runs}; traffic {RATE} req/s; steps {:?}; interval {} s; alpha {}",
        spec.steps, spec.interval_secs, spec.analysis.alpha
    );
    println!(
        "healthy canaries: {false_rollbacks} false rollbacks ({:.2}%), {completed} promoted to 100% (median {} s)",
        100.0 * false_rollbacks as f64 / runs as f64,
        q(&durations, 0.5)
    );
    println!(
        "10%-error canaries: detected {} ({:.1}%), median detection {} s, p90 {} s, missed {missed}",
        detect.len(),
        100.0 * detect.len() as f64 / runs as f64,
        q(&detect, 0.5),
        q(&detect, 0.9)
    );
    println!(
        "slow canaries (+200 ms): detected {} ({:.1}%), median detection {} s",
        slow_detect.len(),
        100.0 * slow_detect.len() as f64 / runs as f64,
        q(&slow_detect, 0.5)
    );
}
