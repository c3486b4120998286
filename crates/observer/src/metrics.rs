//! `/metrics`: rendered from the latest snapshots on every scrape, so a group
//! or partition that disappears takes its series with it (no stale gauges).
//! Labels are bounded: group, topic, partition, status; slo, service, window,
//! state. Never member or client ids.

use std::fmt::Write as _;
use std::sync::Arc;

use contracts::metrics::{self as m, Metric};
use tokio::sync::RwLock;

use crate::slos::{SloSnapshot, SloState};
use crate::status::{LagSnapshot, Status};
use crate::tailer::SharedLag;

/// A gauge family written straight into the OpenMetrics text (200k series
/// render in tens of milliseconds; a registry of label sets took 20× longer).
struct Family<'a> {
    out: &'a mut String,
}

fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        std::borrow::Cow::Owned(
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, metric: &Metric) -> Self {
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} gauge", metric.name);
        Self { out }
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", fmt_value(value));
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// What `/metrics` renders at every scrape, before the HTTP families of the
/// server's registry (service-kit's `ServerBuilder::live_metrics`).
#[derive(Clone)]
pub struct Live {
    pub lag: SharedLag,
    pub slo_snapshot: Arc<RwLock<Option<SloSnapshot>>>,
    pub rollouts: Option<Arc<crate::rollouts::Controller>>,
    pub breakers: crate::Breakers,
}

impl Live {
    /// The lag, SLO, canary and breaker families, without `# EOF`.
    pub async fn render(&self) -> String {
        let mut body = {
            let lag = self.lag.read().await;
            let slo = self.slo_snapshot.read().await;
            render(
                lag.enabled.then_some(&lag.snapshot),
                lag.snapshot_duration_seconds,
                slo.as_ref(),
            )
        };
        if let Some(c) = &self.rollouts {
            body.push_str(&render_canaries(&c.gauges().await, &c.metrics()));
        }
        body.push_str(&render_breakers(&self.breakers.all()));
        body
    }
}

/// The lag and SLO families; [`Live::render`] appends the canary and breaker
/// families.
pub fn render(
    lag: Option<&LagSnapshot>,
    lag_duration: Option<f64>,
    slos: Option<&SloSnapshot>,
) -> String {
    let mut out = String::with_capacity(1 << 16);
    if let Some(lag) = lag {
        let n = lag.groups.iter().map(|g| g.partitions.len()).sum::<usize>();
        out.reserve(n * 180);
        for metric in [
            &m::CONSUMER_GROUP_LAG_MESSAGES,
            &m::CONSUMER_GROUP_LAG_SECONDS,
        ] {
            let mut f = Family::new(&mut out, metric);
            for g in &lag.groups {
                for p in &g.partitions {
                    let value = if metric.name == m::CONSUMER_GROUP_LAG_MESSAGES.name {
                        Some(p.lag_messages as f64)
                    } else {
                        p.lag_seconds
                    };
                    if let Some(v) = value {
                        let part = p.partition.to_string();
                        f.sample(
                            metric.name,
                            &[
                                (m::labels::GROUP, &g.group),
                                (m::labels::TOPIC, &p.topic),
                                (m::labels::PARTITION, &part),
                            ],
                            v,
                        );
                    }
                }
            }
        }
        let mut f = Family::new(&mut out, &m::CONSUMER_GROUP_STATUS);
        for g in &lag.groups {
            for s in Status::ALL {
                f.sample(
                    m::CONSUMER_GROUP_STATUS.name,
                    &[
                        (m::labels::GROUP, &g.group),
                        (m::labels::STATUS, s.as_str()),
                    ],
                    if s == g.status { 1.0 } else { 0.0 },
                );
            }
        }
        let mut f = Family::new(&mut out, &m::CONSUMER_GROUP_MEMBERS);
        for g in &lag.groups {
            f.sample(
                m::CONSUMER_GROUP_MEMBERS.name,
                &[(m::labels::GROUP, &g.group)],
                g.members as f64,
            );
        }
        let mut f = Family::new(&mut out, &m::CONSUMER_GROUP_CATCHUP_ETA);
        for g in &lag.groups {
            if let Some(e) = g.rates.catchup_eta_seconds {
                f.sample(
                    m::CONSUMER_GROUP_CATCHUP_ETA.name,
                    &[(m::labels::GROUP, &g.group)],
                    e,
                );
            }
        }
    }
    if let Some(d) = lag_duration {
        Family::new(&mut out, &m::OBSERVER_LAG_SNAPSHOT_DURATION).sample(
            m::OBSERVER_LAG_SNAPSHOT_DURATION.name,
            &[],
            d,
        );
    }
    if let Some(snap) = slos {
        Family::new(&mut out, &m::SLO_BACKEND_UP).sample(
            m::SLO_BACKEND_UP.name,
            &[],
            if snap.backend.status == "up" {
                1.0
            } else {
                0.0
            },
        );
        for metric in [&m::SLO_ERROR_RATIO, &m::SLO_BURN_RATE] {
            let mut f = Family::new(&mut out, metric);
            for v in &snap.slos {
                for w in &v.windows {
                    let value = if metric.name == m::SLO_ERROR_RATIO.name {
                        w.error_ratio
                    } else {
                        w.burn_rate
                    };
                    f.sample(
                        metric.name,
                        &[
                            (m::labels::SLO, &v.name),
                            (m::labels::SERVICE, &v.service),
                            (m::labels::WINDOW, &w.window),
                        ],
                        value,
                    );
                }
            }
        }
        let mut f = Family::new(&mut out, &m::SLO_ERROR_BUDGET_REMAINING);
        for v in &snap.slos {
            if let Some(r) = v.budget_remaining {
                f.sample(
                    m::SLO_ERROR_BUDGET_REMAINING.name,
                    &[(m::labels::SLO, &v.name), (m::labels::SERVICE, &v.service)],
                    r,
                );
            }
        }
        let mut f = Family::new(&mut out, &m::SLO_TIME_TO_EXHAUSTION);
        for v in &snap.slos {
            if let Some(t) = v.time_to_exhaustion_seconds {
                f.sample(
                    m::SLO_TIME_TO_EXHAUSTION.name,
                    &[(m::labels::SLO, &v.name), (m::labels::SERVICE, &v.service)],
                    t,
                );
            }
        }
        let mut f = Family::new(&mut out, &m::SLO_STATE);
        for v in &snap.slos {
            for s in SloState::ALL {
                f.sample(
                    m::SLO_STATE.name,
                    &[
                        (m::labels::SLO, &v.name),
                        (m::labels::SERVICE, &v.service),
                        (m::labels::STATE, s.as_str()),
                    ],
                    if s == v.state { 1.0 } else { 0.0 },
                );
            }
        }
    }
    out
}

/// The canary controller's series: decisions by verdict (counter), and per
/// canary its weight, phase and the running statistics of the current step.
pub fn render_canaries(
    gauges: &[crate::rollouts::CanaryGauges],
    counters: &crate::rollouts::RolloutMetrics,
) -> String {
    let mut out = String::new();
    let d = &m::CANARY_DECISIONS;
    let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
    let _ = writeln!(out, "# TYPE {} counter", d.name);
    let mut f = Family { out: &mut out };
    let canaries: std::collections::BTreeSet<&str> = gauges
        .iter()
        .map(|g| g.canary.as_str())
        .chain(counters.decisions.keys().map(|(c, _)| c.as_str()))
        .collect();
    for c in &canaries {
        // The analysis' verdicts, and blue-green's scale-downs.
        let verdicts = canary::Verdict::ALL
            .map(canary::Verdict::as_str)
            .into_iter()
            .chain([crate::rollouts::SCALE_DOWN]);
        for v in verdicts {
            let n = counters
                .decisions
                .get(&(c.to_string(), v))
                .copied()
                .unwrap_or(0);
            f.sample(
                &d.series(),
                &[(m::labels::CANARY, c), (m::labels::VERDICT, v)],
                n as f64,
            );
        }
    }
    let mut f = Family::new(&mut out, &m::CANARY_WEIGHT);
    for g in gauges {
        f.sample(
            m::CANARY_WEIGHT.name,
            &[(m::labels::CANARY, &g.canary)],
            g.weight as f64,
        );
    }
    let mut f = Family::new(&mut out, &m::CANARY_PHASE);
    for g in gauges {
        for p in crate::rollouts::Phase::ALL {
            f.sample(
                m::CANARY_PHASE.name,
                &[
                    (m::labels::CANARY, &g.canary),
                    (m::labels::PHASE, p.as_str()),
                ],
                if p == g.phase { 1.0 } else { 0.0 },
            );
        }
    }
    let mut f = Family::new(&mut out, &m::CANARY_LOG_LIKELIHOOD_RATIO);
    for g in gauges {
        for (test, v) in [("errors", g.error_llr), ("latency", g.latency_llr)] {
            f.sample(
                m::CANARY_LOG_LIKELIHOOD_RATIO.name,
                &[(m::labels::CANARY, &g.canary), (m::labels::TEST, test)],
                v,
            );
        }
    }
    let mut f = Family::new(&mut out, &m::CANARY_ROLLBACK_BOUNDARY);
    for g in gauges {
        f.sample(
            m::CANARY_ROLLBACK_BOUNDARY.name,
            &[(m::labels::CANARY, &g.canary)],
            g.boundary,
        );
    }
    out
}

/// The observer's circuit breakers (Prometheus, Alertmanager, the rollout
/// driver): state and calls by outcome.
pub fn render_breakers(breakers: &[&telemetry::retry::CircuitBreaker]) -> String {
    let mut out = String::new();
    let mut f = Family::new(&mut out, &m::CIRCUIT_BREAKER_STATE);
    for b in breakers {
        f.sample(
            m::CIRCUIT_BREAKER_STATE.name,
            &[
                (m::labels::SERVICE, crate::SERVICE),
                (m::labels::DEPENDENCY, &b.dependency),
            ],
            b.state().value() as f64,
        );
    }
    let d = &m::DEPENDENCY_CALLS;
    let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
    let _ = writeln!(out, "# TYPE {} counter", d.name);
    let mut f = Family { out: &mut out };
    for b in breakers {
        let c = b.counts();
        for (outcome, n) in [("ok", c.ok), ("failed", c.failed), ("rejected", c.rejected)] {
            f.sample(
                &d.series(),
                &[
                    (m::labels::SERVICE, crate::SERVICE),
                    (m::labels::DEPENDENCY, &b.dependency),
                    (m::labels::OUTCOME, outcome),
                ],
                n as f64,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_renders_nothing_without_data() {
        let mut out = String::new();
        Family::new(&mut out, &m::SLO_BACKEND_UP).sample("x", &[("a", "q\"b\\c")], 1.5);
        assert!(out.contains("x{a=\"q\\\"b\\\\c\"} 1.5"), "{out}");
        assert_eq!(render(None, None, None), "");
    }
}
