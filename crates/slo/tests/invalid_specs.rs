//! Each broken spec yields exactly one error naming file, line (marked `#<`
//! in the fixture), field and a fix. Header: `# expect: <field> | <message part>`.
mod common;

#[test]
fn every_invalid_fixture_gives_one_clear_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "need 20+ fixtures, have {}", files.len());
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        let header = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("expect header");
        let (field, msg) = header.split_once(" | ").expect("field | message");
        let line = text
            .lines()
            .position(|l| l.contains("#<"))
            .expect("#< marker")
            + 1;
        let errs = match slo::validate::load_texts(&[(name.clone(), text.clone())]) {
            Ok(_) => {
                problems.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => e.0,
        };
        if errs.len() != 1 {
            problems.push(format!("{name}: {} errors: {errs:?}", errs.len()));
            continue;
        }
        let e = &errs[0];
        let rendered = e.to_string();
        if e.file != name
            || e.line != line
            || e.field != field
            || !e.message.contains(msg.trim())
            || e.fix.len() < 10
        {
            problems.push(format!(
                "{name}: expected line {line} field `{field}` message ~ `{msg}`, got: {rendered}"
            ));
        }
        assert!(
            rendered.starts_with(&format!("{name}:{line}:")),
            "{rendered}"
        );
        println!("{rendered}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn duplicate_names_across_files_are_refused() {
    let a = "service: a\nslos:\n  - name: same\n    objective: 0.99\n    window: {rolling: 30d}\n    sli: {availability: {matchers: {service: a}}}\n";
    let b = a.replace("service: a", "service: b");
    let errs = slo::validate::load_texts(&[("a.yaml".into(), a.into()), ("b.yaml".into(), b)])
        .expect_err("duplicate");
    assert_eq!(errs.0.len(), 1);
    assert_eq!((errs.0[0].file.as_str(), errs.0[0].line), ("b.yaml", 3));
    assert!(errs.0[0].message.contains("a.yaml"));
}
