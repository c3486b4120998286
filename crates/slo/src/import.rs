//! What the importers (Sloth, Pyrra, OpenSLO) share: splitting a YAML stream
//! into documents with their line offsets, located errors, percentages as
//! exact fractions, and the tiers of each source tool.

use serde_json::Value;

use crate::duration::Dur;
use crate::error::{SpecError, SpecErrors, locate, parse_path};
use crate::spec::{AlertingSpec, Severity, TierSpec};

/// One YAML document of a stream: its text, first line in the file, value.
pub struct Doc {
    pub text: String,
    pub first_line: usize,
    pub value: Value,
}

/// Splits a multi-document stream; syntax errors are located.
pub fn documents(file: &str, text: &str) -> Result<Vec<Doc>, SpecErrors> {
    let mut out = Vec::new();
    let mut chunk = String::new();
    let mut first = 1;
    let lines: Vec<&str> = text.lines().collect();
    let mut flush = |chunk: &mut String, first: usize| -> Result<(), SpecErrors> {
        if chunk.trim().is_empty() {
            chunk.clear();
            return Ok(());
        }
        let value: Value = serde_norway::from_str(chunk).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(1);
            SpecErrors(vec![SpecError {
                file: file.into(),
                line: first + line.saturating_sub(1),
                column: e.location().map(|l| l.column()).unwrap_or(1),
                field: "(document)".into(),
                message: e.to_string(),
                fix: "fix the YAML syntax".into(),
            }])
        })?;
        if !value.is_null() {
            out.push(Doc {
                text: std::mem::take(chunk),
                first_line: first,
                value,
            });
        }
        chunk.clear();
        Ok(())
    };
    for (i, l) in lines.iter().enumerate() {
        if l.trim_end() == "---" {
            flush(&mut chunk, first)?;
            first = i + 2;
        } else {
            chunk.push_str(l);
            chunk.push('\n');
        }
    }
    flush(&mut chunk, first)?;
    Ok(out)
}

/// Collects located errors and notes for one input file.
pub struct Report<'a> {
    pub file: &'a str,
    pub errors: Vec<SpecError>,
    /// What was imported with a change of meaning or dropped, one line each.
    pub notes: Vec<String>,
}

impl<'a> Report<'a> {
    pub fn new(file: &'a str) -> Self {
        Report {
            file,
            errors: Vec::new(),
            notes: Vec::new(),
        }
    }
    /// An error at `field` (dotted path inside `doc`).
    pub fn err(
        &mut self,
        doc: &Doc,
        field: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = locate(&doc.text, &parse_path(field));
        self.errors.push(SpecError {
            file: self.file.into(),
            line: doc.first_line + line - 1,
            column,
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }
    /// An error inside a PromQL string at `field`, at byte `offset` of the expression.
    pub fn promql_err(
        &mut self,
        doc: &Doc,
        field: &str,
        e: &crate::promql::PromqlError,
        fix: &str,
    ) {
        let (line, column) = locate(&doc.text, &parse_path(field));
        let (line, column) = value_position(&doc.text, line, column, e.offset);
        self.errors.push(SpecError {
            file: self.file.into(),
            line: doc.first_line + line - 1,
            column,
            field: field.into(),
            message: e.message.clone(),
            fix: fix.into(),
        });
    }
    pub fn note(&mut self, doc: &Doc, field: &str, message: impl AsRef<str>) {
        let (line, column) = locate(&doc.text, &parse_path(field));
        self.notes.push(format!(
            "{}:{}:{}: {field}: {}",
            self.file,
            doc.first_line + line - 1,
            column,
            message.as_ref()
        ));
    }
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<String>), SpecErrors> {
        if self.errors.is_empty() {
            Ok((value, self.notes))
        } else {
            Err(SpecErrors(self.errors))
        }
    }
}

/// Line and column of byte `offset` inside the scalar value of the key at
/// (`line`, `column`): plain or quoted on the key's line, or a block scalar
/// (`|`, `>`) on the following lines.
pub fn value_position(text: &str, line: usize, column: usize, offset: usize) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(l) = lines.get(line - 1) else {
        return (line, column);
    };
    let after_key = l[column.saturating_sub(1).min(l.len())..]
        .find(':')
        .map(|i| column - 1 + i + 1)
        .unwrap_or(l.len());
    let rest = &l[after_key.min(l.len())..];
    let value_start = after_key + (rest.len() - rest.trim_start().len());
    let v = rest.trim_start();
    if v.starts_with('|') || v.starts_with('>') {
        // block scalar: walk the following lines
        let mut left = offset;
        for (i, bl) in lines.iter().enumerate().skip(line) {
            let indent = bl.len() - bl.trim_start().len();
            let content = bl.trim_start();
            if left <= content.len() {
                return (i + 1, indent + left + 1);
            }
            left -= content.len() + 1;
        }
        return (line, column);
    }
    let quote = usize::from(v.starts_with('"') || v.starts_with('\''));
    (line, value_start + quote + offset + 1)
}

/// `99.9` → `0.999` exactly as written: the decimal point moves two places
/// in the text, so no binary rounding of `x / 100` creeps in.
pub fn percent(text: &str) -> Option<f64> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int:0>2}{frac}");
    let (i, f) = digits.split_at(digits.len() - 2 - frac.len());
    format!("{}.{f}", if i.is_empty() { "0" } else { i })
        .parse()
        .ok()
}

/// A YAML number or string as text, for `percent`.
pub fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Sloth's fixed tiers for its 30-day default period (page 14.4× 1h/5m and
/// 6× 6h/30m, ticket 3× 1d/2h and 1× 3d/6h), as our factors (defined for 30 days).
pub fn sloth_tiers(page: bool, ticket: bool) -> Vec<TierSpec> {
    let t = |severity, factor, long, short| TierSpec {
        severity,
        factor,
        long,
        short,
        for_: None,
    };
    let mut out = Vec::new();
    if page {
        out.push(t(Severity::Page, 14.4, Dur::hours(1), Dur::mins(5)));
        out.push(t(Severity::Page, 6.0, Dur::hours(6), Dur::mins(30)));
    }
    if ticket {
        out.push(t(Severity::Ticket, 3.0, Dur::days(1), Dur::hours(2)));
        out.push(t(Severity::Ticket, 1.0, Dur::days(3), Dur::hours(6)));
    }
    out
}

/// Pyrra's tiers as `slo/rules.go` `Windows(sloWindow)` computes them: the
/// 28-day windows (1h/5m, 6h/30m, 1d/2h, 4d/6h) scaled to the SLO window and
/// rounded to the minute, with factors 14, 7 (critical) and 2, 1 (warning)
/// applied to the window as is. Our factors are defined for 30 days, so each
/// becomes `factor × 30d / window`.
pub fn pyrra_tiers(window: Dur) -> Vec<TierSpec> {
    let w = window.as_secs() as f64;
    // Go's Duration.Round(time.Minute): halves away from zero
    let round = |div: f64| Dur::mins(((w / div) / 60.0).round() as u64);
    let scale = 30.0 * 86_400.0 / w;
    // each tier's `for`: window/20160, /2688, /672, /224 (2m, 15m, 1h, 3h on
    // 28 days), none where it rounds to 0
    let hold = |div: f64| {
        let m = ((w / div) / 60.0).round() as u64;
        (m > 0).then(|| Dur::mins(m))
    };
    let t = |severity, factor: f64, long: f64, short: f64, for_div: f64| TierSpec {
        severity,
        factor: factor * scale,
        long: round(long),
        short: round(short),
        for_: hold(for_div),
    };
    vec![
        t(
            Severity::Page,
            14.0,
            28.0 * 24.0,
            28.0 * 24.0 * 12.0,
            20160.0,
        ),
        t(Severity::Page, 7.0, 28.0 * 4.0, 28.0 * 24.0 * 2.0, 2688.0),
        t(Severity::Ticket, 2.0, 28.0, 28.0 * 12.0, 672.0),
        t(Severity::Ticket, 1.0, 7.0, 28.0 * 4.0, 224.0),
    ]
}

/// Alerting block of an import: the source's tiers and no low-traffic
/// guard (neither Sloth nor Pyrra has one, so the SLO pages when they would).
pub fn alerting(tiers: Vec<TierSpec>) -> AlertingSpec {
    AlertingSpec {
        tiers: Some(tiers),
        min_events: Some(0),
        no_data: None,
        page_alert: None,
        ticket_alert: None,
    }
}

/// Labels our pipeline sets itself, renamed `source_<name>` when imported.
pub fn label_name(k: &str) -> String {
    if ["slo", "service", "severity", "tier", "alertname"].contains(&k) {
        format!("source_{k}")
    } else {
        k.to_string()
    }
}

/// Which tool wrote a file, from its first document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    OpenSlo,
    Sloth,
    Pyrra,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::OpenSlo => "OpenSLO v1",
            Source::Sloth => "Sloth",
            Source::Pyrra => "Pyrra",
        }
    }
}

pub fn detect(file: &str, text: &str) -> Result<Source, SpecErrors> {
    let docs = documents(file, text)?;
    let Some(d) = docs.first() else {
        return Err(SpecErrors(vec![SpecError {
            file: file.into(),
            line: 1,
            column: 1,
            field: "(document)".into(),
            message: "empty file".into(),
            fix: "give an OpenSLO, Sloth or Pyrra document".into(),
        }]));
    };
    if crate::sloth::is_sloth(&d.value) {
        Ok(Source::Sloth)
    } else if crate::pyrra::is_pyrra(&d.value) {
        Ok(Source::Pyrra)
    } else if d.value["apiVersion"] == "openslo/v1" {
        Ok(Source::OpenSlo)
    } else {
        let mut r = Report::new(file);
        let field = if d.value.get("apiVersion").is_some() {
            "apiVersion"
        } else {
            "version"
        };
        r.err(
            d,
            field,
            "not a document we can import",
            "import OpenSLO `openslo/v1`, Sloth `prometheus/v1` or `sloth.slok.dev/v1` PrometheusServiceLevel, or Pyrra `pyrra.dev/v1alpha1` ServiceLevelObjective",
        );
        Err(SpecErrors(r.errors))
    }
}

/// Rendered spec files `(file name, YAML)` and the notes of an import.
pub type Converted = (Vec<(String, String)>, Vec<String>);

/// Imports any supported file into rendered spec files and notes.
pub fn convert(file: &str, text: &str) -> Result<Converted, crate::Error> {
    let source = detect(file, text).map_err(crate::Error::Spec)?;
    let (files, notes) = match source {
        Source::Sloth => crate::sloth::import(file, text),
        Source::Pyrra => crate::pyrra::import(file, text),
        Source::OpenSlo => crate::openslo::import(file, text).map(|f| (f, Vec::new())),
    }
    .map_err(crate::Error::Spec)?;
    Ok((render(&files, source, file)?, notes))
}

/// One YAML text per spec file, named after the service (`-2`, `-3`... when
/// a service comes back with other labels).
pub fn render(
    files: &[crate::spec::SpecFile],
    source: Source,
    from: &str,
) -> Result<Vec<(String, String)>, crate::Error> {
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    files
        .iter()
        .map(|f| {
            let n = seen.entry(f.service.clone()).or_default();
            *n += 1;
            let name = if *n == 1 {
                format!("{}.yaml", f.service)
            } else {
                format!("{}-{n}.yaml", f.service)
            };
            let body = serde_norway::to_string(f).map_err(|e| crate::Error::Internal(e.to_string()))?;
            let from = std::path::Path::new(from)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((
                name,
                format!(
                    "# Imported from {} ({from}) by `todoctl slo import`; see docs/slo-spec.md.\n{body}",
                    source.name()
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_exact() {
        assert_eq!(percent("99.9"), Some(0.999));
        assert_eq!(percent("99.99"), Some(0.9999));
        assert_eq!(percent("95"), Some(0.95));
        assert_eq!(percent("5"), Some(0.05));
        assert_eq!(percent("99.95"), Some(0.9995));
        assert_eq!(percent("x"), None);
    }

    #[test]
    fn pyrra_windows_for_28_and_30_days() {
        let t = pyrra_tiers(Dur::days(28));
        let got: Vec<_> = t
            .iter()
            .map(|t| (t.long.to_string(), t.short.to_string()))
            .collect();
        assert_eq!(
            got,
            [("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("4d", "6h")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!((t[0].factor - 15.0).abs() < 1e-12);
        // 30d: 64m/5m, 386m/32m, 1543m/129m, 6171m/386m (Pyrra's own comments: 64m, 6h26m, ...)
        let t = pyrra_tiers(Dur::days(30));
        let mins: Vec<_> = t
            .iter()
            .map(|t| (t.long.as_secs() / 60, t.short.as_secs() / 60))
            .collect();
        assert_eq!(mins, [(64, 5), (386, 32), (1543, 129), (6171, 386)]);
        assert!((t[0].factor - 14.0).abs() < 1e-12);
    }
}
