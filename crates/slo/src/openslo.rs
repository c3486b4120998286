//! Import of OpenSLO v1 documents (`Service`, `SLI`, `SLO`; `ratioMetric`
//! and `thresholdMetric` on Prometheus sources) into our spec format.
//!
//! Mapping notes:
//! - A ratio query that is a plain selector becomes a counter selector. Any
//!   other query is kept as raw PromQL rewritten on the syntax tree
//!   (`crate::promql::to_window_count`): `rate` becomes `increase` and every
//!   range `[$window]`, since our SLIs count events per window; what cannot
//!   keep its meaning (`irate`, `@`, fixed-range subqueries) is refused.
//! - `thresholdMetric` becomes a `query_threshold` SLI budgeted in timeslices
//!   (`timeSliceWindow`, default 1m); `op` lt/lte/gt/gte says which values are good.
//! - `timeWindow` with `isRolling: true` becomes `rolling`; `1M`/`1w` calendar
//!   windows become `calendar: month|week` with the given time zone.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::duration::Dur;
use crate::error::{SpecError, SpecErrors};
use crate::spec::*;

fn err(
    file: &str,
    doc: usize,
    field: &str,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> SpecError {
    SpecError {
        file: file.into(),
        line: doc,
        column: 1,
        field: field.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// Parses a multi-document YAML stream; returns spec files keyed by service.
pub fn import(file: &str, text: &str) -> Result<Vec<SpecFile>, SpecErrors> {
    use serde::Deserialize;
    let mut docs: Vec<(usize, Value)> = Vec::new();
    // Line where each document starts, for messages.
    let mut starts = vec![1usize];
    for (i, l) in text.lines().enumerate() {
        if l.trim_end() == "---" && i > 0 {
            starts.push(i + 2);
        }
    }
    for (i, d) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = match Value::deserialize(d) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map(|l| l.line()).unwrap_or(1);
                return Err(SpecErrors(vec![err(
                    file,
                    line,
                    "(document)",
                    e.to_string(),
                    "fix the YAML syntax",
                )]));
            }
        };
        if v.is_null() {
            continue;
        }
        docs.push((starts.get(i).copied().unwrap_or(1), v));
    }
    let mut errors = Vec::new();
    let mut slis: BTreeMap<String, Value> = BTreeMap::new();
    for (line, d) in &docs {
        if d["apiVersion"] != "openslo/v1" {
            errors.push(err(
                file,
                *line,
                "apiVersion",
                format!("unsupported apiVersion {}", d["apiVersion"]),
                "only `openslo/v1` documents can be imported",
            ));
        } else if d["kind"] == "SLI"
            && let Some(n) = d["metadata"]["name"].as_str()
        {
            slis.insert(n.to_string(), d["spec"].clone());
        }
    }
    let mut files: BTreeMap<String, SpecFile> = BTreeMap::new();
    // file labels exported by `export` on the Service documents
    let mut service_labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (line, d) in &docs {
        if d["kind"] == "Service"
            && let (Some(n), Some(l)) = (
                d["metadata"]["name"].as_str(),
                d["metadata"]["annotations"][LABELS_ANNOTATION].as_str(),
            )
        {
            match serde_json::from_str(l) {
                Ok(l) => {
                    service_labels.insert(n.to_string(), l);
                }
                Err(e) => errors.push(err(
                    file,
                    *line,
                    &format!("metadata.annotations.{LABELS_ANNOTATION}"),
                    e.to_string(),
                    "give a JSON object of label names to values",
                )),
            }
        }
    }
    for (line, d) in &docs {
        if d["kind"] != "SLO" {
            continue;
        }
        let line = *line;
        // our own spec, carried through OpenSLO by `export`: exact round trip
        if let Some(json) = d["metadata"]["annotations"][SPEC_ANNOTATION].as_str() {
            let (Some(service), Ok(spec)) = (
                d["spec"]["service"].as_str(),
                serde_json::from_str::<SloSpec>(json),
            ) else {
                errors.push(err(
                    file,
                    line,
                    &format!("metadata.annotations.{SPEC_ANNOTATION}"),
                    "not a spec exported by `todoctl slo export`",
                    "remove the annotation to import the OpenSLO fields",
                ));
                continue;
            };
            files
                .entry(service.to_string())
                .or_insert_with(|| SpecFile {
                    service: service.to_string(),
                    labels: service_labels.get(service).cloned().unwrap_or_default(),
                    slos: Vec::new(),
                })
                .slos
                .push(spec);
            continue;
        }
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let spec = &d["spec"];
        let Some(service) = spec["service"].as_str() else {
            errors.push(err(
                file,
                line,
                "spec.service",
                "SLO has no service",
                "set `spec.service`",
            ));
            continue;
        };
        let indicator = if let Some(r) = spec["indicatorRef"].as_str() {
            match slis.get(r) {
                Some(s) => s.clone(),
                None => {
                    errors.push(err(
                        file,
                        line,
                        "spec.indicatorRef",
                        format!("SLI `{r}` is not defined in this file"),
                        "add the SLI document or inline it under `indicator`",
                    ));
                    continue;
                }
            }
        } else {
            spec["indicator"]["spec"].clone()
        };
        let objective = &spec["objectives"][0];
        let Some(target) = objective["target"].as_f64() else {
            errors.push(err(
                file,
                line,
                "spec.objectives[0].target",
                "missing target",
                "set `target`, e.g. 0.99",
            ));
            continue;
        };
        let window = match window(&spec["timeWindow"][0]) {
            Ok(w) => w,
            Err(m) => {
                errors.push(err(file, line, "spec.timeWindow[0]", m, "use `duration: 28d` with `isRolling: true`, or `duration: 1M` with a `calendar`"));
                continue;
            }
        };
        let timeslices = spec["budgetingMethod"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("timeslices"));
        let slice = objective["timeSliceWindow"]
            .as_str()
            .and_then(|s| Dur::parse(s).ok());
        let (sli, budgeting) = if let Some(r) = indicator.get("ratioMetric") {
            let mut bad_query = None;
            let mut q = |k: &str| match r[k]["metricSource"]["spec"]["query"].as_str().map(query) {
                Some(Ok(q)) => Some(q),
                Some(Err(e)) => {
                    bad_query.get_or_insert((k.to_string(), e));
                    None
                }
                None => None,
            };
            let total = q("total");
            let (good, bad) = (q("good"), q("bad"));
            if let Some((k, e)) = bad_query {
                errors.push(err(
                    file,
                    line,
                    &format!("indicator.ratioMetric.{k}.metricSource.spec.query"),
                    e.to_string(),
                    "write the query as a rate or increase of counters",
                ));
                continue;
            }
            let Some(total) = total else {
                errors.push(err(
                    file,
                    line,
                    "indicator.ratioMetric.total",
                    "no Prometheus query",
                    "give `metricSource.spec.query`",
                ));
                continue;
            };
            let b = timeslices.then(|| BudgetingSpec {
                method: BudgetingMethod::Timeslices,
                slice,
                slice_objective: objective["timeSliceTarget"].as_f64(),
            });
            (
                SliSpec {
                    ratio: Some(RatioSpec { good, bad, total }),
                    ..Default::default()
                },
                b,
            )
        } else if let Some(t) = indicator.get("thresholdMetric") {
            let Some(promql) = t["metricSource"]["spec"]["query"].as_str() else {
                errors.push(err(
                    file,
                    line,
                    "indicator.thresholdMetric",
                    "no Prometheus query",
                    "give `metricSource.spec.query`",
                ));
                continue;
            };
            let good_when = match objective["op"].as_str() {
                Some("lt") => Comparison::Below,
                Some("lte") => Comparison::AtOrBelow,
                Some("gt") => Comparison::Above,
                Some("gte") => Comparison::AtOrAbove,
                other => {
                    errors.push(err(
                        file,
                        line,
                        "spec.objectives[0].op",
                        format!("unsupported op {other:?}"),
                        "use lt, lte, gt or gte",
                    ));
                    continue;
                }
            };
            let Some(value) = objective["value"].as_f64() else {
                errors.push(err(
                    file,
                    line,
                    "spec.objectives[0].value",
                    "thresholdMetric needs a value",
                    "set `value`",
                ));
                continue;
            };
            (
                SliSpec {
                    query_threshold: Some(QueryThresholdSpec {
                        promql: promql.to_string(),
                        good_when,
                        value,
                    }),
                    ..Default::default()
                },
                Some(BudgetingSpec {
                    method: BudgetingMethod::Timeslices,
                    slice: slice.or(Some(Dur::mins(1))),
                    slice_objective: None,
                }),
            )
        } else {
            errors.push(err(
                file,
                line,
                "spec.indicator",
                "only ratioMetric and thresholdMetric SLIs can be imported",
                "rewrite the SLI as a ratio or threshold metric",
            ));
            continue;
        };
        let svc = service.to_string();
        files
            .entry(svc.clone())
            .or_insert_with(|| SpecFile {
                service: svc,
                labels: BTreeMap::new(),
                slos: Vec::new(),
            })
            .slos
            .push(SloSpec {
                name,
                description: spec["description"].as_str().map(str::to_string),
                objective: target,
                window,
                budgeting,
                sli,
                alerting: None,
            });
    }
    if errors.is_empty() {
        Ok(files.into_values().collect())
    } else {
        Err(SpecErrors(errors))
    }
}

fn window(w: &Value) -> Result<WindowSpec, String> {
    let d = w["duration"].as_str().ok_or("timeWindow has no duration")?;
    if w["isRolling"].as_bool().unwrap_or(false) {
        return Ok(WindowSpec {
            rolling: Some(Dur::parse(d)?),
            ..Default::default()
        });
    }
    let unit = match d {
        "1M" => CalendarUnit::Month,
        "1w" | "7d" => CalendarUnit::Week,
        _ => return Err(format!("calendar window `{d}` is not supported (1M or 1w)")),
    };
    let tz = w["calendar"]["timeZone"].as_str().map(str::to_string);
    Ok(WindowSpec {
        rolling: None,
        calendar: Some(unit),
        time_zone: tz,
    })
}

/// A plain selector becomes `metric` + `matchers`; other PromQL is rewritten
/// to count events over `$window`.
fn query(q: &str) -> Result<QuerySpec, crate::promql::PromqlError> {
    let q = q.trim();
    if let Some((metric, rest)) = q.split_once('{')
        && !metric.contains(['(', ' '])
        && rest.ends_with('}')
        && !rest.contains(['{', '(', '['])
    {
        let mut matchers = BTreeMap::new();
        let mut ok = true;
        for part in rest
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let part = part.trim();
            let (k, op, v) = if let Some((k, v)) = part.split_once("=~") {
                (k, "=~", v)
            } else if let Some((k, v)) = part.split_once("!~") {
                (k, "!~", v)
            } else if let Some((k, v)) = part.split_once("!=") {
                (k, "!=", v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, "", v)
            } else {
                ok = false;
                break;
            };
            let v = v.trim().trim_matches('"').to_string();
            matchers.insert(k.trim().to_string(), format!("{op}{v}"));
        }
        if ok {
            return Ok(QuerySpec {
                metric: Some(metric.to_string()),
                matchers,
                promql: None,
            });
        }
    }
    if !q.contains(['(', '{', '[', ' ']) {
        return Ok(QuerySpec {
            metric: Some(q.to_string()),
            matchers: BTreeMap::new(),
            promql: None,
        });
    }
    match crate::promql::to_window_count(q) {
        Ok(promql) => Ok(QuerySpec {
            metric: None,
            matchers: BTreeMap::new(),
            promql: Some(promql),
        }),
        Err(e) => Err(e),
    }
}

/// Annotation of an exported SLO holding our spec as JSON (what OpenSLO
/// cannot say: SLI kinds, tiers, guards), so import(export(x)) == x.
pub const SPEC_ANNOTATION: &str = "slo.todo.dev/spec";
/// Annotation of an exported Service holding the file's extra labels.
pub const LABELS_ANNOTATION: &str = "slo.todo.dev/labels";

/// Exports spec files as OpenSLO v1: a `Service` per file and an `SLO` per
/// SLO with the standard fields (objective, time window, budgeting method,
/// a `ratioMetric` or `thresholdMetric` on Prometheus) for other tools, plus
/// our spec in an annotation for an exact round trip.
pub fn export_files(files: &[SpecFile]) -> Result<String, crate::Error> {
    let slos = crate::validate::load_texts(
        &files
            .iter()
            .map(|f| {
                serde_norway::to_string(f)
                    .map(|t| (format!("{}.yaml", f.service), t))
                    .map_err(|e| crate::Error::Internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?,
    )
    .map_err(crate::Error::Spec)?;
    let mut docs: Vec<Value> = Vec::new();
    for f in files {
        let mut svc = serde_json::json!({
            "apiVersion": "openslo/v1",
            "kind": "Service",
            "metadata": {"name": f.service},
            "spec": {"description": format!("Exported from slo/{}.yaml", f.service)},
        });
        if !f.labels.is_empty() {
            svc["metadata"]["annotations"] = serde_json::json!({
                LABELS_ANNOTATION: serde_json::to_string(&f.labels).map_err(|e| crate::Error::Internal(e.to_string()))?,
            });
        }
        docs.push(svc);
        for s in &f.slos {
            let Some(model) = slos.iter().find(|m| m.name == s.name) else {
                continue;
            };
            docs.push(export_slo(f, s, model)?);
        }
    }
    let mut out =
        String::from("# OpenSLO v1, exported by `todoctl slo export --format openslo`.\n");
    for d in docs {
        out.push_str("---\n");
        out.push_str(
            &serde_norway::to_string(&d).map_err(|e| crate::Error::Internal(e.to_string()))?,
        );
    }
    Ok(out)
}

fn export_slo(f: &SpecFile, s: &SloSpec, m: &crate::model::Slo) -> Result<Value, crate::Error> {
    use crate::model::{Sli, Window};
    let source = |q: String| serde_json::json!({"metricSource": {"type": "Prometheus", "spec": {"query": q}}});
    let time_window = match &m.window {
        Window::Rolling(d) => serde_json::json!([{"duration": d.prom(), "isRolling": true}]),
        Window::Calendar { unit, tz } => serde_json::json!([{
            "duration": if *unit == CalendarUnit::Month { "1M" } else { "1w" },
            "isRolling": false,
            // a Monday and the 1st; OpenSLO wants an `Area/City` zone name
            "calendar": {"startTime": "2024-01-01 00:00:00", "timeZone": if tz.name() == "UTC" { "Etc/UTC" } else { tz.name() }},
        }]),
    };
    let mut objective = serde_json::json!({"displayName": s.name, "target": s.objective});
    let indicator = match &m.sli {
        Sli::Events {
            numerator,
            numerator_is_good,
            total,
            ..
        } => {
            let key = if *numerator_is_good { "good" } else { "bad" };
            serde_json::json!({"ratioMetric": {
                "counter": true,
                key: source(numerator.increase("5m")),
                "total": source(total.increase("5m")),
            }})
        }
        Sli::ConsumerLag {
            group,
            topic,
            max_lag_seconds,
        } => {
            objective["op"] = "lt".into();
            objective["value"] = (*max_lag_seconds).into();
            serde_json::json!({"thresholdMetric": source(format!(
                "max({})",
                crate::model::Sli::lag_selector(group, topic)
            ))})
        }
        Sli::QueryThreshold {
            promql,
            good_when,
            value,
        } => {
            objective["op"] = match good_when {
                Comparison::Below => "lt",
                Comparison::AtOrBelow => "lte",
                Comparison::Above => "gt",
                Comparison::AtOrAbove => "gte",
            }
            .into();
            objective["value"] = (*value).into();
            serde_json::json!({"thresholdMetric": source(promql.clone())})
        }
    };
    let budgeting = match &m.budgeting {
        crate::model::Budgeting::Occurrences => "Occurrences",
        crate::model::Budgeting::Timeslices {
            slice,
            slice_objective,
        } => {
            objective["timeSliceWindow"] = slice.prom().into();
            // OpenSLO requires it; a threshold slice is good only when its value is within the bound
            objective["timeSliceTarget"] = slice_objective.unwrap_or(1.0).into();
            "Timeslices"
        }
    };
    let spec_json = serde_json::to_string(s).map_err(|e| crate::Error::Internal(e.to_string()))?;
    let mut spec = serde_json::json!({
        "service": f.service,
        "indicator": {"metadata": {"name": format!("{}-sli", s.name)}, "spec": indicator},
        "timeWindow": time_window,
        "budgetingMethod": budgeting,
        "objectives": [objective],
    });
    if let Some(d) = &s.description {
        spec["description"] = d.clone().into();
    }
    Ok(serde_json::json!({
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": s.name, "annotations": {SPEC_ANNOTATION: spec_json}},
        "spec": spec,
    }))
}

/// Exports the spec files of a directory (`crate::cli::export`).
pub fn export_dir(dir: &std::path::Path) -> Result<String, crate::Error> {
    crate::validate::load_dir(dir)?;
    export_files(&read_spec_files(dir)?)
}

/// The SLO spec files of a directory as written (sorted; without receivers and prices).
pub fn read_spec_files(dir: &std::path::Path) -> Result<Vec<SpecFile>, crate::Error> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| crate::Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str());
            name != Some(crate::receivers::FILE) && name != Some(crate::cost::FILE)
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let t = std::fs::read_to_string(p).map_err(|e| crate::Error::io(p, e))?;
            serde_norway::from_str(&t)
                .map_err(|e| crate::Error::Internal(format!("{}: {e}", p.display())))
        })
        .collect()
}

/// Renders imported spec files as YAML, one per service.
pub fn to_yaml(files: &[SpecFile]) -> Result<Vec<(String, String)>, crate::Error> {
    files
        .iter()
        .map(|f| {
            serde_norway::to_string(f)
                .map(|s| {
                    (
                        format!("{}.yaml", f.service),
                        format!("# Imported from OpenSLO v1 by `todoctl slo import`.\n{s}"),
                    )
                })
                .map_err(|e| crate::Error::Internal(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_rates_to_window_increases() {
        let q = query("sum(rate(http_requests_total{code=~\"5..\"}[1m]))").expect("query");
        assert_eq!(
            q.promql.as_deref(),
            Some("sum(increase(http_requests_total{code=~\"5..\"}[$window]))")
        );
        let q = query("http_requests_total{job=\"api\", code!=\"500\"}").expect("query");
        assert_eq!(q.metric.as_deref(), Some("http_requests_total"));
        assert_eq!(q.matchers["code"], "!=500");
    }
}
