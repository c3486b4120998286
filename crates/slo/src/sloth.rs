//! Import of Sloth specs: the `prometheus/v1` file format and the
//! `sloth.slok.dev/v1` `PrometheusServiceLevel` CRD (camelCase fields).
//! Source of the formats: github.com/slok/sloth, `pkg/prometheus/api/v1`,
//! `pkg/kubernetes/api/sloth/v1` and `examples/getting-started.yml`,
//! `examples/k8s-getting-started.yml`, `examples/home-wifi.yml`.
//!
//! Mapping (see docs/slo-spec.md, "Migrating from Sloth"):
//! - `sli.events` `error_query`/`total_query` → `ratio` `bad`/`total`, each
//!   rewritten on the syntax tree (`crate::promql`) from a rate over
//!   `{{.window}}` into a count over `$window`;
//! - `objective` (percent) → fraction, exactly;
//! - Sloth's period is 30 days and its tiers are fixed (page 14.4× 1h/5m and
//!   6× 6h/30m, ticket 3× 1d/2h and 1× 3d/6h): they are written out
//!   explicitly; `page_alert.disable`/`ticket_alert.disable` drop that severity;
//! - service `labels` → file `labels`; SLO `labels`, `alerting.labels` and
//!   `alerting.annotations` → `alerting.page_alert`/`ticket_alert` of both
//!   alerts, `page_alert`/`ticket_alert` labels and annotations → that one
//!   (labels we set ourselves are kept as `source_<name>`);
//! - refused, naming the field: `sli.raw` (a ratio query, not counts),
//!   `sli.plugin`, `slo_plugins` other than `alert_for`, both alerts disabled.
//! - `alerting.name` → `page_alert.name` and `ticket_alert.name` (one name
//!   for both, told apart by `severity`, as Sloth does); the `alert_for`
//!   plugin's `for` → `page_alert.for`/`ticket_alert.for`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::duration::Dur;
use crate::error::SpecErrors;
use crate::import::{self, Doc, Report};
use crate::promql;
use crate::spec::*;

/// Whether a parsed document is a Sloth spec.
pub fn is_sloth(v: &Value) -> bool {
    v["version"] == "prometheus/v1"
        || (v["apiVersion"] == "sloth.slok.dev/v1" && v["kind"] == "PrometheusServiceLevel")
}

/// Imports every Sloth document of a file; returns the spec files and notes.
pub fn import(file: &str, text: &str) -> Result<(Vec<SpecFile>, Vec<String>), SpecErrors> {
    let docs = import::documents(file, text)?;
    let mut r = Report::new(file);
    let mut out = Vec::new();
    for doc in &docs {
        if doc.value["version"] == "prometheus/v1" {
            if let Some(f) = one(&mut r, doc, "", false) {
                out.push(f);
            }
        } else if doc.value["apiVersion"] == "sloth.slok.dev/v1"
            && doc.value["kind"] == "PrometheusServiceLevel"
        {
            if let Some(f) = one(&mut r, doc, "spec.", true) {
                out.push(f);
            }
        } else {
            r.err(
                doc,
                if doc.value.get("apiVersion").is_some() { "apiVersion" } else { "version" },
                "not a Sloth spec",
                "use `version: prometheus/v1` or `apiVersion: sloth.slok.dev/v1` with `kind: PrometheusServiceLevel`",
            );
        }
    }
    r.finish(out)
}

fn key<'v>(v: &'v Value, snake: &str, camel: &str, crd: bool) -> &'v Value {
    &v[if crd { camel } else { snake }]
}

fn labels_of(
    r: &mut Report<'_>,
    doc: &Doc,
    field: &str,
    v: &Value,
    into: &mut BTreeMap<String, String>,
) {
    let Some(m) = v.as_object() else { return };
    for (k, val) in m {
        let name = import::label_name(k);
        if name != *k {
            r.note(
                doc,
                field,
                format!("label `{k}` is kept as `{name}`: `{k}` is set by our pipeline"),
            );
        }
        let s = match val {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        into.insert(name, s);
    }
}

fn one(r: &mut Report<'_>, doc: &Doc, p: &str, crd: bool) -> Option<SpecFile> {
    let root = if crd { &doc.value["spec"] } else { &doc.value };
    let before = r.errors.len();
    let Some(service) = root["service"].as_str() else {
        r.err(doc, &format!("{p}service"), "no service", "set `service`");
        return None;
    };
    if let Some(chain) = root["slo_plugins"]["chain"]
        .as_array()
        .or(root["sloPlugins"]["chain"].as_array())
    {
        for (i, pl) in chain.iter().enumerate() {
            let id = pl["id"].as_str().unwrap_or("");
            let f = format!(
                "{p}{}.chain[{i}].id",
                if crd { "sloPlugins" } else { "slo_plugins" }
            );
            if id == "sloth.dev/contrib/alert_for/v1" {
                r.note(doc, &f, "`alert_for` applies the `for` of `page_alert`/`ticket_alert`, which is imported as is");
            } else {
                r.err(doc, &f, format!("SLO plugin `{id}` cannot be imported"), "our specs have no plugins: remove it and express what it does in the spec, or keep this SLO in Sloth");
            }
        }
    }
    let mut labels = BTreeMap::new();
    labels_of(r, doc, &format!("{p}labels"), &root["labels"], &mut labels);
    let mut slos = Vec::new();
    let empty = Vec::new();
    let list = root["slos"].as_array().unwrap_or(&empty);
    if list.is_empty() {
        r.err(doc, &format!("{p}slos"), "no SLOs", "add at least one SLO");
    }
    for (i, s) in list.iter().enumerate() {
        let sp = format!("{p}slos[{i}]");
        if let Some(slo) = slo(r, doc, &sp, s, crd) {
            slos.push(slo);
        }
    }
    if r.errors.len() > before {
        return None;
    }
    Some(SpecFile {
        service: service.to_string(),
        labels,
        slos,
    })
}

fn slo(r: &mut Report<'_>, doc: &Doc, sp: &str, s: &Value, crd: bool) -> Option<SloSpec> {
    let name = s["name"].as_str().unwrap_or_default().to_string();
    let Some(objective) = import::number_text(&s["objective"]).and_then(|t| import::percent(&t))
    else {
        r.err(
            doc,
            &format!("{sp}.objective"),
            "objective is not a percentage",
            "write e.g. `objective: 99.9`",
        );
        return None;
    };
    let sli = &s["sli"];
    if sli.get("raw").is_some() {
        r.err(
            doc,
            &format!("{sp}.sli.raw"),
            "a raw SLI is an error-ratio query; our SLIs count good/bad and total events so long windows are traffic-weighted",
            "rewrite it as `events` with `error_query` and `total_query`",
        );
        return None;
    }
    if sli.get("plugin").is_some() {
        r.err(
            doc,
            &format!("{sp}.sli.plugin"),
            "SLI plugins are Go code run by Sloth; their queries are not in the spec",
            "rewrite the SLI as `events` with `error_query` and `total_query`",
        );
        return None;
    }
    let ev = &sli["events"];
    let (ek, tk) = if crd {
        ("errorQuery", "totalQuery")
    } else {
        ("error_query", "total_query")
    };
    let mut query = |k: &str| -> Option<QuerySpec> {
        let f = format!("{sp}.sli.events.{k}");
        let Some(q) = ev[k].as_str() else {
            r.err(
                doc,
                &f,
                format!("missing `{k}`"),
                format!("set `{k}` (or use a supported SLI)"),
            );
            return None;
        };
        let templ = promql::sloth_template(q);
        match promql::to_window_count(&templ) {
            Ok(c) => Some(QuerySpec {
                metric: None,
                matchers: BTreeMap::new(),
                promql: Some(c),
            }),
            Err(e) => {
                // offsets are those of the query as written (`{{.window}}` mapped back)
                r.promql_err(
                    doc,
                    &f,
                    &e,
                    "write the query as a rate or increase over `{{.window}}`",
                );
                None
            }
        }
    };
    let bad = query(ek);
    let total = query(tk);
    let (bad, total) = (bad?, total?);
    let alerting = key(s, "alerting", "alerting", crd);
    let (pk, tk2) = if crd {
        ("pageAlert", "ticketAlert")
    } else {
        ("page_alert", "ticket_alert")
    };
    let page = alerting[pk]["disable"].as_bool() != Some(true);
    let ticket = alerting[tk2]["disable"].as_bool() != Some(true);
    if !page && !ticket {
        r.err(
            doc,
            &format!("{sp}.alerting.{pk}.disable"),
            "both alerts are disabled; every SLO of ours alerts",
            "enable at least one of the page and ticket alerts",
        );
        return None;
    }
    // SLO labels and the alerting block's name/labels/annotations go on both
    // alerts, the per-severity ones on theirs
    let mut common = AlertMetaSpec::default();
    // Sloth names both alerts `alerting.name`, told apart by severity: so do we
    if let Some(n) = alerting["name"].as_str() {
        common.name = Some(n.to_string());
    }
    labels_of(
        r,
        doc,
        &format!("{sp}.labels"),
        &s["labels"],
        &mut common.labels,
    );
    labels_of(
        r,
        doc,
        &format!("{sp}.alerting.labels"),
        &alerting["labels"],
        &mut common.labels,
    );
    strings_of(&alerting["annotations"], &mut common.annotations);
    let mut metas = Vec::new();
    for k in [pk, tk2] {
        let a = &alerting[k];
        let mut m = common.clone();
        labels_of(
            r,
            doc,
            &format!("{sp}.alerting.{k}.labels"),
            &a["labels"],
            &mut m.labels,
        );
        strings_of(&a["annotations"], &mut m.annotations);
        if let Some(f) = a["for"].as_str() {
            match Dur::parse(f) {
                Ok(d) => m.for_ = Some(d),
                Err(e) => r.err(
                    doc,
                    &format!("{sp}.alerting.{k}.for"),
                    e,
                    "write e.g. `for: 5m`",
                ),
            }
        }
        metas.push((m != AlertMetaSpec::default()).then_some(m));
    }
    let ticket_meta = metas.pop().flatten();
    let page_meta = metas.pop().flatten();
    Some(SloSpec {
        name,
        description: s["description"].as_str().map(str::to_string),
        objective,
        window: WindowSpec {
            rolling: Some(Dur::days(30)),
            ..Default::default()
        },
        budgeting: None,
        sli: SliSpec {
            ratio: Some(RatioSpec {
                good: None,
                bad: Some(bad),
                total,
            }),
            ..Default::default()
        },
        alerting: Some(AlertingSpec {
            page_alert: if page { page_meta } else { None },
            ticket_alert: if ticket { ticket_meta } else { None },
            ..import::alerting(import::sloth_tiers(page, ticket))
        }),
    })
}

fn strings_of(v: &Value, into: &mut BTreeMap<String, String>) {
    if let Some(m) = v.as_object() {
        for (k, val) in m {
            let s = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            into.insert(k.clone(), s);
        }
    }
}
