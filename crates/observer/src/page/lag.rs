//! The lag page (`/lag`): lag in seconds per consumer group over the last
//! snapshots the tailer kept in memory (`tailer::HISTORY_POINTS`), and the
//! latest value per group as the API reports it.

use std::fmt::Write as _;

use super::svg::{self, Line};
use super::{esc, opt};
use crate::tailer::{LagPoint, LagState};

/// Per group, `(unix seconds, lag seconds)` in snapshot order; a snapshot
/// without a lag in seconds for the group (nothing to consume) is a gap.
pub fn series(history: &[LagPoint]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for p in history {
        let t = p.observed_at_ms as f64 / 1000.0;
        for (group, lag) in &p.lag_seconds {
            let at = match out.iter().position(|(g, _)| g == group) {
                Some(i) => i,
                None => {
                    out.push((group.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            out[at].1.push((t, lag.unwrap_or(f64::NAN)));
        }
    }
    out
}

pub fn render(state: &LagState, history: &[LagPoint]) -> String {
    let mut h = super::head("Consumer lag");
    h.push_str("<p><a href=\"/\">← status</a></p><h1>Consumer lag</h1>\n");
    if !state.enabled {
        h.push_str("<p>No broker configured: the lag tailer is off.</p></body></html>\n");
        return h;
    }
    if let Some(e) = &state.error {
        let _ = writeln!(
            h,
            "<p class=\"error\">Last lag snapshot failed: {}</p>",
            esc(e)
        );
    }
    let _ = writeln!(
        h,
        "<p>Snapshot at <span id=\"lag-observed-at\" data-value=\"{}\">{}</span></p>",
        state.snapshot.observed_at_ms,
        super::utc(state.snapshot.observed_at_ms as f64 / 1000.0)
    );
    let series = series(history);
    let lines: Vec<Line<'_>> = series
        .iter()
        .map(|(g, p)| Line {
            label: g,
            points: p,
            steps: false,
        })
        .collect();
    let span = match (history.first(), history.last()) {
        (Some(a), Some(b)) => (b.observed_at_ms - a.observed_at_ms) as f64 / 1000.0,
        _ => 0.0,
    };
    h.push_str(&svg::chart(
        "lag-seconds",
        &format!(
            "Lag in seconds per group, last {} ({} snapshots kept in memory)",
            super::duration_words(Some(span)),
            history.len()
        ),
        &lines,
        &[],
        " s",
    ));
    h.push_str("<table><thead><tr><th>group</th><th>status</th><th>lag (messages)</th><th>lag (seconds)</th></tr></thead><tbody>\n");
    for g in &state.snapshot.groups {
        let _ = writeln!(
            h,
            "<tr data-group=\"{n}\"><td>{n}</td><td data-field=\"status\" class=\"{st}\">{st}</td>\
<td data-field=\"lag_messages\" data-value=\"{lm}\">{lm}</td>\
<td data-field=\"lag_seconds\" data-value=\"{}\">{}</td></tr>",
            opt(g.lag_seconds, 3),
            opt(g.lag_seconds, 1),
            n = esc(&g.group),
            st = g.status.as_str(),
            lm = g.lag_messages,
        );
    }
    h.push_str("</tbody></table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_follow_groups_across_snapshots_with_gaps() {
        let p = |ms, v: &[(&str, Option<f64>)]| LagPoint {
            observed_at_ms: ms,
            lag_seconds: v.iter().map(|(g, l)| (g.to_string(), *l)).collect(),
        };
        let s = series(&[
            p(1000, &[("a", Some(1.0))]),
            p(2000, &[("a", None), ("b", Some(3.0))]),
        ]);
        assert_eq!(s[0].0, "a");
        assert_eq!(s[0].1[0], (1.0, 1.0));
        assert!(s[0].1[1].1.is_nan());
        assert_eq!(s[1], ("b".to_string(), vec![(2.0, 3.0)]));
    }
}
