//! Property tests of the SLO spec parser: arbitrary text and mutations of
//! real specs (the repository's `slo/*.yaml` and the invalid fixtures) must
//! give either a validated model that compiles, or errors that each name the
//! file and say what is wrong. Never a panic.
//!
//! Bounded so it runs under plain `cargo test`: `PROPTEST_CASES` raises it.

use proptest::prelude::*;

const FILE: &str = "mutated.yaml";

const SEEDS: &[&str] = &[
    include_str!("../../../slo/command-service.yaml"),
    include_str!("../../../slo/query-service.yaml"),
    include_str!("fixtures/invalid/custom-tier-never-fires.yaml"),
    include_str!("fixtures/invalid/timeslices-without-slice-objective.yaml"),
    include_str!("fixtures/invalid/ratio-good-and-bad.yaml"),
    include_str!("fixtures/invalid/promql-without-window.yaml"),
    include_str!("fixtures/invalid/window-shorter-than-alert-window.yaml"),
];

/// Values that sit on the edges of what a field accepts.
const EDGE_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "0.0",
    "1.0",
    "0.9999999999999999",
    "1e309",
    "-1e309",
    ".nan",
    ".inf",
    "-.inf",
    "18446744073709551616",
    "~",
    "null",
    "''",
    "[]",
    "{}",
    "true",
    "0s",
    "1s",
    "1m",
    "30d",
    "0d",
    "99999999999d",
    "1h30m",
    "5x",
    "d",
    "P1D",
    "month",
    "week",
    "quarter",
    "Mars/Olympus",
    "UTC",
    "&a x",
    "*a",
    "!!binary aGk=",
    "|\n  block",
    "\"\\u0000\"",
    "[1, [2, [3]]]",
    "{a: {b: {c: 1}}}",
    "rate(x[5m])",
    "sum(rate(http_server_request_duration_seconds_count[$__window])) by (le)",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value after the n-th `key:` with an edge value.
    Value(usize, &'static str),
    /// Insert text at a char position.
    Insert(usize, String),
    /// Delete a char range.
    Delete(usize, usize),
    /// Duplicate, drop or re-indent a line.
    DuplicateLine(usize),
    DropLine(usize),
    Indent(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), prop::sample::select(EDGE_VALUES)).prop_map(|(i, v)| Edit::Value(i, v)),
        2 => (any::<usize>(), "[ :\\-\\[\\]{}#'\"a-z0-9.*&!|>%@\\n]{1,8}").prop_map(|(i, s)| Edit::Insert(i, s)),
        2 => (any::<usize>(), 1usize..12).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
        1 => any::<usize>().prop_map(Edit::DropLine),
        1 => (any::<usize>(), 0usize..9).prop_map(|(i, n)| Edit::Indent(i, n)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    match edit {
        Edit::Value(i, v) => {
            let with_values: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains(": ") || l.trim_end().ends_with(':'))
                .map(|(n, _)| n)
                .collect();
            if let Some(&n) = with_values.get(at(*i, with_values.len())) {
                let line = &lines[n];
                let cut = line.find(':').map_or(line.len(), |c| c + 1);
                lines[n] = format!("{} {v}", &line[..cut]);
            }
            lines.join("\n")
        }
        Edit::Insert(i, s) => {
            let p = at(*i, chars.len() + 1);
            let mut out: String = chars[..p].iter().collect();
            out.push_str(s);
            out.extend(&chars[p..]);
            out
        }
        Edit::Delete(i, n) => {
            let p = at(*i, chars.len() + 1);
            let end = (p + n).min(chars.len());
            chars[..p].iter().chain(&chars[end..]).collect()
        }
        Edit::DuplicateLine(i) => {
            if !lines.is_empty() {
                let n = at(*i, lines.len());
                lines.insert(n, lines[n].clone());
            }
            lines.join("\n")
        }
        Edit::DropLine(i) => {
            if !lines.is_empty() {
                lines.remove(at(*i, lines.len()));
            }
            lines.join("\n")
        }
        Edit::Indent(i, by) => {
            if !lines.is_empty() {
                let n = at(*i, lines.len());
                let trimmed = lines[n].trim_start().to_string();
                lines[n] = format!("{}{trimmed}", " ".repeat(*by));
            }
            lines.join("\n")
        }
    }
}

/// The contract: a model that compiles to every artifact, or errors that
/// each name the file and say what is wrong.
fn parses_cleanly(text: &str) -> Result<(), TestCaseError> {
    match slo::validate::parse_str(FILE, text) {
        Ok(slos) => {
            // Whatever validates must compile; an `Err` here is allowed
            // (it names itself), a panic is not.
            let _ = slo::artifacts(
                &slos,
                &slo::Receivers::demo(),
                &slo::cost::Prices::unpriced(),
            );
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "Err without errors for:\n{text}");
            for e in &errors.0 {
                prop_assert_eq!(&e.file, FILE);
                prop_assert!(
                    !e.message.trim().is_empty(),
                    "error without a message: {:?}\n{}",
                    e,
                    text
                );
            }
            prop_assert!(errors.to_string().contains(FILE));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        parses_cleanly(&text)?;
    }

    #[test]
    fn yaml_token_soup_never_panics(
        text in "([ \\n:\\-\\[\\]{}#'\"|>&*!%@,?]|[a-z_]{1,10}|[0-9.]{1,6}){0,80}"
    ) {
        parses_cleanly(&text)?;
    }

    #[test]
    fn mutated_specs_never_panic(
        seed in prop::sample::select(SEEDS),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let mut text = seed.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        parses_cleanly(&text)?;
    }
}

#[test]
fn the_seeds_reach_the_validator() {
    // The real specs are valid, so mutations start from a model that gets
    // all the way to the compilers.
    for seed in &SEEDS[..2] {
        let slos = slo::validate::parse_str(FILE, seed).expect("repository spec is valid");
        assert!(
            slo::artifacts(
                &slos,
                &slo::Receivers::demo(),
                &slo::cost::Prices::unpriced()
            )
            .is_ok()
        );
    }
}
