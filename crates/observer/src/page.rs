//! The status page: one server-rendered HTML document, no JavaScript. Every
//! number sits in an element with `data-*` attributes naming what it is, so
//! tests (and scrapers) read it from the DOM.

use std::fmt::Write as _;

use crate::slos::SloSnapshot;
use crate::status::LagSnapshot;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.digits$}"))
}

fn duration_words(secs: Option<f64>) -> String {
    match secs {
        None => "–".into(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{:.1} d", s / 86_400.0),
    }
}

pub fn render(
    lag: Option<&LagSnapshot>,
    lag_error: Option<&str>,
    slos: Option<&SloSnapshot>,
    canaries: Option<&crate::rollouts::CanaryList>,
) -> String {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"15\"><title>Observer status</title>\
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}\
.OK,.ok,.IDLE{color:#1a7f37}.WARN,.no_traffic{color:#9a6700}.STOP,.STALL,.REWIND,.burning,.backend_down,.error,.rolled_back,.aborted{color:#cf222e;font-weight:bold}.succeeded{color:#1a7f37}</style>\
</head><body>\n<h1>Observer status</h1>\n");

    h.push_str("<section id=\"slos\"><h2>SLOs</h2>\n");
    match slos {
        None => h.push_str(
            "<p data-backend=\"pending\">SLO evaluation not run yet (or not configured).</p>\n",
        ),
        Some(s) => {
            let _ = writeln!(
                h,
                "<p>Prometheus <span id=\"backend-status\" data-backend=\"{}\" class=\"{}\">{}</span> — evaluated at <span id=\"slo-evaluated-at\" data-value=\"{:.3}\">{}</span></p>",
                s.backend.status,
                if s.backend.status == "up" {
                    "ok"
                } else {
                    "backend_down"
                },
                s.backend.status,
                s.evaluated_at,
                chrono::DateTime::from_timestamp(s.evaluated_at as i64, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
            h.push_str("<table><thead><tr><th>SLO</th><th>service</th><th>objective</th><th>state</th><th>SLI</th><th>budget remaining</th><th>burn 1h</th><th>burn 5m</th><th>time to exhaustion</th><th>firing</th></tr></thead><tbody>\n");
            for v in &s.slos {
                let burn = |w: &str| {
                    v.windows
                        .iter()
                        .find(|x| x.window == w)
                        .map(|x| x.burn_rate)
                };
                let name = esc(&v.name);
                let firing: Vec<String> = v
                    .firing
                    .iter()
                    .map(|f| format!("tier {} ({})", f.tier, f.severity))
                    .collect();
                let _ = writeln!(
                    h,
                    "<tr data-slo=\"{name}\"><td>{name}</td><td>{}</td><td>{}</td>\
<td data-field=\"state\" class=\"{st}\">{st}</td>\
<td data-field=\"sli\" data-value=\"{}\">{}</td>\
<td data-field=\"budget_remaining\" data-value=\"{}\">{}</td>\
<td data-field=\"burn_1h\" data-value=\"{}\">{}</td>\
<td data-field=\"burn_5m\" data-value=\"{}\">{}</td>\
<td data-field=\"time_to_exhaustion\" data-value=\"{}\">{}</td>\
<td data-field=\"firing\">{}</td></tr>",
                    esc(&v.service),
                    v.objective,
                    opt(v.sli, 9),
                    opt(v.sli.map(|x| x * 100.0), 4) + "%",
                    opt(v.budget_remaining, 9),
                    opt(v.budget_remaining.map(|x| x * 100.0), 2) + "%",
                    opt(burn("1h"), 9),
                    opt(burn("1h"), 2),
                    opt(burn("5m"), 9),
                    opt(burn("5m"), 2),
                    opt(v.time_to_exhaustion_seconds, 0),
                    duration_words(v.time_to_exhaustion_seconds),
                    esc(&firing.join(", ")),
                    st = v.state.as_str(),
                );
            }
            h.push_str("</tbody></table>\n");
        }
    }
    h.push_str("</section>\n<section id=\"groups\"><h2>Consumer groups</h2>\n");
    if let Some(e) = lag_error {
        let _ = writeln!(
            h,
            "<p class=\"error\" id=\"lag-error\">Last lag snapshot failed: {}</p>",
            esc(e)
        );
    }
    match lag {
        None => h.push_str("<p>No lag snapshot yet (or no broker configured).</p>\n"),
        Some(l) => {
            let _ = writeln!(
                h,
                "<p>Snapshot at <span id=\"lag-observed-at\" data-value=\"{}\">{}</span>, status window {} s</p>",
                l.observed_at_ms,
                chrono::DateTime::from_timestamp_millis(l.observed_at_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                l.window_ms as f64 / 1000.0
            );
            h.push_str("<table><thead><tr><th>group</th><th>state</th><th>members</th><th>status</th><th>lag (messages)</th><th>lag (seconds)</th><th>consume/s</th><th>produce/s</th><th>catch-up ETA</th></tr></thead><tbody>\n");
            for g in &l.groups {
                let name = esc(&g.group);
                let _ = writeln!(
                    h,
                    "<tr data-group=\"{name}\"><td>{name}</td><td data-field=\"state\">{}</td>\
<td data-field=\"members\" data-value=\"{m}\">{m}</td>\
<td data-field=\"status\" class=\"{st}\">{st}</td>\
<td data-field=\"lag_messages\" data-value=\"{lm}\">{lm}</td>\
<td data-field=\"lag_seconds\" data-value=\"{}\">{}</td>\
<td data-field=\"consume_per_sec\">{:.1}</td><td data-field=\"produce_per_sec\">{:.1}</td>\
<td data-field=\"catchup_eta\" data-value=\"{}\">{}</td></tr>",
                    esc(&g.state),
                    opt(g.lag_seconds, 3),
                    opt(g.lag_seconds, 1),
                    g.rates.consume_per_sec,
                    g.rates.produce_per_sec,
                    opt(g.rates.catchup_eta_seconds, 1),
                    if g.lag_messages > 0 && g.rates.catchup_eta_seconds.is_none() {
                        "not catching up".to_string()
                    } else {
                        duration_words(g.rates.catchup_eta_seconds)
                    },
                    m = g.members,
                    st = g.status.as_str(),
                    lm = g.lag_messages,
                );
            }
            h.push_str("</tbody></table>\n");
        }
    }
    h.push_str("</section>\n<section id=\"canary\"><h2>Canary</h2>\n");
    match canaries {
        None => h.push_str(
            "<p data-canary=\"none\">Canary analysis is not configured (set canary_dir and database_url).</p>\n",
        ),
        Some(list) if list.canaries.is_empty() && list.spec_errors.is_empty() => h.push_str(
            "<p data-canary=\"none\">No canary specs in canary_dir.</p>\n",
        ),
        Some(list) => {
            h.push_str("<table><thead><tr><th>canary</th><th>version</th><th>phase</th><th>weight</th><th>step</th><th>last decision</th></tr></thead><tbody>\n");
            for c in &list.canaries {
                let (phase, weight, step) = match &c.rollout {
                    Some(r) => (
                        r.phase.as_str(),
                        r.weight.to_string(),
                        format!("{}/{}", r.analysis.step + 1, c.steps.len()),
                    ),
                    None => ("not started", "-".into(), "-".into()),
                };
                let last = c
                    .last_decision
                    .as_ref()
                    .map(|d| format!("{} {} by {}: {}", d.action, d.verdict, d.actor, d.reason))
                    .unwrap_or_default();
                let _ = writeln!(
                    h,
                    "<tr data-canary=\"{n}\"><td>{n}</td><td>{v}</td><td class=\"{phase}\" data-value=\"{phase}\">{phase}</td><td data-value=\"{weight}\">{weight}%</td><td>{step}</td><td style=\"text-align:left\">{last}</td></tr>",
                    n = esc(&c.name),
                    v = esc(&c.canary_version),
                    last = esc(&last),
                );
            }
            h.push_str("</tbody></table>\n");
            for e in &list.spec_errors {
                let _ = writeln!(h, "<p class=\"error\">spec error: {}</p>", esc(e));
            }
        }
    }
    h.push_str("</section>\n");
    h.push_str("<footer><a href=\"/api/v1/slos\">/api/v1/slos</a> · <a href=\"/api/v1/lag\">/api/v1/lag</a> · <a href=\"/api/v1/report\">/api/v1/report</a> · <a href=\"/metrics\">/metrics</a></footer>\n</body></html>\n");
    h
}
