//! Import of Pyrra `pyrra.dev/v1alpha1` `ServiceLevelObjective` resources.
//! Source of the format and the tiers: github.com/pyrra-dev/pyrra,
//! `kubernetes/api/v1alpha1/servicelevelobjective_types.go`, `slo/rules.go`
//! (`Windows`), `examples/kubernetes/slos/*.yaml`.
//!
//! Mapping (see docs/slo-spec.md, "Migrating from Pyrra"):
//! - `ratio` `errors`/`total` → `ratio` `bad`/`total` selectors;
//! - `latency` `success` (a `_bucket{le=..}` selector) / `total` → `ratio`
//!   `good`/`total` selectors;
//! - `bool_gauge` → `ratio` with `sum_over_time` good and `count_over_time` total;
//! - `target` (string percent) → fraction, exactly; `window` → `rolling`;
//! - Pyrra's tiers for that window (`import::pyrra_tiers`);
//! - `metadata.namespace` → label `namespace`; the service is the namespace
//!   (or `pyrra` without one); `pyrra.dev/<name>` resource labels → label
//!   `<name>` (Pyrra propagates them to its rules the same way);
//! - refused: `grouping` (one SLO per group; our rules aggregate the whole
//!   selector), `latencyNative`, `alerting.disabled`.

use std::collections::BTreeMap;

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use serde_json::Value;

use crate::duration::Dur;
use crate::error::SpecErrors;
use crate::import::{self, Doc, Report};
use crate::spec::*;

pub fn is_pyrra(v: &Value) -> bool {
    v["apiVersion"] == "pyrra.dev/v1alpha1" && v["kind"] == "ServiceLevelObjective"
}

pub fn import(file: &str, text: &str) -> Result<(Vec<SpecFile>, Vec<String>), SpecErrors> {
    let docs = import::documents(file, text)?;
    let mut r = Report::new(file);
    let mut files: BTreeMap<(String, BTreeMap<String, String>), SpecFile> = BTreeMap::new();
    for doc in &docs {
        if !is_pyrra(&doc.value) {
            r.err(
                doc,
                "apiVersion",
                "not a Pyrra ServiceLevelObjective",
                "use `apiVersion: pyrra.dev/v1alpha1` with `kind: ServiceLevelObjective`",
            );
            continue;
        }
        if let Some((service, labels, slo)) = one(&mut r, doc) {
            files
                .entry((service.clone(), labels.clone()))
                .or_insert_with(|| SpecFile {
                    service,
                    labels,
                    slos: Vec::new(),
                })
                .slos
                .push(slo);
        }
    }
    r.finish(files.into_values().collect())
}

/// `metric{a="b",c=~"d"}` → metric and our matcher notation.
fn selector(r: &mut Report<'_>, doc: &Doc, field: &str, v: &Value) -> Option<QuerySpec> {
    let Some(text) = v.as_str() else {
        r.err(
            doc,
            field,
            "missing selector",
            "give a selector like `http_requests_total{job=\"api\"}`",
        );
        return None;
    };
    let e = match crate::promql::parse(text) {
        Ok(e) => e,
        Err(e) => {
            r.promql_err(
                doc,
                field,
                &e,
                "give a selector like `http_requests_total{job=\"api\"}`",
            );
            return None;
        }
    };
    let Expr::VectorSelector(vs) = e else {
        r.err(
            doc,
            field,
            "not a plain series selector",
            "Pyrra takes `metric{labels}` here",
        );
        return None;
    };
    let mut name = vs.name.clone();
    let mut matchers = BTreeMap::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" && matches!(m.op, MatchOp::Equal) {
            name = Some(m.value.clone());
            continue;
        }
        let prefix = match &m.op {
            MatchOp::Equal => "",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        if matchers
            .insert(m.name.clone(), format!("{prefix}{}", m.value))
            .is_some()
        {
            r.err(
                doc,
                field,
                format!("label `{}` is matched twice", m.name),
                "keep one matcher per label",
            );
            return None;
        }
    }
    let Some(name) = name else {
        r.err(
            doc,
            field,
            "selector without a metric name",
            "name the metric",
        );
        return None;
    };
    Some(QuerySpec {
        metric: Some(name),
        matchers,
        promql: None,
    })
}

fn one(r: &mut Report<'_>, doc: &Doc) -> Option<(String, BTreeMap<String, String>, SloSpec)> {
    let v = &doc.value;
    let s = &v["spec"];
    let before = r.errors.len();
    let name = v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut labels = BTreeMap::new();
    // Pyrra propagates `pyrra.dev/<name>` labels of the resource to its rules
    if let Some(m) = v["metadata"]["labels"].as_object() {
        for (k, val) in m {
            if let (Some(name), Some(val)) = (k.strip_prefix("pyrra.dev/"), val.as_str()) {
                labels.insert(import::label_name(name), val.to_string());
            }
        }
    }
    let service = match v["metadata"]["namespace"].as_str() {
        Some(ns) => {
            labels.insert("namespace".to_string(), ns.to_string());
            ns.to_string()
        }
        None => "pyrra".to_string(),
    };
    let objective = import::number_text(&s["target"]).and_then(|t| import::percent(&t));
    if objective.is_none() {
        r.err(
            doc,
            "spec.target",
            "target is not a percentage",
            "write e.g. `target: \"99.9\"`",
        );
    }
    let window = match s["window"].as_str().map(Dur::parse) {
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            r.err(doc, "spec.window", e, "write e.g. `window: 4w` or `28d`");
            None
        }
        None => {
            r.err(
                doc,
                "spec.window",
                "missing window",
                "set `window`, e.g. `4w`",
            );
            None
        }
    };
    let ind = &s["indicator"];
    for kind in ["ratio", "latency", "bool_gauge", "latencyNative"] {
        if let Some(g) = ind[kind]["grouping"].as_array()
            && !g.is_empty()
        {
            r.err(
                doc,
                &format!("spec.indicator.{kind}.grouping"),
                "grouping makes one SLO per label combination; our rules aggregate the whole selector into one SLO",
                "remove `grouping` and import one SLO per group with the group's labels as matchers",
            );
        }
    }
    if ind.get("latencyNative").is_some() {
        r.err(
            doc,
            "spec.indicator.latencyNative",
            "native histograms have no `le` buckets to count",
            "use a classic histogram `latency` indicator",
        );
    }
    if s["alerting"]["disabled"].as_bool() == Some(true) {
        r.err(
            doc,
            "spec.alerting.disabled",
            "alerting is disabled; every SLO of ours alerts",
            "remove `disabled: true`",
        );
    }
    // Pyrra names all its burn alerts `alerting.name` (default
    // `ErrorBudgetBurn`), told apart by severity: given, it names both of ours
    let alert_name = s["alerting"]["name"].as_str().map(str::to_string);
    let sli = if let Some(ratio) = ind.get("ratio") {
        let bad = selector(
            r,
            doc,
            "spec.indicator.ratio.errors.metric",
            &ratio["errors"]["metric"],
        );
        let total = selector(
            r,
            doc,
            "spec.indicator.ratio.total.metric",
            &ratio["total"]["metric"],
        );
        Some(RatioSpec {
            good: None,
            bad,
            total: total.unwrap_or_default(),
        })
    } else if let Some(lat) = ind.get("latency") {
        let good = selector(
            r,
            doc,
            "spec.indicator.latency.success.metric",
            &lat["success"]["metric"],
        );
        let total = selector(
            r,
            doc,
            "spec.indicator.latency.total.metric",
            &lat["total"]["metric"],
        );
        if let Some(g) = &good
            && !g.matchers.contains_key("le")
        {
            r.err(
                doc,
                "spec.indicator.latency.success.metric",
                "the success selector has no `le` matcher",
                "select the bucket of the latency threshold, e.g. `le=\"1\"`",
            );
        }
        Some(RatioSpec {
            good,
            bad: None,
            total: total.unwrap_or_default(),
        })
    } else if let Some(b) = ind.get("bool_gauge") {
        let m = selector(r, doc, "spec.indicator.bool_gauge.metric", &b["metric"]);
        m.map(|m| {
            let sel = render(&m);
            RatioSpec {
                good: Some(QuerySpec {
                    promql: Some(format!("sum(sum_over_time({sel}[$window]))")),
                    ..Default::default()
                }),
                bad: None,
                total: QuerySpec {
                    promql: Some(format!("sum(count_over_time({sel}[$window]))")),
                    ..Default::default()
                },
            }
        })
    } else {
        if ind.get("latencyNative").is_none() {
            r.err(
                doc,
                "spec.indicator",
                "no supported indicator",
                "use `ratio`, `latency` or `bool_gauge`",
            );
        }
        None
    };
    if r.errors.len() > before {
        return None;
    }
    let (objective, window, ratio) = (objective?, window?, sli?);
    Some((
        service,
        labels,
        SloSpec {
            name,
            description: s["description"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            objective,
            window: WindowSpec {
                rolling: Some(window),
                ..Default::default()
            },
            budgeting: None,
            sli: SliSpec {
                ratio: Some(ratio),
                ..Default::default()
            },
            alerting: Some({
                // Pyrra holds each tier for its own `for`: carried on the tiers
                let meta = || {
                    alert_name.clone().map(|n| AlertMetaSpec {
                        name: Some(n),
                        ..Default::default()
                    })
                };
                AlertingSpec {
                    page_alert: meta(),
                    ticket_alert: meta(),
                    ..import::alerting(import::pyrra_tiers(window))
                }
            }),
        },
    ))
}

fn render(q: &QuerySpec) -> String {
    let ms: Vec<crate::model::Matcher> = q
        .matchers
        .iter()
        .map(|(k, v)| crate::model::Matcher::parse(k, v))
        .collect();
    crate::model::Query::render_selector(q.metric.as_deref().unwrap_or_default(), &ms)
}
