//! `/metrics`: rendered from the latest snapshots on every scrape, so a group
//! or partition that disappears takes its series with it (no stale gauges).
//! Labels are bounded: group, topic, partition, status; slo, service, window,
//! state. Never member or client ids.

use std::sync::atomic::AtomicU64;

use contracts::metrics::{self as m, Metric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::slos::{SloSnapshot, SloState};
use crate::status::{LagSnapshot, Status};

type Labels = Vec<(String, String)>;
type GaugeF = Gauge<f64, AtomicU64>;
type GaugeFamily = Family<Labels, GaugeF>;

struct Builder {
    registry: Registry,
}

impl Builder {
    fn family(&mut self, metric: &Metric) -> GaugeFamily {
        let f = GaugeFamily::default();
        self.registry.register(metric.name, metric.help, f.clone());
        f
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn render(
    lag: Option<&LagSnapshot>,
    lag_duration: Option<f64>,
    slos: Option<&SloSnapshot>,
) -> String {
    let mut b = Builder {
        registry: Registry::default(),
    };
    if let Some(lag) = lag {
        let msgs = b.family(&m::CONSUMER_GROUP_LAG_MESSAGES);
        let secs = b.family(&m::CONSUMER_GROUP_LAG_SECONDS);
        let status = b.family(&m::CONSUMER_GROUP_STATUS);
        let members = b.family(&m::CONSUMER_GROUP_MEMBERS);
        let eta = b.family(&m::CONSUMER_GROUP_CATCHUP_ETA);
        for g in &lag.groups {
            for p in &g.partitions {
                let part = p.partition.to_string();
                let labels = l(&[
                    (m::labels::GROUP, &g.group),
                    (m::labels::TOPIC, &p.topic),
                    (m::labels::PARTITION, &part),
                ]);
                msgs.get_or_create(&labels).set(p.lag_messages as f64);
                if let Some(s) = p.lag_seconds {
                    secs.get_or_create(&labels).set(s);
                }
            }
            for s in Status::ALL {
                status
                    .get_or_create(&l(&[
                        (m::labels::GROUP, &g.group),
                        (m::labels::STATUS, s.as_str()),
                    ]))
                    .set(if s == g.status { 1.0 } else { 0.0 });
            }
            members
                .get_or_create(&l(&[(m::labels::GROUP, &g.group)]))
                .set(g.members as f64);
            if let Some(e) = g.rates.catchup_eta_seconds {
                eta.get_or_create(&l(&[(m::labels::GROUP, &g.group)]))
                    .set(e);
            }
        }
    }
    if let Some(d) = lag_duration {
        let f = b.family(&m::OBSERVER_LAG_SNAPSHOT_DURATION);
        f.get_or_create(&Vec::new()).set(d);
    }
    if let Some(snap) = slos {
        let ratio = b.family(&m::SLO_ERROR_RATIO);
        let burn = b.family(&m::SLO_BURN_RATE);
        let remaining = b.family(&m::SLO_ERROR_BUDGET_REMAINING);
        let tte = b.family(&m::SLO_TIME_TO_EXHAUSTION);
        let state = b.family(&m::SLO_STATE);
        let up = b.family(&m::SLO_BACKEND_UP);
        up.get_or_create(&Vec::new())
            .set(if snap.backend.status == "up" {
                1.0
            } else {
                0.0
            });
        for v in &snap.slos {
            let base = [
                (m::labels::SLO, v.name.as_str()),
                (m::labels::SERVICE, v.service.as_str()),
            ];
            for w in &v.windows {
                let mut labels = l(&base);
                labels.push((m::labels::WINDOW.to_string(), w.window.clone()));
                ratio.get_or_create(&labels).set(w.error_ratio);
                burn.get_or_create(&labels).set(w.burn_rate);
            }
            if let Some(r) = v.budget_remaining {
                remaining.get_or_create(&l(&base)).set(r);
            }
            if let Some(t) = v.time_to_exhaustion_seconds {
                tte.get_or_create(&l(&base)).set(t);
            }
            for s in SloState::ALL {
                let mut labels = l(&base);
                labels.push((m::labels::STATE.to_string(), s.as_str().to_string()));
                state
                    .get_or_create(&labels)
                    .set(if s == v.state { 1.0 } else { 0.0 });
            }
        }
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &b.registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}
