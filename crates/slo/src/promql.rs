//! PromQL on the syntax tree (the `promql-parser` crate): validation of every
//! raw expression in a spec, with the error's offset inside the expression so
//! callers can map it to file:line:col, and the rewrite of imported queries
//! (Sloth, Pyrra, OpenSLO) into event counts over `$window`.
//!
//! The rewrite works on the tree, never on the text: `rate(x[5m])` becomes
//! `increase(x[$window])`, every other range selector becomes `[$window]`, and
//! anything whose meaning would change once a per-second rate turns into a
//! count over the window is refused with the reason (`irate`, subqueries, `@`,
//! `avg_over_time`, ratios inside one query, ...). Label values are never
//! touched, so regexes like `code=~"5[0-9]{2}"` survive intact.

use std::time::Duration;

use promql_parser::parser::{self, Expr, FunctionArgs};

/// The placeholder our specs use for the window of a count.
pub const WINDOW: &str = "$window";

/// Stands in for `$window` while parsing: same length as `$window`, so
/// offsets in error messages stay those of the user's text.
const WINDOW_STANDIN: &str = "999999s";

/// A problem in one expression. `offset` is a byte offset into the
/// expression as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromqlError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for PromqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

/// Parses `expr` (which may contain `$window`); syntax and type errors carry
/// the offset of the first character at which the text stops being the
/// beginning of any valid expression.
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    let text = expr.replace(WINDOW, WINDOW_STANDIN);
    parser::parse(&text).map_err(|m| PromqlError {
        offset: error_offset(&text),
        message: describe(&m),
    })
}

/// Checks an expression of a spec: it parses and (for event counts) uses `$window`.
pub fn validate(expr: &str) -> Result<(), PromqlError> {
    parse(expr).map(drop)
}

fn describe(m: &str) -> String {
    if m == "invalid promql query" {
        "PromQL syntax error".into()
    } else {
        format!("PromQL error: {m}")
    }
}

/// Finds where a broken expression goes wrong: the shortest prefix that no
/// completion (closing brackets and quotes, after an optional operand) turns
/// into a valid expression. The parser reports no positions itself.
fn error_offset(text: &str) -> usize {
    let mut last_good = 0;
    for (i, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
        let prefix = &text[..i];
        if completable(prefix) {
            last_good = i;
        } else {
            // the character that made the prefix hopeless
            return text[..i]
                .char_indices()
                .last()
                .map(|(p, _)| p)
                .unwrap_or(0)
                .max(last_good.min(i));
        }
    }
    text.len().saturating_sub(1)
}

fn completable(prefix: &str) -> bool {
    let Some(closers) = closers(prefix) else {
        return false;
    };
    // the closers as they are, and with a range after the first `}` (a selector inside `rate(`)
    let mut variants = vec![closers.clone()];
    if let Some(i) = closers.find('}') {
        variants.push(format!("{}[5m]{}", &closers[..=i], &closers[i + 1..]));
    }
    const FILLS: &[&str] = &[
        "", " 1", " x", "5m", "m", "(x)", " (x)", "\"\"", "=\"a\"", ":1m", "x[5m]", " x[5m]",
    ];
    FILLS.iter().any(|fill| {
        variants.iter().any(|c| {
            let candidate = format!("{prefix}{fill}{c}");
            parser::parse(&candidate).is_ok()
        })
    })
}

/// Brackets and quotes still open at the end of `prefix`, closed in order;
/// None when a closer does not match its opener.
fn closers(prefix: &str) -> Option<String> {
    let mut stack: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in prefix.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' => stack.push(')'),
            '[' => stack.push(']'),
            '{' => stack.push('}'),
            ')' | ']' | '}' if stack.pop() != Some(c) => return None,
            _ => {}
        }
    }
    let mut out = String::new();
    if let Some(q) = quote {
        if escaped {
            out.push('\\');
        }
        out.push(q);
    }
    out.extend(stack.iter().rev());
    Some(out)
}

/// Turns Sloth's `{{.window}}` template (any spacing) into `$window`.
pub fn sloth_template(expr: &str) -> String {
    sloth_template_mapped(expr).0
}

/// `sloth_template` and, per replacement, (offset in the output after it,
/// characters removed), to map error offsets back to the user's text.
fn sloth_template_mapped(expr: &str) -> (String, Vec<(usize, usize)>) {
    let mut out = String::new();
    let mut shifts = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) if after[..j].trim() == ".window" => {
                out.push_str(WINDOW);
                shifts.push((out.len(), j + 4 - WINDOW.len()));
                rest = &after[j + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, shifts)
}

/// Rewrites an imported query that measures events per second (or per
/// range) into an event count over `$window`, on the syntax tree.
/// Sloth's `{{.window}}` counts as `$window`.
pub fn to_window_count(expr: &str) -> Result<String, PromqlError> {
    let (templated, shifts) = sloth_template_mapped(expr);
    to_window_count_templated(&templated).map_err(|mut e| {
        // back to an offset in the text with `{{.window}}`
        e.offset += shifts
            .iter()
            .filter(|(at, _)| *at <= e.offset)
            .map(|(_, n)| n)
            .sum::<usize>();
        e
    })
}

fn to_window_count_templated(expr: &str) -> Result<String, PromqlError> {
    let mut tree = parse(expr)?;
    let sentinel = sentinel();
    let mut r = Rewriter {
        expr,
        sentinel,
        error: None,
    };
    r.walk(&mut tree);
    if let Some(e) = r.error {
        return Err(e);
    }
    let printed = tree.to_string();
    let d = promql_parser::util::display_duration(&sentinel);
    Ok(printed
        .replace(&format!("[{d}]"), &format!("[{WINDOW}]"))
        .replace(&format!("[{d}:"), &format!("[{WINDOW}:")))
}

/// The range `$window` parses to (through `WINDOW_STANDIN`).
fn standin() -> Duration {
    Duration::from_secs(999_999)
}

/// A range no user writes; printed ranges equal to it become `$window`.
fn sentinel() -> Duration {
    Duration::from_secs(86_400 * 777 + 7)
}

struct Rewriter<'a> {
    expr: &'a str,
    sentinel: Duration,
    error: Option<PromqlError>,
}

/// Range functions whose result is a count (or sum) over their range.
const COUNTING: &[&str] = &["increase", "rate", "count_over_time", "sum_over_time"];
/// Functions that keep values (only labels change), safe around a count.
const VALUE_KEEPING: &[&str] = &["label_replace", "label_join", "sort", "sort_desc", "vector"];

impl Rewriter<'_> {
    fn refuse(&mut self, needle: &str, message: String) {
        if self.error.is_none() {
            let offset = self.expr.find(needle).unwrap_or(0);
            self.error = Some(PromqlError { offset, message });
        }
    }

    /// Whether the subtree reads a range (so holds rates/counts).
    fn has_range(e: &Expr) -> bool {
        match e {
            Expr::MatrixSelector(_) | Expr::Subquery(_) => true,
            Expr::Aggregate(a) => Self::has_range(&a.expr),
            Expr::Unary(u) => Self::has_range(&u.expr),
            Expr::Binary(b) => Self::has_range(&b.lhs) || Self::has_range(&b.rhs),
            Expr::Paren(p) => Self::has_range(&p.expr),
            Expr::Call(c) => c.args.args.iter().any(|a| Self::has_range(a)),
            _ => false,
        }
    }

    fn walk(&mut self, e: &mut Expr) {
        if self.error.is_some() {
            return;
        }
        match e {
            Expr::Aggregate(a) => {
                let op = a.op.to_string();
                if !matches!(
                    op.as_str(),
                    "sum" | "min" | "max" | "avg" | "topk" | "bottomk"
                ) && Self::has_range(&a.expr)
                {
                    self.refuse(
                        &op,
                        format!("`{op}` over a rate changes meaning once rates become counts over the window"),
                    );
                    return;
                }
                self.walk(&mut a.expr);
            }
            Expr::Unary(u) => self.walk(&mut u.expr),
            Expr::Paren(p) => self.walk(&mut p.expr),
            Expr::Binary(b) => {
                let op = b.op.to_string();
                let (l, r) = (Self::has_range(&b.lhs), Self::has_range(&b.rhs));
                let num = |x: &Expr| matches!(x, Expr::NumberLiteral(_));
                let set_op = b.op.is_set_operator();
                let ok = set_op
                    || !(l || r)
                    || match op.as_str() {
                        // sums and differences of counts are counts
                        "+" | "-" => !(num(&b.lhs) || num(&b.rhs)),
                        // a constant factor scales numerator and total alike
                        "*" => num(&b.lhs) || num(&b.rhs),
                        "/" => num(&b.rhs),
                        _ => false,
                    };
                if !ok {
                    self.refuse(
                        &format!(" {op}"),
                        format!(
                            "`{op}` between these operands is not an event count once rates become counts over the window (e.g. a ratio inside one query)"
                        ),
                    );
                    return;
                }
                self.walk(&mut b.lhs);
                self.walk(&mut b.rhs);
            }
            Expr::Call(c) => {
                let name = c.func.name;
                if name == "irate" {
                    self.refuse(
                        "irate",
                        "`irate` uses only the last two samples of its range, so it is not a count over the window; use `rate` or `increase`".into(),
                    );
                    return;
                }
                if COUNTING.contains(&name) {
                    let Some(arg) = c.args.args.first_mut() else {
                        return;
                    };
                    match arg.as_mut() {
                        Expr::MatrixSelector(m) => {
                            if m.vs.at.is_some() {
                                self.refuse(
                                    "@",
                                    "`@` pins the range to a fixed time, so the SLI would never move with the window".into(),
                                );
                                return;
                            }
                            m.range = self.sentinel;
                        }
                        Expr::Subquery(sq)
                            if sq.range == standin()
                                && sq.at.is_none()
                                && !Self::has_range(&sq.expr) =>
                        {
                            // sum_over_time((count(..))[{{.window}}:])
                            sq.range = self.sentinel;
                            return;
                        }
                        Expr::Subquery(_) => {
                            self.refuse(
                                ":",
                                format!("a subquery inside `{name}` samples at its own resolution; it cannot be turned into a count over the window"),
                            );
                            return;
                        }
                        _ => {}
                    }
                    if name == "rate" {
                        match increase_fn() {
                            Some(f) => c.func = f,
                            None => self.refuse("rate", "internal: no `increase` function".into()),
                        }
                    }
                    return;
                }
                let has = c.args.args.iter().any(|a| Self::has_range(a));
                if has && !VALUE_KEEPING.contains(&name) {
                    self.refuse(
                        name,
                        format!(
                            "`{name}` changes meaning once rates become counts over the window"
                        ),
                    );
                    return;
                }
                let mut args = std::mem::replace(&mut c.args, FunctionArgs::empty_args());
                for a in args.args.iter_mut() {
                    self.walk(a);
                }
                c.args = args;
            }
            Expr::Subquery(sq) => {
                // `x[{{.window}}:]` already spans the window (Sloth's
                // `sum_over_time((count(..))[{{.window}}:])`); a fixed range does not.
                if sq.range != standin() || sq.at.is_some() {
                    self.refuse(
                        ":",
                        "a subquery with a fixed range samples at its own resolution; it cannot be turned into a count over the window".into(),
                    );
                    return;
                }
                if Self::has_range(&sq.expr) {
                    self.refuse(
                        ":",
                        "a rate inside a subquery is sampled per step, so it is not a count over the window".into(),
                    );
                    return;
                }
                sq.range = self.sentinel;
            }
            Expr::MatrixSelector(_) => self.refuse(
                "[",
                "a bare range selector is not an event count; wrap it in `increase` or `rate`"
                    .into(),
            ),
            Expr::VectorSelector(v) => {
                if v.at.is_some() {
                    self.refuse(
                        "@",
                        "`@` pins the selector to a fixed time, so the SLI would never move".into(),
                    );
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
}

fn increase_fn() -> Option<parser::Function> {
    match parser::parse("increase(x[1m])") {
        Ok(Expr::Call(c)) => Some(c.func),
        _ => None,
    }
}

/// The counter a query counts, when it is one selector read only through
/// `increase(..[$window])`: (metric, matchers). None for anything else
/// (gauges, several selectors), which scenario generation cannot synthesise.
pub fn counted_selector(expr: &str) -> Option<(String, Vec<crate::model::Matcher>)> {
    use promql_parser::label::MatchOp;
    let tree = parse(expr).ok()?;
    let mut found: Vec<&parser::VectorSelector> = Vec::new();
    let mut ok = true;
    fn walk<'e>(
        e: &'e Expr,
        in_increase: bool,
        found: &mut Vec<&'e parser::VectorSelector>,
        ok: &mut bool,
    ) {
        match e {
            Expr::Aggregate(a) => walk(&a.expr, false, found, ok),
            Expr::Unary(u) => walk(&u.expr, false, found, ok),
            Expr::Paren(p) => walk(&p.expr, false, found, ok),
            Expr::Binary(b) => {
                walk(&b.lhs, false, found, ok);
                walk(&b.rhs, false, found, ok);
            }
            Expr::Call(c) => {
                let inc = c.func.name == "increase";
                for a in &c.args.args {
                    walk(a, inc, found, ok);
                }
            }
            Expr::MatrixSelector(m) if in_increase => found.push(&m.vs),
            Expr::MatrixSelector(_) | Expr::VectorSelector(_) | Expr::Subquery(_) => *ok = false,
            _ => {}
        }
    }
    walk(&tree, false, &mut found, &mut ok);
    if !ok || found.len() != 1 {
        return None;
    }
    let vs = found[0];
    let mut name = vs.name.clone();
    let mut out = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            if matches!(m.op, MatchOp::Equal) {
                name = Some(m.value.clone());
                continue;
            }
            return None;
        }
        let spec = match &m.op {
            MatchOp::Equal => m.value.clone(),
            MatchOp::NotEqual => format!("!={}", m.value),
            MatchOp::Re(_) => format!("=~{}", m.value),
            MatchOp::NotRe(_) => format!("!~{}", m.value),
        };
        out.push(crate::model::Matcher::parse(&m.name, &spec));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return None;
    }
    Some((name?, out))
}

/// What a sampled-gauge expression counts per sample of its one gauge.
#[derive(Debug, Clone, PartialEq)]
enum Counts {
    /// Every sample (`count_over_time(g[$window])`, `sum_over_time(count(g)[$window:])`).
    All,
    /// The sample values (`sum_over_time(g[$window])`, a 0/1 gauge).
    Ones,
    /// Samples for which `g <op> c` holds (`sum_over_time(count(g < c)[$window:])`).
    Where(parser::token::TokenType, f64),
}

/// Reads one side of a sampled-gauge SLI: the gauge selector and what it
/// counts, or None for any other shape.
fn gauge_side(expr: &str) -> Option<(parser::VectorSelector, Counts)> {
    let tree = parse(expr).ok()?;
    // the `*_over_time` call, below optional `sum(...)`, parentheses and `or on() vector(0)`
    fn over_time(e: &Expr) -> Option<&parser::Call> {
        match e {
            Expr::Aggregate(a) if a.op.to_string() == "sum" && a.modifier.is_none() => {
                over_time(&a.expr)
            }
            Expr::Paren(p) => over_time(&p.expr),
            Expr::Binary(b) if b.op.to_string() == "or" => match &*b.rhs {
                Expr::Call(c) if c.func.name == "vector" => over_time(&b.lhs),
                _ => None,
            },
            Expr::Call(c) if matches!(c.func.name, "sum_over_time" | "count_over_time") => Some(c),
            _ => None,
        }
    }
    fn unparen(e: &Expr) -> &Expr {
        match e {
            Expr::Paren(p) => unparen(&p.expr),
            e => e,
        }
    }
    let call = over_time(&tree)?;
    let [arg] = &call.args.args[..] else {
        return None;
    };
    let window = standin();
    match unparen(arg) {
        Expr::MatrixSelector(m)
            if m.range == window && m.vs.offset.is_none() && m.vs.at.is_none() =>
        {
            let counts = if call.func.name == "sum_over_time" {
                Counts::Ones
            } else {
                Counts::All
            };
            Some((m.vs.clone(), counts))
        }
        // evaluated at the rule evaluation interval: promtool's and the tests' 1m
        Expr::Subquery(s)
            if s.range == window
                && s.step.is_none()
                && s.offset.is_none()
                && s.at.is_none()
                && call.func.name == "sum_over_time" =>
        {
            let Expr::Aggregate(a) = unparen(&s.expr) else {
                return None;
            };
            if a.op.to_string() != "count" || a.modifier.is_some() {
                return None;
            }
            match unparen(&a.expr) {
                Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => {
                    Some((vs.clone(), Counts::All))
                }
                Expr::Binary(b) if b.op.is_comparison_operator() && !b.return_bool() => {
                    match (unparen(&b.lhs), unparen(&b.rhs)) {
                        (Expr::VectorSelector(vs), Expr::NumberLiteral(n))
                            if vs.offset.is_none() && vs.at.is_none() =>
                        {
                            Some((vs.clone(), Counts::Where(b.op, n.val)))
                        }
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A gauge SLI read sample by sample — Pyrra's `bool_gauge`
/// (`sum_over_time(g[$window])` over `count_over_time(g[$window])`) or
/// Sloth's subquery form (`sum_over_time(count(g < c)[$window:])` over
/// `sum_over_time(count(g)[$window:])`): the gauge's metric and matchers and a
/// value that makes a sample bad and one that makes it good. None for any
/// other shape, or when one side does not read the same gauge.
pub fn sampled_gauge(
    numerator: &str,
    numerator_is_good: bool,
    total: &str,
) -> Option<(String, Vec<crate::model::Matcher>, f64, f64)> {
    let (nvs, ncounts) = gauge_side(numerator)?;
    let (tvs, tcounts) = gauge_side(total)?;
    if tcounts != Counts::All || nvs.to_string() != tvs.to_string() {
        return None;
    }
    // (counted, not counted) sample values
    let (counted, other) = match ncounts {
        Counts::All => return None,
        Counts::Ones => (1.0, 0.0),
        Counts::Where(op, c) => {
            let holds = |v: f64| match op.to_string().as_str() {
                "<" => v < c,
                "<=" => v <= c,
                ">" => v > c,
                ">=" => v >= c,
                "==" => v == c,
                "!=" => v != c,
                _ => false,
            };
            let cands = [c - 0.25, c + 0.25, c];
            (
                *cands.iter().find(|v| holds(**v))?,
                *cands.iter().find(|v| !holds(**v))?,
            )
        }
    };
    let (name, matchers) = counted_selector(&format!("increase({tvs}[$window])"))?;
    let (bad, good) = if numerator_is_good {
        (other, counted)
    } else {
        (counted, other)
    };
    Some((name, matchers, bad, good))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sampled_gauge_tests {
    use super::sampled_gauge;

    #[test]
    fn reads_the_pyrra_and_sloth_gauge_forms() {
        let (m, l, bad, good) = sampled_gauge(
            r#"sum(sum_over_time(probe_success{job="b"}[$window]))"#,
            true,
            r#"sum(count_over_time(probe_success{job="b"}[$window]))"#,
        )
        .unwrap();
        assert_eq!(
            (m.as_str(), l.len(), bad, good),
            ("probe_success", 1, 0.0, 1.0)
        );
        let (m, _, bad, good) = sampled_gauge(
            "sum_over_time((count(sat < 0.75))[$window:]) OR on() vector(0)",
            false,
            "sum_over_time((count(sat))[$window:])",
        )
        .unwrap();
        assert_eq!((m.as_str(), bad, good), ("sat", 0.5, 1.0));
    }

    #[test]
    fn refuses_other_shapes() {
        for (n, t) in [
            // another gauge in the total
            ("sum_over_time(a[$window])", "count_over_time(b[$window])"),
            // an average is not a count
            ("avg_over_time(a[$window])", "count_over_time(a[$window])"),
            // a subquery step other than the evaluation interval
            (
                "sum_over_time((count(a < 1))[$window:5m])",
                "sum_over_time((count(a))[$window:5m])",
            ),
            // a fixed range
            ("sum_over_time(a[1h])", "count_over_time(a[1h])"),
            // counters
            ("sum(increase(e[$window]))", "sum(increase(t[$window]))"),
        ] {
            assert_eq!(sampled_gauge(n, false, t), None, "{n} / {t}");
        }
    }
}
