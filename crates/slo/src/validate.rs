//! YAML → validated model, with errors that name file, line, field and fix.

use std::collections::BTreeMap;
use std::path::Path;

use contracts::metrics;

use crate::duration::Dur;
use crate::error::{Error, SpecError, SpecErrors, locate, parse_path};
use crate::model::*;
use crate::spec::*;

/// Collects errors for one file; locates each field path in the text.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub errors: Vec<SpecError>,
}

impl Ctx<'_> {
    pub fn err(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        let (line, column) = locate(self.text, &parse_path(field));
        self.errors.push(SpecError {
            file: self.file.to_string(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            fix: fix.into(),
        });
    }
}

impl Ctx<'_> {
    /// An error inside the PromQL value of `field`, at the expression's offset.
    pub fn promql_err(&mut self, field: &str, e: &crate::promql::PromqlError, fix: &str) {
        let (line, column) = locate(self.text, &parse_path(field));
        let (line, column) = crate::import::value_position(self.text, line, column, e.offset);
        self.errors.push(SpecError {
            file: self.file.to_string(),
            line,
            column,
            field: field.to_string(),
            message: e.message.clone(),
            fix: fix.into(),
        });
    }
}

/// Parses and validates one spec file.
pub fn parse_str(file: &str, text: &str) -> Result<Vec<Slo>, SpecErrors> {
    check_yaml(file, text, |ctx, spec: &SpecFile| check_file(ctx, spec))
}

/// Loads the optional side file `name` of the specs directory (receivers,
/// prices) with `parse`, or `absent()` when there is no such file.
pub(crate) fn load_side_file<T>(
    dir: &Path,
    name: &str,
    parse: impl FnOnce(&str, &str) -> Result<T, SpecErrors>,
    absent: impl FnOnce() -> T,
) -> Result<T, Error> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path.display().to_string(), &text).map_err(Error::Spec),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(absent()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Parses `text` (a located error when the YAML does not fit `T`), then runs
/// `check`, which reports through the context; any report fails the file.
pub(crate) fn check_yaml<T: serde::de::DeserializeOwned, R>(
    file: &str,
    text: &str,
    check: impl FnOnce(&mut Ctx<'_>, &T) -> R,
) -> Result<R, SpecErrors> {
    let spec: T =
        serde_norway::from_str(text).map_err(|e| SpecErrors(vec![yaml_error(file, text, &e)]))?;
    let mut ctx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    let out = check(&mut ctx, &spec);
    if ctx.errors.is_empty() {
        Ok(out)
    } else {
        Err(SpecErrors(ctx.errors))
    }
}

/// Loads every `*.yaml`/`*.yml` in `dir` (sorted) except `receivers.yaml`
/// (`crate::receivers`) and `cost.yaml` (`crate::cost`), validates each file and rejects SLO names used
/// twice across files.
pub fn load_dir(dir: &Path) -> Result<Vec<Slo>, Error> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str());
            name != Some(crate::receivers::FILE) && name != Some(crate::cost::FILE)
        })
        .collect();
    files.sort();
    let mut texts = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
        texts.push((f.display().to_string(), text));
    }
    load_texts(&texts).map_err(Error::Spec)
}

/// Validates several (file name, text) pairs as one set.
pub fn load_texts(files: &[(String, String)]) -> Result<Vec<Slo>, SpecErrors> {
    let mut all = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in files {
        match parse_str(file, text) {
            Ok(slos) => {
                for (i, s) in slos.into_iter().enumerate() {
                    if let Some(first) = seen.get(&s.name) {
                        let (line, column) = locate(text, &parse_path(&format!("slos[{i}].name")));
                        errors.push(SpecError {
                            file: file.clone(),
                            line,
                            column,
                            field: format!("slos[{i}].name"),
                            message: format!("SLO name `{}` is already used in {first}", s.name),
                            fix: "give every SLO a unique name".into(),
                        });
                    } else {
                        seen.insert(s.name.clone(), file.clone());
                        all.push(s);
                    }
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        all.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        Ok(all)
    } else {
        Err(SpecErrors(errors))
    }
}

/// Turns a parser error into a located error with a fix.
fn yaml_error(file: &str, text: &str, e: &serde_norway::Error) -> SpecError {
    let raw = e.to_string();
    // serde_norway appends " at line L column C"; the location is kept apart.
    let msg = match raw.find(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw.clone(),
    };
    let (field, message) = match msg.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => ("(document)".to_string(), msg.clone()),
    };
    let (mut line, mut column) = match e.location() {
        Some(l) => (l.line(), l.column()),
        None => locate(text, &parse_path(&field)),
    };
    if line == 0 {
        line = 1;
        column = 1;
    }
    let fix = if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = rest
            .split_once(", expected ")
            .map(|(_, x)| x)
            .unwrap_or("the documented fields");
        format!(
            "remove `{name}` or correct its spelling; allowed here: {expected} (see docs/slo-spec.md)"
        )
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        format!("add `{name}` here (see docs/slo-spec.md)")
    } else if message.contains("unknown variant") {
        let expected = message
            .split_once("expected ")
            .map(|(_, x)| x)
            .unwrap_or("a documented value");
        format!("use one of {expected}")
    } else if message.contains("invalid type") {
        "give this field the documented type (see docs/slo-spec.md)".into()
    } else if message.contains("duration") {
        "write durations like `5m`, `1h`, `30d`".into()
    } else {
        "correct the YAML syntax at this position".into()
    };
    // Name the offending key itself: the unknown one, or the key on the
    // reported line when the parser stopped at its parent.
    let field = if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        if field == "(document)" {
            name.to_string()
        } else {
            format!("{field}.{name}")
        }
    } else {
        let key = text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.trim_start().trim_start_matches("- ").split_once(':'))
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match key {
            Some(k)
                if field != "(document)"
                    && !field.ends_with(&k)
                    && !message.starts_with("missing field") =>
            {
                format!("{field}.{k}")
            }
            // syntax errors carry no path: name the key on the reported line
            Some(k) if field == "(document)" => k,
            _ => field,
        }
    };
    SpecError {
        file: file.to_string(),
        line,
        column,
        field,
        message,
        fix,
    }
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
}

fn valid_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !s.starts_with("__")
}

fn valid_metric_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Labels the pipeline sets itself; a spec may not use them as extra labels.
const RESERVED_LABELS: &[&str] = &["slo", "service", "severity", "tier", "alertname"];

fn check_file(ctx: &mut Ctx<'_>, spec: &SpecFile) -> Vec<Slo> {
    if !valid_name(&spec.service) {
        ctx.err(
            "service",
            format!("`{}` is not a valid service name", spec.service),
            "use lower-case letters, digits and `-`, starting with a letter (e.g. `command-service`)",
        );
    }
    for k in spec.labels.keys() {
        if !valid_label_name(k) || RESERVED_LABELS.contains(&k.as_str()) {
            ctx.err(
                &format!("labels.{k}"),
                format!("`{k}` cannot be used as an extra label"),
                format!(
                    "use a Prometheus label name other than {}",
                    RESERVED_LABELS.join(", ")
                ),
            );
        }
    }
    if spec.slos.is_empty() {
        ctx.err(
            "slos",
            "no SLOs in this file",
            "add at least one entry under `slos:` or delete the file",
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, s) in spec.slos.iter().enumerate() {
        let p = format!("slos[{i}]");
        if let Some(first) = names.insert(&s.name, i) {
            ctx.err(
                &format!("{p}.name"),
                format!("SLO name `{}` is already used by slos[{first}]", s.name),
                "give every SLO a unique name",
            );
            continue;
        }
        if let Some(slo) = check_slo(ctx, &p, spec, s) {
            out.push(slo);
        }
    }
    out
}

fn check_slo(ctx: &mut Ctx<'_>, p: &str, file: &SpecFile, s: &SloSpec) -> Option<Slo> {
    let before = ctx.errors.len();
    if !valid_name(&s.name) {
        ctx.err(
            &format!("{p}.name"),
            format!("`{}` is not a valid SLO name", s.name),
            "use lower-case letters, digits and `-`, starting with a letter, at most 63 characters",
        );
    }
    if !(s.objective > 0.0 && s.objective < 1.0) {
        let fix = if s.objective > 1.0 && s.objective < 100.0 {
            format!(
                "write the objective as a fraction: {} for {}%",
                crate::compile::num(s.objective / 100.0),
                s.objective
            )
        } else {
            "use a fraction strictly between 0 and 1, e.g. 0.999".into()
        };
        ctx.err(
            &format!("{p}.objective"),
            format!("objective {} is out of range", s.objective),
            fix,
        );
    }
    let window = check_window(ctx, &format!("{p}.window"), &s.window);
    let sli = check_sli(ctx, &format!("{p}.sli"), &s.sli);
    let budgeting = check_budgeting(
        ctx,
        &format!("{p}.budgeting"),
        s.budgeting.as_ref(),
        sli.as_ref(),
    );
    let alerting = check_alerting(ctx, &format!("{p}.alerting"), s, window.as_ref());
    if ctx.errors.len() > before {
        return None;
    }
    let (window, sli, budgeting, alerting) = (window?, sli?, budgeting?, alerting?);
    let description = s
        .description
        .clone()
        .unwrap_or_else(|| default_description(&sli));
    Some(Slo {
        name: s.name.clone(),
        service: file.service.clone(),
        description,
        objective: s.objective,
        window,
        budgeting,
        sli,
        alerting,
        labels: file.labels.clone(),
        source: ctx.file.to_string(),
    })
}

fn default_description(sli: &Sli) -> String {
    match sli {
        Sli::Events {
            kind: SliKind::Latency { threshold_seconds },
            ..
        } => {
            format!("Share of requests served within {threshold_seconds} s.")
        }
        Sli::Events {
            kind: SliKind::Freshness { threshold_seconds },
            ..
        } => {
            format!("Share of events visible in the read model within {threshold_seconds} s.")
        }
        Sli::Events {
            kind: SliKind::Availability,
            ..
        } => "Share of requests not failing with a 5xx.".into(),
        Sli::Events { .. } => "Share of good events.".into(),
        Sli::ConsumerLag {
            max_lag_seconds, ..
        } => {
            format!("Share of minutes in which consumer lag stays under {max_lag_seconds} s.")
        }
        Sli::QueryThreshold { .. } => {
            "Share of time slices in which the value stays within its bound.".into()
        }
    }
}

fn check_window(ctx: &mut Ctx<'_>, p: &str, w: &WindowSpec) -> Option<Window> {
    match (w.rolling, w.calendar) {
        (Some(_), Some(_)) => {
            ctx.err(
                p,
                "both `rolling` and `calendar` are set",
                "keep exactly one of `rolling: 30d` or `calendar: month`",
            );
            None
        }
        (None, None) => {
            ctx.err(
                p,
                "no window given",
                "set `rolling: 30d` (or 28d) or `calendar: month` / `calendar: week`",
            );
            None
        }
        (Some(d), None) => {
            if w.time_zone.is_some() {
                ctx.err(
                    &format!("{p}.time_zone"),
                    "`time_zone` only applies to calendar windows",
                    "remove `time_zone` or use `calendar:`",
                );
                return None;
            }
            if d < Dur::days(1) || d.as_secs() % 86_400 != 0 {
                ctx.err(
                    &format!("{p}.rolling"),
                    format!("rolling window `{d}` must be a whole number of days, at least 1d"),
                    "use e.g. `28d` or `30d`",
                );
                return None;
            }
            Some(Window::Rolling(d))
        }
        (None, Some(unit)) => {
            let name = w.time_zone.as_deref().unwrap_or("UTC");
            match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(Window::Calendar { unit, tz }),
                Err(_) => {
                    ctx.err(
                        &format!("{p}.time_zone"),
                        format!("`{name}` is not a known IANA time zone"),
                        "use a name like `UTC`, `Europe/Berlin` or `America/New_York`",
                    );
                    None
                }
            }
        }
    }
}

fn check_matchers(
    ctx: &mut Ctx<'_>,
    p: &str,
    m: &BTreeMap<String, String>,
    metric: Option<&metrics::Metric>,
) -> Vec<Matcher> {
    let mut out = Vec::new();
    for (k, v) in m {
        if !valid_label_name(k) {
            ctx.err(
                &format!("{p}.{k}"),
                format!("`{k}` is not a valid label name"),
                "use letters, digits and `_`, not starting with a digit or `__`",
            );
            continue;
        }
        if let Some(metric) = metric
            && !metric.labels.contains(&k.as_str())
        {
            ctx.err(
                &format!("{p}.{k}"),
                format!("metric `{}` has no label `{k}`", metric.name),
                format!("use one of its labels: {}", metric.labels.join(", ")),
            );
            continue;
        }
        out.push(Matcher::parse(k, v));
    }
    out
}

/// The contract family behind a series name (`x_total`, `x_bucket`, `x_count`, `x_sum`).
fn contract_family(series: &str) -> Option<&'static metrics::Metric> {
    metrics::ALL.iter().find(|m| {
        series == m.series()
            || (m.kind == metrics::MetricKind::Histogram
                && [m.bucket(), m.count(), m.sum()].iter().any(|s| s == series))
    })
}

fn check_query(ctx: &mut Ctx<'_>, p: &str, q: &QuerySpec) -> Option<Query> {
    match (&q.metric, &q.promql) {
        (Some(_), Some(_)) => {
            ctx.err(
                p,
                "both `metric` and `promql` are set",
                "keep either a counter selector (`metric` + `matchers`) or `promql`",
            );
            None
        }
        (None, None) => {
            ctx.err(p, "neither `metric` nor `promql` is set", "add `metric: <counter>_total` (with `matchers`) or `promql: sum(increase(x_total[$window]))`");
            None
        }
        (Some(metric), None) => {
            if !valid_metric_name(metric) {
                ctx.err(
                    &format!("{p}.metric"),
                    format!("`{metric}` is not a valid metric name"),
                    "use letters, digits, `_` and `:`",
                );
                return None;
            }
            let family = contract_family(metric);
            if family.is_none()
                && let Some(m) = metrics::ALL
                    .iter()
                    .find(|m| metric.starts_with(m.name) || m.name.starts_with(metric.as_str()))
            {
                let expected = match m.kind {
                    metrics::MetricKind::Counter => m.series(),
                    metrics::MetricKind::Histogram => m.count(),
                    metrics::MetricKind::Gauge => m.name.to_string(),
                };
                ctx.err(
                    &format!("{p}.metric"),
                    format!(
                        "`{metric}` is not a series of the contract metric `{}`",
                        m.name
                    ),
                    format!("did you mean `{expected}`?"),
                );
                return None;
            }
            let matchers = check_matchers(ctx, &format!("{p}.matchers"), &q.matchers, family);
            Some(Query::Selector {
                metric: metric.clone(),
                matchers,
            })
        }
        (None, Some(promql)) => {
            if !q.matchers.is_empty() {
                ctx.err(
                    &format!("{p}.matchers"),
                    "`matchers` cannot be combined with `promql`",
                    "put the matchers inside the PromQL expression",
                );
                return None;
            }
            if !promql.contains("$window") {
                ctx.err(
                    &format!("{p}.promql"),
                    "raw PromQL must use the `$window` placeholder",
                    "write an event count over the window, e.g. `sum(increase(x_total[$window]))`",
                );
                return None;
            }
            if let Err(e) = crate::promql::validate(promql) {
                ctx.promql_err(
                    &format!("{p}.promql"),
                    &e,
                    "write valid PromQL counting events over `$window`, e.g. `sum(increase(x_total[$window]))`",
                );
                return None;
            }
            Some(Query::Promql(promql.clone()))
        }
    }
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|b| format!("{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Good/total queries for a histogram threshold SLI, refusing thresholds
/// that are not bucket boundaries.
fn check_threshold(
    ctx: &mut Ctx<'_>,
    p: &str,
    t: &ThresholdSpec,
    default: &'static metrics::Metric,
) -> Option<(Query, Query, f64)> {
    let family: Option<&metrics::Metric> = match &t.metric {
        None => Some(default),
        Some(name) => metrics::ALL.iter().find(|m| m.name == name),
    };
    let name = t.metric.clone().unwrap_or_else(|| default.name.to_string());
    if let Some(f) = family {
        if f.kind != metrics::MetricKind::Histogram {
            ctx.err(
                &format!("{p}.metric"),
                format!("`{name}` is not a histogram"),
                "name a histogram family (without `_bucket`)",
            );
            return None;
        }
    } else if !valid_metric_name(&name) || name.ends_with("_bucket") {
        ctx.err(
            &format!("{p}.metric"),
            format!("`{name}` is not a histogram family name"),
            "give the family name without `_bucket`/`_count`",
        );
        return None;
    }
    let buckets: Vec<f64> = match (family, &t.buckets) {
        (Some(_), Some(_)) => {
            ctx.err(
                &format!("{p}.buckets"),
                format!("`{name}` is a contract metric; its buckets are known"),
                "remove `buckets`",
            );
            return None;
        }
        (Some(f), None) => f.buckets.to_vec(),
        (None, Some(b)) => b.clone(),
        (None, None) => {
            ctx.err(
                &format!("{p}.metric"),
                format!("buckets of `{name}` are unknown"),
                "list the histogram's bucket boundaries under `buckets:`",
            );
            return None;
        }
    };
    let th = t.threshold_seconds;
    if !(th > 0.0 && th.is_finite()) {
        ctx.err(
            &format!("{p}.threshold_seconds"),
            format!("threshold {th} must be positive"),
            format!("use one of the bucket boundaries: {}", fmt_list(&buckets)),
        );
        return None;
    }
    if !buckets
        .iter()
        .any(|b| (b - th).abs() <= 1e-12 * b.abs().max(1.0))
    {
        let below = buckets
            .iter()
            .copied()
            .filter(|b| *b < th)
            .fold(None, |_, b| Some(b));
        let above = buckets.iter().copied().find(|b| *b > th);
        let nearest = [below, above]
            .iter()
            .flatten()
            .map(|b| format!("{b}"))
            .collect::<Vec<_>>()
            .join(" or ");
        ctx.err(
            &format!("{p}.threshold_seconds"),
            format!("{th} s is not a bucket boundary of `{name}`, so the share under it cannot be counted exactly"),
            format!("use the nearest boundary: {nearest}"),
        );
        return None;
    }
    let matchers = check_matchers(ctx, &format!("{p}.matchers"), &t.matchers, family);
    let mut good_m = matchers.clone();
    good_m.push(le_matcher(th));
    Some((
        Query::selector(&format!("{name}_bucket"), good_m),
        Query::selector(&format!("{name}_count"), matchers),
        th,
    ))
}

/// `le` as exposed: Go clients print `1`, others `1.0`; match both for integers.
pub fn le_matcher(th: f64) -> Matcher {
    let s = format!("{th}");
    if th.fract() == 0.0 {
        Matcher {
            name: "le".into(),
            op: MatchOp::Re,
            value: format!("{s}(\\.0)?"),
        }
    } else {
        Matcher::eq("le", &s)
    }
}

fn check_sli(ctx: &mut Ctx<'_>, p: &str, s: &SliSpec) -> Option<Sli> {
    let set = [
        s.ratio.is_some(),
        s.availability.is_some(),
        s.latency.is_some(),
        s.freshness.is_some(),
        s.consumer_lag.is_some(),
        s.query_threshold.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        ctx.err(
            p,
            if set == 0 { "no SLI kind given".to_string() } else { format!("{set} SLI kinds given") },
            "set exactly one of `ratio`, `availability`, `latency`, `freshness`, `consumer_lag`, `query_threshold`",
        );
        return None;
    }
    if let Some(r) = &s.ratio {
        let rp = format!("{p}.ratio");
        let (num, good) = match (&r.good, &r.bad) {
            (Some(g), None) => (check_query(ctx, &format!("{rp}.good"), g), true),
            (None, Some(b)) => (check_query(ctx, &format!("{rp}.bad"), b), false),
            _ => {
                ctx.err(
                    &rp,
                    "a ratio needs exactly one of `good` or `bad`",
                    "keep `good` (good/total) or `bad` (bad/total), not both",
                );
                return None;
            }
        };
        let total = check_query(ctx, &format!("{rp}.total"), &r.total);
        let (num, total) = (num?, total?);
        if num == total {
            ctx.err(
                &format!("{rp}.total"),
                "numerator and `total` are the same query",
                "select only the good or bad events in the numerator",
            );
            return None;
        }
        return Some(Sli::Events {
            kind: SliKind::Ratio,
            numerator: num,
            numerator_is_good: good,
            total,
        });
    }
    if let Some(a) = &s.availability {
        use metrics::{HTTP_SERVER_REQUEST_DURATION as H, labels};
        let ap = format!("{p}.availability");
        if a.matchers.contains_key(labels::STATUS_CLASS) {
            ctx.err(
                &format!("{ap}.matchers.{}", labels::STATUS_CLASS),
                "availability sets `status_class` itself (5xx = bad)",
                "remove this matcher or use a `ratio` SLI",
            );
            return None;
        }
        let m = check_matchers(ctx, &format!("{ap}.matchers"), &a.matchers, Some(&H));
        let mut bad = m.clone();
        bad.push(Matcher::eq(labels::STATUS_CLASS, "5xx"));
        return Some(Sli::Events {
            kind: SliKind::Availability,
            numerator: Query::selector(&H.count(), bad),
            numerator_is_good: false,
            total: Query::selector(&H.count(), m),
        });
    }
    if let Some(l) = &s.latency {
        let (good, total, th) = check_threshold(
            ctx,
            &format!("{p}.latency"),
            l,
            &metrics::HTTP_SERVER_REQUEST_DURATION,
        )?;
        return Some(Sli::Events {
            kind: SliKind::Latency {
                threshold_seconds: th,
            },
            numerator: good,
            numerator_is_good: true,
            total,
        });
    }
    if let Some(f) = &s.freshness {
        let (good, total, th) = check_threshold(
            ctx,
            &format!("{p}.freshness"),
            f,
            &metrics::PROJECTION_FRESHNESS,
        )?;
        return Some(Sli::Events {
            kind: SliKind::Freshness {
                threshold_seconds: th,
            },
            numerator: good,
            numerator_is_good: true,
            total,
        });
    }
    if let Some(c) = &s.consumer_lag {
        let cp = format!("{p}.consumer_lag");
        let mut ok = true;
        for (f, v) in [("group", &c.group), ("topic", &c.topic)] {
            if v.trim().is_empty() {
                ctx.err(
                    &format!("{cp}.{f}"),
                    format!("`{f}` is empty"),
                    format!("name the consumer {f}"),
                );
                ok = false;
            }
        }
        if !(c.max_lag_seconds > 0.0 && c.max_lag_seconds.is_finite()) {
            ctx.err(
                &format!("{cp}.max_lag_seconds"),
                format!("{} is not a positive number of seconds", c.max_lag_seconds),
                "use e.g. `30`",
            );
            ok = false;
        }
        return ok.then(|| Sli::ConsumerLag {
            group: c.group.clone(),
            topic: c.topic.clone(),
            max_lag_seconds: c.max_lag_seconds,
        });
    }
    if let Some(q) = &s.query_threshold {
        let qp = format!("{p}.query_threshold");
        if q.promql.trim().is_empty() || q.promql.contains("$window") {
            ctx.err(&format!("{qp}.promql"), "expected an instant PromQL expression", "write the value to compare per slice, e.g. `histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`");
            return None;
        }
        if let Err(e) = crate::promql::validate(&q.promql) {
            ctx.promql_err(
                &format!("{qp}.promql"),
                &e,
                "write a valid instant PromQL expression",
            );
            return None;
        }
        if !q.value.is_finite() {
            ctx.err(
                &format!("{qp}.value"),
                "the bound must be a finite number",
                "use e.g. `0.5`",
            );
            return None;
        }
        return Some(Sli::QueryThreshold {
            promql: q.promql.clone(),
            good_when: q.good_when,
            value: q.value,
        });
    }
    None
}

fn check_budgeting(
    ctx: &mut Ctx<'_>,
    p: &str,
    b: Option<&BudgetingSpec>,
    sli: Option<&Sli>,
) -> Option<Budgeting> {
    let is_lag = matches!(
        sli,
        Some(Sli::ConsumerLag { .. } | Sli::QueryThreshold { .. })
    );
    let Some(b) = b else {
        return Some(if is_lag {
            Budgeting::Timeslices {
                slice: Dur::mins(1),
                slice_objective: None,
            }
        } else {
            Budgeting::Occurrences
        });
    };
    match b.method {
        BudgetingMethod::Occurrences => {
            if is_lag {
                ctx.err(
                    &format!("{p}.method"),
                    "consumer lag has no events to count",
                    "use `method: timeslices` (or omit `budgeting`)",
                );
                return None;
            }
            if b.slice.is_some() || b.slice_objective.is_some() {
                ctx.err(
                    p,
                    "`slice`/`slice_objective` only apply to timeslices",
                    "remove them or use `method: timeslices`",
                );
                return None;
            }
            Some(Budgeting::Occurrences)
        }
        BudgetingMethod::Timeslices => {
            let slice = b.slice.unwrap_or(Dur::mins(1));
            if slice < Dur::mins(1) || slice > Dur::hours(1) || slice.as_secs() % 60 != 0 {
                ctx.err(
                    &format!("{p}.slice"),
                    format!("slice `{slice}` must be whole minutes between 1m and 1h"),
                    "use e.g. `1m` or `5m`",
                );
                return None;
            }
            match (is_lag, b.slice_objective) {
                (true, Some(_)) => {
                    ctx.err(
                        &format!("{p}.slice_objective"),
                        "a lag slice is good when lag stays under `max_lag_seconds`",
                        "remove `slice_objective`",
                    );
                    None
                }
                (false, None) => {
                    ctx.err(p, "timeslices over events need `slice_objective`", "add e.g. `slice_objective: 0.95` (a slice is good when 95% of its events are good)");
                    None
                }
                (false, Some(o)) if !(o > 0.0 && o < 1.0) => {
                    ctx.err(
                        &format!("{p}.slice_objective"),
                        format!("{o} is out of range"),
                        "use a fraction strictly between 0 and 1",
                    );
                    None
                }
                (_, o) => Some(Budgeting::Timeslices {
                    slice,
                    slice_objective: o,
                }),
            }
        }
    }
}

fn check_alerting(
    ctx: &mut Ctx<'_>,
    p: &str,
    s: &SloSpec,
    window: Option<&Window>,
) -> Option<Alerting> {
    let a = s.alerting.clone().unwrap_or_default();
    let mut tiers = match &a.tiers {
        None => default_tiers(),
        Some(t) if t.is_empty() => {
            ctx.err(
                &format!("{p}.tiers"),
                "empty tier list: this SLO would never alert",
                "omit `tiers` for the default set or list at least one tier",
            );
            return None;
        }
        Some(ts) => ts
            .iter()
            .map(|t| Tier {
                number: 0,
                severity: t.severity,
                factor: t.factor,
                long: t.long,
                short: t.short,
                for_: t.for_,
            })
            .collect(),
    };
    let before = ctx.errors.len();
    let budget = 1.0 - s.objective;
    for (i, t) in tiers.iter().enumerate() {
        let tp = if a.tiers.is_some() {
            format!("{p}.tiers[{i}]")
        } else {
            "objective".to_string()
        };
        let tp_of = |f: &str| {
            if a.tiers.is_some() {
                format!("{tp}.{f}")
            } else {
                format!("{}.objective", p.trim_end_matches(".alerting"))
            }
        };
        if !(t.factor > 0.0 && t.factor.is_finite()) {
            ctx.err(
                &tp_of("factor"),
                format!("factor {} must be positive", t.factor),
                "use e.g. 14.4, 6, 3 or 1",
            );
            continue;
        }
        if t.short >= t.long {
            ctx.err(
                &tp_of("short"),
                format!(
                    "short window `{}` is not shorter than long window `{}`",
                    t.short, t.long
                ),
                "use a short window of about 1/12 of the long one (e.g. 5m for 1h)",
            );
            continue;
        }
        let Some(w) = window else { continue };
        if w.shortest() < t.long {
            ctx.err(
                &tp_of("long"),
                format!(
                    "alert window `{}` is longer than the SLO window ({} days)",
                    t.long,
                    w.shortest().as_secs() / 86_400
                ),
                "shorten the tier's `long` window or lengthen the SLO window",
            );
            continue;
        }
        if (0.0..1.0).contains(&budget) {
            let rate = t.burn_rate_for(w.longest());
            if rate * budget >= 1.0 {
                let max_factor = crate::compile::num(t.factor / (rate * budget) * 0.999_999);
                let min_objective = crate::compile::num(1.0 - 1.0 / rate);
                let fix = if a.tiers.is_some() {
                    format!(
                        "lower the factor below {max_factor} or raise the objective above {min_objective}"
                    )
                } else {
                    format!(
                        "raise the objective above {min_objective} (the default page tier burns at {}) or set `alerting.tiers` with smaller factors",
                        crate::compile::num(rate)
                    )
                };
                ctx.err(
                    &tp_of("factor"),
                    format!(
                        "tier {} can never fire: burn rate {} × error budget {} = {} ≥ 1 (an error ratio cannot exceed 100%)",
                        i + 1,
                        crate::compile::num(rate),
                        crate::compile::num(budget),
                        crate::compile::num(rate * budget)
                    ),
                    fix,
                );
            }
        }
    }
    if ctx.errors.len() > before {
        return None;
    }
    // Most urgent first: pages before tickets, faster (higher factor) first.
    tiers.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.factor.total_cmp(&a.factor))
            .then(a.long.cmp(&b.long))
    });
    for (i, t) in tiers.iter_mut().enumerate() {
        t.number = i as u32 + 1;
    }
    let nd = a.no_data.clone().unwrap_or(NoDataSpec {
        for_: None,
        severity: None,
    });
    let mut metas = [AlertMeta::default(), AlertMeta::default()];
    for (i, (key, m)) in [
        ("page_alert", &a.page_alert),
        ("ticket_alert", &a.ticket_alert),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(m) = m else { continue };
        for (kind, map) in [("labels", &m.labels), ("annotations", &m.annotations)] {
            for k in map.keys() {
                let reserved = kind == "labels" && RESERVED_LABELS.contains(&k.as_str());
                if !valid_label_name(k) || reserved {
                    ctx.err(
                        &format!("{p}.{key}.{kind}.{k}"),
                        format!("`{k}` cannot be used here"),
                        format!(
                            "use a Prometheus label name other than {}",
                            RESERVED_LABELS.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(n) = m.name.as_deref().filter(|n| !valid_metric_name(n)) {
            ctx.err(
                &format!("{p}.{key}.name"),
                format!("`{n}` is not a valid alert name"),
                "use letters, digits, `_` and `:`, not starting with a digit (e.g. `CommandApiAvailability`)",
            );
        }
        metas[i] = AlertMeta {
            name: m.name.clone(),
            for_: m.for_,
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
        };
    }
    if ctx.errors.len() > before {
        return None;
    }
    let [page_meta, ticket_meta] = metas;
    Some(Alerting {
        tiers,
        min_events: a.min_events.unwrap_or(DEFAULT_MIN_EVENTS),
        no_data_for: nd.for_.unwrap_or(DEFAULT_NO_DATA_FOR),
        no_data_severity: nd.severity.unwrap_or(Severity::Ticket),
        page_meta,
        ticket_meta,
    })
}
