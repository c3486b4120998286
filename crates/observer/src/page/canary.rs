//! The canary page (`/canaries`): per canary, its traffic weight over time
//! (a step line through the decision log's `weight_after`) and the
//! decisions themselves.

use std::fmt::Write as _;

use super::esc;
use super::svg::{self, Line};
use crate::rollouts::{CanaryView, DecisionRecord};

/// Decisions the page shows per canary (newest kept).
pub const DECISIONS: i64 = 200;

/// The weight after each decision (oldest first), held until `now`.
pub fn weight_points(decisions: &[DecisionRecord], now: f64) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = decisions
        .iter()
        .map(|d| {
            (
                d.at.timestamp_millis() as f64 / 1000.0,
                f64::from(d.weight_after),
            )
        })
        .collect();
    if let Some(&(_, w)) = p.last() {
        p.push((now, w));
    }
    p
}

/// `decisions` oldest first, per canary in `canaries` order.
pub fn render(canaries: Option<&[(CanaryView, Vec<DecisionRecord>)]>, now: f64) -> String {
    let mut h = super::head("Canaries");
    h.push_str("<p><a href=\"/\">← status</a></p><h1>Canaries</h1>\n");
    let Some(canaries) = canaries else {
        h.push_str("<p data-canary=\"none\">Canary analysis is not configured (set canary_dir and database_url).</p></body></html>\n");
        return h;
    };
    if canaries.is_empty() {
        h.push_str("<p data-canary=\"none\">No canary specs in canary_dir.</p>\n");
    }
    for (c, decisions) in canaries {
        let name = esc(&c.name);
        let (phase, weight) = c
            .rollout
            .as_ref()
            .map_or(("not started", "-".to_string()), |r| {
                (r.phase.as_str(), r.weight.to_string())
            });
        let _ = writeln!(
            h,
            "<section data-canary=\"{name}\"><h2 id=\"canary-{name}\">{name}</h2>\
<p>{} → {} · phase <b class=\"{phase}\" data-field=\"phase\">{phase}</b> · weight \
<b data-field=\"weight\" data-value=\"{weight}\">{weight}%</b> · steps {:?}</p>",
            esc(&c.stable_version),
            esc(&c.canary_version),
            c.steps,
        );
        let points = weight_points(decisions, now);
        h.push_str(&svg::chart(
            &format!("weight-{name}"),
            "Canary weight (%) after each decision",
            &[Line {
                label: "weight",
                points: &points,
                steps: true,
            }],
            &[],
            "%",
        ));
        h.push_str("<table><thead><tr><th>at</th><th>actor</th><th>action</th><th>verdict</th><th>weight after</th><th>reason</th></tr></thead><tbody>\n");
        for d in decisions.iter().rev() {
            let _ = writeln!(
                h,
                "<tr data-decision=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"{v}\">{v}</td><td data-value=\"{w}\">{w}%</td><td style=\"text-align:left\">{}</td></tr>",
                d.id,
                d.at.format("%Y-%m-%d %H:%M:%S UTC"),
                esc(&d.actor),
                esc(&d.action),
                esc(&d.reason),
                v = esc(&d.verdict),
                w = d.weight_after,
            );
        }
        h.push_str("</tbody></table></section>\n");
    }
    h.push_str("</body></html>\n");
    h
}
