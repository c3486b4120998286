//! The per-SLO page (`/slo/{name}`): error-budget burn-down over the
//! period, the burn-rate table per alert tier with its thresholds, request
//! and error rates, and the tiers firing. Numbers come from the same
//! snapshot the API serves; graphs from Prometheus range queries.

use std::fmt::Write as _;

use slo::model::Slo;

use super::svg::{self, Line};
use super::{esc, history, opt};
use crate::slos::SloView;

/// The graphs of one SLO page, or why they are missing.
pub struct Graphs {
    pub span: f64,
    pub budget: history::Points,
    pub rates: Option<(history::Points, history::Points)>,
    pub error: Option<String>,
}

/// Range-query everything the page draws; a Prometheus failure leaves the
/// graphs empty and says why, the numbers from the snapshot stay.
pub async fn graphs(client: Option<&crate::prom::PromClient>, slo: &Slo, now: f64) -> Graphs {
    let Some(client) = client else {
        return Graphs {
            span: 0.0,
            budget: Vec::new(),
            rates: None,
            error: Some("Prometheus is not configured".into()),
        };
    };
    let budget = history::budget(client, slo, now).await;
    let (span, budget, error) = match budget {
        Ok((span, b)) => (span, b, None),
        Err(e) => (0.0, Vec::new(), Some(e.to_string())),
    };
    let (rates, error) = match error {
        Some(e) => (None, Some(e)),
        None => match history::rates(client, slo, span, now).await {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    Graphs {
        span,
        budget,
        rates,
        error,
    }
}

/// The page for `slo`, its `view` and when it was evaluated (None before
/// the first evaluation) and its `graphs`.
pub fn render(
    slo: &Slo,
    evaluated: Option<(&SloView, f64)>,
    g: &Graphs,
    period_days: f64,
) -> String {
    let view = evaluated.map(|(v, _)| v);
    let name = esc(&slo.name);
    let mut h = super::head(&format!("SLO {}", slo.name));
    let _ = writeln!(
        h,
        "<p><a href=\"/\">← status</a></p><h1>SLO <span id=\"slo-name\">{name}</span></h1>\
<p>{} · objective {}% over {} · SLI {}</p>",
        esc(&slo.service),
        slo.objective * 100.0,
        esc(&slo.window.words()),
        esc(slo.sli.kind_name()),
    );
    if let Some((v, at)) = evaluated {
        let _ = writeln!(
            h,
            "<p>evaluated at <span id=\"slo-evaluated-at\" data-value=\"{at:.3}\">{}</span></p>",
            super::utc(at)
        );
        let _ = writeln!(
            h,
            "<p>state <b class=\"{st}\" id=\"slo-state\">{st}</b> · budget remaining \
<b id=\"budget-remaining\" data-value=\"{}\">{}%</b> · SLI <span id=\"sli\" data-value=\"{}\">{}%</span></p>",
            opt(v.budget_remaining, 9),
            opt(v.budget_remaining.map(|x| x * 100.0), 2),
            opt(v.sli, 9),
            opt(v.sli.map(|x| x * 100.0), 4),
            st = v.state.as_str(),
        );
    } else {
        h.push_str("<p id=\"slo-state\">not evaluated yet</p>\n");
    }
    if let Some(e) = &g.error {
        let _ = writeln!(
            h,
            "<p class=\"error\" id=\"graph-error\">Graphs unavailable: {}</p>",
            esc(e)
        );
    }
    let span = super::duration_words(Some(g.span));
    h.push_str(&svg::chart(
        "burn-down",
        &format!("Error budget remaining, last {span}"),
        &[Line {
            label: "budget remaining",
            points: &g.budget,
            steps: false,
        }],
        &[(0.0, "budget exhausted")],
        "",
    ));
    burn_table(&mut h, slo, view, period_days);
    if let Some((requests, errors)) = &g.rates {
        h.push_str(&svg::chart(
            "requests",
            "Requests per second (5m rate)",
            &[Line {
                label: "requests/s",
                points: requests,
                steps: false,
            }],
            &[],
            "",
        ));
        h.push_str(&svg::chart(
            "errors",
            "Errors per second (5m rate)",
            &[Line {
                label: "errors/s",
                points: errors,
                steps: false,
            }],
            &[],
            "",
        ));
    } else {
        h.push_str("<p>This SLO is budgeted in time slices, not requests: no request or error rates.</p>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// One row per tier: its windows' burn rates against its threshold, and
/// whether it fires (as the evaluation decided, `view.firing`).
fn burn_table(h: &mut String, slo: &Slo, view: Option<&SloView>, period_days: f64) {
    let burn = |w: slo::duration::Dur| {
        view.and_then(|v| v.windows.iter().find(|x| x.window == w.prom()))
            .map(|x| x.burn_rate)
    };
    h.push_str("<h2>Burn rate per alert window</h2><table id=\"burn-rates\"><thead><tr><th>tier</th><th>severity</th><th>long window</th><th>burn (long)</th><th>short window</th><th>burn (short)</th><th>threshold</th><th>firing</th></tr></thead><tbody>\n");
    for t in &slo.alerting.tiers {
        // The rules' threshold as a burn rate: factor scaled to the period.
        let threshold = t.factor * period_days / 30.0;
        let firing = view.is_some_and(|v| v.firing.iter().any(|f| f.tier == t.number));
        let cell = |w: slo::duration::Dur, field: &str| {
            let b = burn(w);
            let over = b.is_some_and(|b| b > threshold);
            format!(
                "<td data-field=\"{field}\" data-window=\"{w}\" data-value=\"{}\"{}>{}</td>",
                opt(b, 9),
                if over { " class=\"burning\"" } else { "" },
                opt(b, 2),
                w = w.prom(),
            )
        };
        let _ = writeln!(
            h,
            "<tr data-tier=\"{n}\"><td>{n}</td><td>{sev}</td><td>{lw}</td>{lb}<td>{sw}</td>{sb}\
<td data-field=\"threshold\" data-value=\"{th:.9}\">{th:.2}</td>\
<td data-field=\"firing\" data-value=\"{firing}\" class=\"{cls}\">{}</td></tr>",
            if firing { "FIRING" } else { "no" },
            n = t.number,
            sev = esc(t.severity.as_str()),
            lw = t.long.prom(),
            lb = cell(t.long, "burn_long"),
            sw = t.short.prom(),
            sb = cell(t.short, "burn_short"),
            th = threshold,
            cls = if firing { "burning" } else { "ok" },
        );
    }
    h.push_str("</tbody></table>\n");
    if let Some(v) = view
        && !v.firing.is_empty()
    {
        h.push_str("<h2>Firing</h2><ul id=\"firing\">");
        for f in &v.firing {
            let _ = write!(
                h,
                "<li data-tier=\"{}\">tier {} · {} · {}</li>",
                f.tier,
                f.tier,
                esc(&f.severity),
                esc(&f.alertname)
            );
        }
        h.push_str("</ul>\n");
    }
}
