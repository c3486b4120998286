//! Generated files are committed; this test regenerates them and fails on
//! any difference, rewriting the files so the fix is `git add` (STYLE.md #8).
mod common;

use std::path::PathBuf;

#[test]
fn committed_artifacts_match_the_specs() {
    let root = common::repo_root();
    let slos = slo::validate::load_dir(&root.join("slo")).unwrap_or_else(|e| panic!("{e}"));
    let want = slo::artifacts(&slos, &common::receivers(), &common::prices()).expect("artifacts");
    let mut stale: Vec<PathBuf> = Vec::new();
    for (rel, text) in &want {
        let path = root.join(rel);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, text).expect("write");
            stale.push(rel.clone());
        }
    }
    for rel in slo::generate::stale_files(&root, &want) {
        std::fs::remove_file(root.join(&rel)).expect("remove stale file");
        stale.push(rel);
    }
    assert!(
        stale.is_empty(),
        "generated files were out of date and have been rewritten; review and commit them: {stale:#?}"
    );
}

#[test]
fn generation_is_deterministic_and_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = common::repo_root().join("slo");
    let first = slo::generate(&specs, dir.path()).expect("generate");
    assert!(!first.is_empty());
    let second = slo::generate(&specs, dir.path()).expect("generate again");
    assert!(second.is_empty(), "re-running changed {second:?}");
    // A file left behind by a deleted SLO is removed.
    std::fs::write(dir.path().join("alerts/tests/deleted-slo.test.yaml"), "x").expect("write");
    let third = slo::generate(&specs, dir.path()).expect("generate again");
    assert_eq!(
        third,
        vec![PathBuf::from("alerts/tests/deleted-slo.test.yaml")]
    );
}
