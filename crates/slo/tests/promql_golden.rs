//! Golden tests of the PromQL rewrite of imported queries (rate → increase,
//! ranges → `[$window]`, Sloth's `{{.window}}`) and of error positions.
//! The expected texts were checked by hand; a text-level rewrite (`rate(` →
//! `increase(` and a bracket regex) fails most of them.

use slo::promql::{to_window_count, validate};

/// (input, expected rewrite or `Err(fragment of the refusal)`).
const CASES: &[(&str, Result<&str, &str>)] = &[
    // regex matchers with digits and brackets stay untouched
    (
        r#"sum(rate(http_requests_total{code=~"5[0-9]{2}|429"}[5m]))"#,
        Ok(r#"sum(increase(http_requests_total{code=~"5[0-9]{2}|429"}[$window]))"#),
    ),
    (
        r#"sum(rate(http_requests_total{path=~"/api/v[12]/todos/[0-9]+",code!~"2.."}[1m]))"#,
        Ok(
            r#"sum(increase(http_requests_total{code!~"2..",path=~"/api/v[12]/todos/[0-9]+"}[$window]))"#,
        ),
    ),
    // Sloth's template
    (
        r#"sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))"#,
        Ok(
            r#"sum(increase(http_request_duration_seconds_count{code=~"(5..|429)",job="myservice"}[$window]))"#,
        ),
    ),
    // increase keeps its name, its range becomes the window
    (
        r#"sum(increase(x_total[30d]))"#,
        Ok(r#"sum(increase(x_total[$window]))"#),
    ),
    // irate is not a count over any window
    (
        r#"sum(irate(x_total{code=~"5.."}[5m]))"#,
        Err("`irate` uses only the last two samples"),
    ),
    // subqueries
    (
        r#"sum_over_time(sum(rate(x_total[5m]))[1h:1m])"#,
        Err("subquery"),
    ),
    // a subquery over Sloth's window already spans the window
    (
        r#"sum_over_time((count(unifipoller_client_satisfaction_ratio < 0.75))[{{.window}}:]) OR on() vector(0)"#,
        Ok(
            r#"sum_over_time((count(unifipoller_client_satisfaction_ratio < 0.75))[$window:]) or on () vector(0)"#,
        ),
    ),
    // offset is kept
    (
        r#"sum(rate(x_total{job="api"}[5m] offset 1h))"#,
        Ok(r#"sum(increase(x_total{job="api"}[$window] offset 1h))"#),
    ),
    // @ pins the query
    (r#"sum(rate(x_total[5m] @ 1609746000))"#, Err("`@` pins")),
    // nested aggregations
    (
        r#"sum(sum by (job, le) (rate(http_request_duration_seconds_bucket{le="0.25"}[2m])))"#,
        Ok(
            r#"sum(sum by (job, le) (increase(http_request_duration_seconds_bucket{le="0.25"}[$window])))"#,
        ),
    ),
    (
        r#"max(sum by (instance) (rate(x_total[5m])))"#,
        Ok(r#"max(sum by (instance) (increase(x_total[$window])))"#),
    ),
    // `or on() vector(0)` keeps a zero when no error series exists
    (
        r#"sum(rate(errors_total{code=~"5.."}[5m])) or on() vector(0)"#,
        Ok(r#"sum(increase(errors_total{code=~"5.."}[$window])) or on () vector(0)"#),
    ),
    // a ratio inside one query is not a count
    (
        r#"sum(rate(a_total[5m])) / sum(rate(b_total[5m]))"#,
        Err("is not an event count"),
    ),
    // differences of counts are counts (Pyrra's latency errors)
    (
        r#"sum(rate(h_count[5m])) - sum(rate(h_bucket{le="1"}[5m]))"#,
        Ok(r#"sum(increase(h_count[$window])) - sum(increase(h_bucket{le="1"}[$window]))"#),
    ),
    // averages over time are not counts
    (
        r#"sum(avg_over_time(up[5m]))"#,
        Err("`avg_over_time` changes meaning"),
    ),
];

#[test]
fn rewrites_match_the_golden_texts() {
    let mut failures = Vec::new();
    for (input, want) in CASES {
        let got = to_window_count(input);
        // compared as syntax trees: spacing and matcher order do not count
        let tree = |s: &str| slo::promql::parse(s).map(|e| e.to_string()).ok();
        let ok = match (&got, want) {
            (Ok(g), Ok(w)) => g == w || (tree(g).is_some() && tree(g) == tree(w)),
            (Err(e), Err(frag)) => e.message.contains(frag),
            _ => false,
        };
        if !ok {
            failures.push(format!("{input}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rewrite_is_valid_promql_with_the_window() {
    for (input, want) in CASES {
        if want.is_ok() {
            let out = to_window_count(input).expect("rewrite");
            validate(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        }
    }
}

/// (broken expression, byte offset of the problem).
const BROKEN: &[(&str, usize)] = &[
    // missing closing parenthesis: the end
    ("sum(rate(x_total[5m])", 20),
    // one `)` too many
    ("sum(rate(x_total[5m])))", 22),
    // unquoted label value
    ("sum(rate(x_total{code=5xx}[5m]))", 22),
    // binary operator without right operand, then more text
    ("sum(rate(x_total[5m])) / / 2", 25),
    // a range where an instant vector belongs: the `[`
    ("sum(x_total[5m]) + 1", 11),
];

#[test]
fn errors_point_at_the_offending_character() {
    let mut failures = Vec::new();
    for (expr, want) in BROKEN {
        match validate(expr) {
            Ok(()) => failures.push(format!("{expr}: accepted")),
            Err(e) if e.offset != *want => failures.push(format!(
                "{expr}: offset {} (want {want}): {}",
                e.offset, e.message
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A broken expression in a spec is reported at its file:line:col.
#[test]
fn spec_errors_are_located_inside_the_expression() {
    let text = "service: a\nslos:\n  - name: x\n    objective: 0.99\n    window: {rolling: 30d}\n    sli:\n      ratio:\n        bad:\n          promql: sum(increase(x_total{code=5xx}[$window]))\n        total:\n          promql: \"sum(increase(x_total[$window])))\"\n";
    let e = slo::validate::parse_str("slo/a.yaml", text).expect_err("invalid");
    let got: Vec<(usize, usize, &str)> =
        e.0.iter()
            .map(|e| (e.line, e.column, e.field.as_str()))
            .collect();
    // line 9: value at column 19, `5` of `code=5xx` at offset 26;
    // line 11: quoted value at column 20, the extra `)` at offset 31
    assert_eq!(
        got,
        vec![
            (9, 19 + 26, "slos[0].sli.ratio.bad.promql"),
            (11, 20 + 31, "slos[0].sli.ratio.total.promql"),
        ],
        "{e}"
    );
}

/// Offsets after a Sloth `{{.window}}` point into the text as written.
#[test]
fn offsets_after_sloth_templates_are_those_of_the_original_text() {
    // a refusal: at the ` /` between the two rates, as written
    let q = "sum(rate(a_total[{{.window}}])) / sum(rate(b_total[{{.window}}]))";
    let e = to_window_count(q).expect_err("refused");
    assert_eq!(e.offset, q.find(" /").expect("slash"), "{e}");
    // a syntax error after two templates: at the `@`
    let q = "sum(rate(a_total[{{.window}}])) + sum(rate(b_total[{{ .window }}])) @ 5";
    let e = to_window_count(q).expect_err("invalid");
    assert_eq!(e.offset, q.find('@').expect("@"), "{e}");
}
