//! Errors that point at the spec: file, line, field and a fix.

use std::fmt;

/// One problem in one spec file. `Display` renders a single line
/// `file:line:col: field: message (fix: ...)` so tools can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `slos[0].objective`.
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {} (fix: {})",
            self.file, self.line, self.column, self.field, self.message, self.fix
        )
    }
}

impl std::error::Error for SpecError {}

/// All problems found in a set of spec files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Errors of the library's public operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's specs are wrong; each entry names file, line, field and fix.
    #[error("{0}")]
    Spec(SpecErrors),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Something inside the engine went wrong (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// A path segment inside a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Builds a field path from `a.b[2].c` notation.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        if part.is_empty() {
            continue;
        }
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(n) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(n));
            }
        }
    }
    out
}

/// Finds the 1-based line and column of a field path in YAML text by scanning
/// block-style indentation. The parser gives spans only for syntax and type
/// errors; semantic errors (e.g. a target out of range) are located here.
/// Falls back to the deepest ancestor found, then to line 1.
pub fn locate(text: &str, path: &[Seg]) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let mut best = (1usize, 1usize);
    let mut cursor = 0usize; // first line to search
    let mut parent_indent: isize = -1;
    let mut end = lines.len();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                let mut found = None;
                let mut i = cursor;
                while i < end {
                    let (col, content) = effective(lines[i]);
                    if content.is_empty() || content.starts_with('#') {
                        i += 1;
                        continue;
                    }
                    if (col as isize) <= parent_indent && i > cursor {
                        break;
                    }
                    if content.starts_with(&format!("{k}:")) && (col as isize) > parent_indent {
                        found = Some((i, col));
                        break;
                    }
                    // flow mapping on one line: `window: {rolling: 30d}`
                    if let Some(p) = lines[i]
                        .find(&format!("{{{k}:"))
                        .or_else(|| lines[i].find(&format!(", {k}:")))
                        && ((col as isize) > parent_indent || i == cursor)
                    {
                        found = Some((i, p + 1));
                        break;
                    }
                    i += 1;
                }
                let Some((line, col)) = found else {
                    return best;
                };
                best = (line + 1, col + 1);
                cursor = line;
                parent_indent = col as isize;
                end = block_end(&lines, line, col);
            }
            Seg::Index(n) => {
                let mut count = 0usize;
                let mut dash_col: Option<usize> = None;
                let mut found = None;
                let mut i = cursor + 1;
                // an item may also start on the key's own line in flow style; ignore that case
                while i < end {
                    let raw = lines[i];
                    let trimmed = raw.trim_start();
                    let col = raw.len() - trimmed.len();
                    if trimmed.is_empty() || trimmed.starts_with('#') {
                        i += 1;
                        continue;
                    }
                    if trimmed.starts_with("- ") || trimmed == "-" {
                        let dc = *dash_col.get_or_insert(col);
                        if col == dc {
                            if count == *n {
                                found = Some((i, col));
                                break;
                            }
                            count += 1;
                        }
                    } else if (col as isize) <= parent_indent {
                        break;
                    }
                    i += 1;
                }
                let Some((line, col)) = found else {
                    return best;
                };
                best = (line + 1, col + 1);
                cursor = line;
                // keys of the item sit at col + 2 on the dash line, so they pass `> col`
                parent_indent = col as isize;
                end = item_end(&lines, line, col);
            }
        }
    }
    best
}

/// Column and content of a line once leading `- ` markers are skipped.
fn effective(line: &str) -> (usize, &str) {
    let mut col = 0;
    let mut rest = line;
    loop {
        let t = rest.trim_start_matches(' ');
        col += rest.len() - t.len();
        if let Some(after) = t.strip_prefix("- ") {
            col += 2;
            rest = after;
        } else {
            return (col, t);
        }
    }
}

fn block_end(lines: &[&str], start: usize, col: usize) -> usize {
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let (c, content) = effective(l);
        let raw_col = l.len() - l.trim_start().len();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        // a sibling key or a following list item of the parent ends the block
        if c <= col && raw_col <= col {
            return i;
        }
    }
    lines.len()
}

fn item_end(lines: &[&str], start: usize, dash_col: usize) -> usize {
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let t = l.trim_start();
        let c = l.len() - t.len();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if c <= dash_col {
            return i;
        }
    }
    lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "service: a\nslos:\n  - name: x\n    objective: 0.9\n    window: {rolling: 30d}\n  - name: y\n    sli:\n      ratio:\n        total: {metric: m}\n    objective: 2\n";

    #[test]
    fn locates_nested_fields() {
        assert_eq!(locate(DOC, &parse_path("service")), (1, 1));
        assert_eq!(locate(DOC, &parse_path("slos[0].objective")), (4, 5));
        assert_eq!(locate(DOC, &parse_path("slos[1].objective")), (10, 5));
        assert_eq!(locate(DOC, &parse_path("slos[1].name")), (6, 5));
        assert_eq!(locate(DOC, &parse_path("slos[0].window.rolling")).0, 5);
        assert_eq!(locate(DOC, &parse_path("slos[1].sli.ratio.total")).0, 9);
        assert_eq!(locate(DOC, &parse_path("slos[1].missing")), (6, 3));
    }
}
