//! The status pages: server-rendered HTML with inline SVG graphs, no
//! JavaScript. `/` lists the SLOs (budget remaining and a sparkline each),
//! the consumer groups and the canaries; `/slo/{name}` (`slo.rs`), `/lag`
//! (`lag.rs`) and `/canaries` (`canary.rs`) go deeper. Every number sits in
//! an element with `data-*` attributes naming what it is, so tests (and
//! scrapers) read it from the DOM; the numbers are the JSON API's.

mod canary;
mod history;
mod lag;
mod slo;
pub mod svg;

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use service_kit::problem::ApiError;

use crate::AppState;
use crate::slos::SloSnapshot;
use crate::status::LagSnapshot;

/// `/`, `/slo/{name}`, `/lag` and `/canaries`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(status_page))
        .route("/slo/{name}", get(slo_page))
        .route("/lag", get(lag_page))
        .route("/canaries", get(canary_page))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}\
figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}\
.OK,.ok,.IDLE{color:#1a7f37}.WARN,.no_traffic{color:#9a6700}.STOP,.STALL,.REWIND,.burning,.backend_down,.error,.rolled_back,.aborted{color:#cf222e;font-weight:bold}.succeeded{color:#1a7f37}";

/// The document up to and including `<body>`, refreshing every 15 s.
fn head(title: &str) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"15\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
    h
}

async fn status_page(State(s): State<AppState>) -> Html<String> {
    let sparklines = sparklines(&s).await;
    let lag = s.lag.read().await;
    let slo = s.slo_snapshot.read().await;
    let canaries = match &s.rollouts {
        Some(c) => Some(c.list().await),
        None => None,
    };
    Html(render(
        lag.enabled.then_some(&lag.snapshot),
        lag.error.as_deref(),
        slo.as_ref(),
        canaries.as_ref(),
        &sparklines,
    ))
}

/// Budget remaining over time per SLO (empty when Prometheus cannot say).
async fn sparklines(s: &AppState) -> Vec<(String, history::Points)> {
    let Some(client) = &s.prom else {
        return Vec::new();
    };
    let now = crate::slos::now_secs();
    futures::future::join_all(s.slos.iter().map(|slo| async move {
        let points = history::budget(client, slo, now)
            .await
            .map(|(_, p)| p)
            .unwrap_or_default();
        (slo.name.clone(), points)
    }))
    .await
}

async fn slo_page(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Html<String>, ApiError> {
    let Some(spec) = s.slos.iter().find(|x| x.name == name) else {
        return Err(ApiError::NotFound(format!("no SLO named '{name}'")));
    };
    let now = crate::slos::now_secs();
    let graphs = slo::graphs(s.prom.as_ref(), spec, now).await;
    let snap = s.slo_snapshot.read().await;
    let view = snap
        .as_ref()
        .and_then(|x| x.slos.iter().find(|v| v.name == name));
    let at = snap.as_ref().map_or(now, |x| x.evaluated_at);
    Ok(Html(slo::render(
        spec,
        view.map(|v| (v, at)),
        &graphs,
        crate::slos::period_days(spec, at),
    )))
}

async fn lag_page(State(s): State<AppState>) -> Html<String> {
    // The tailer records history under the state's write lock: read after
    // the state, the history ends at the snapshot shown.
    let state = s.lag.read().await;
    let history = s.lag.history().await;
    Html(lag::render(&state, &history))
}

async fn canary_page(State(s): State<AppState>) -> Html<String> {
    let now = crate::slos::now_secs();
    let Some(c) = &s.rollouts else {
        return Html(canary::render(None, now));
    };
    let mut out = Vec::new();
    for view in c.list().await.canaries {
        // A failed read shows the canary without its history.
        let mut decisions = c
            .decisions(&view.name, canary::DECISIONS, None)
            .await
            .unwrap_or_default();
        decisions.reverse();
        out.push((view, decisions));
    }
    Html(canary::render(Some(&out), now))
}

/// Unix seconds as an RFC 3339 time in UTC (empty when out of range).
fn utc(secs: f64) -> String {
    chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

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
    sparklines: &[(String, history::Points)],
) -> String {
    let mut h = head("Observer status");
    h.push_str("<h1>Observer status</h1>\n<nav><a href=\"/lag\">lag over time</a> · <a href=\"/canaries\">canaries over time</a></nav>\n");

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
                utc(s.evaluated_at)
            );
            h.push_str("<table><thead><tr><th>SLO</th><th>service</th><th>objective</th><th>state</th><th>SLI</th><th>budget remaining</th><th>burn 1h</th><th>burn 5m</th><th>time to exhaustion</th><th>firing</th><th>budget over time</th></tr></thead><tbody>\n");
            for v in &s.slos {
                let burn = |w: &str| {
                    v.windows
                        .iter()
                        .find(|x| x.window == w)
                        .map(|x| x.burn_rate)
                };
                let name = esc(&v.name);
                let spark = sparklines
                    .iter()
                    .find(|(n, _)| *n == v.name)
                    .map(|(_, p)| svg::sparkline(p))
                    .unwrap_or_default();
                let firing: Vec<String> = v
                    .firing
                    .iter()
                    .map(|f| format!("tier {} ({})", f.tier, f.severity))
                    .collect();
                let _ = writeln!(
                    h,
                    "<tr data-slo=\"{name}\"><td><a href=\"/slo/{name}\">{name}</a></td><td>{}</td><td>{}</td>\
<td data-field=\"state\" class=\"{st}\">{st}</td>\
<td data-field=\"sli\" data-value=\"{}\">{}</td>\
<td data-field=\"budget_remaining\" data-value=\"{}\">{}</td>\
<td data-field=\"burn_1h\" data-value=\"{}\">{}</td>\
<td data-field=\"burn_5m\" data-value=\"{}\">{}</td>\
<td data-field=\"time_to_exhaustion\" data-value=\"{}\">{}</td>\
<td data-field=\"firing\">{}</td><td data-field=\"sparkline\">{spark}</td></tr>",
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
                utc(l.observed_at_ms as f64 / 1000.0),
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
                    Some(r) if r.strategy == ::canary::Strategy::BlueGreen => (
                        r.phase.as_str(),
                        r.weight.to_string(),
                        // One analysis on the preview, then one switch.
                        match r.blue_green.as_ref().and_then(|b| b.switched_at) {
                            Some(_) => "blue-green: switched".to_string(),
                            None => "blue-green: preview".to_string(),
                        },
                    ),
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
