//! ARCHITECTURE.md places every crate and every top-level folder: a crate
//! or folder added without a line there fails this test.

use std::path::Path;

#[test]
fn every_crate_and_top_level_folder_is_placed_in_architecture_md() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("tests/ has no parent"))?;
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md"))?;
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root.join("crates"))? {
        let e = e?;
        if e.path().join("Cargo.toml").exists() {
            let name = format!("`crates/{}`", e.file_name().to_string_lossy());
            if !doc.contains(&name) {
                missing.push(name);
            }
        }
    }
    for e in std::fs::read_dir(root)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        // Build output and dot-folders (.git, .ci) are not part of the codemap.
        if !e.path().is_dir() || name.starts_with('.') || name == "target" || name == "crates" {
            continue;
        }
        let placed = format!("`{name}/`");
        if !doc.contains(&placed) {
            missing.push(placed);
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "ARCHITECTURE.md does not place: {missing:?}"
    );
    Ok(())
}

/// The ```deps block of ARCHITECTURE.md is each crate's `[dependencies]` on
/// workspace crates, exactly: an arrow added or dropped in a Cargo.toml
/// without the same change there fails this test, with the difference named.
#[test]
fn architecture_md_draws_the_dependency_arrows_as_they_are() -> anyhow::Result<()> {
    use std::collections::{BTreeMap, BTreeSet};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("tests/ has no parent"))?;
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md"))?;
    let block = doc
        .split("```deps\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| anyhow::anyhow!("ARCHITECTURE.md has no ```deps block"))?;
    let mut drawn: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (name, deps) = line
            .split_once('→')
            .ok_or_else(|| anyhow::anyhow!("deps line without an arrow: {line:?}"))?;
        let deps = deps.trim();
        let deps = if deps == "(none)" {
            BTreeSet::new()
        } else {
            deps.split(',').map(|d| d.trim().to_owned()).collect()
        };
        drawn.insert(name.trim().to_owned(), deps);
    }

    let mut crates = BTreeMap::new();
    for e in std::fs::read_dir(root.join("crates"))? {
        let path = e?.path().join("Cargo.toml");
        if path.exists() {
            let dir = path.parent().and_then(|p| p.file_name());
            let name = dir
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default();
            crates.insert(name, std::fs::read_to_string(&path)?);
        }
    }
    let mut wrong = Vec::new();
    for (name, manifest) in &crates {
        // Lines of the [dependencies] table only (not dev- or build-).
        let mut in_deps = false;
        let mut actual = BTreeSet::new();
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line == "[dependencies]";
                continue;
            }
            let key = line.split(['.', '=', ' ']).next().unwrap_or("");
            if in_deps && crates.contains_key(key) {
                actual.insert(key.to_owned());
            }
        }
        match drawn.get(name) {
            None => wrong.push(format!("{name}: not in the deps block")),
            Some(d) if *d != actual => wrong.push(format!(
                "{name}: drawn {:?}, Cargo.toml has {:?}",
                d, actual
            )),
            Some(_) => {}
        }
    }
    for name in drawn.keys().filter(|n| !crates.contains_key(*n)) {
        wrong.push(format!("{name}: drawn but there is no crates/{name}"));
    }
    anyhow::ensure!(
        wrong.is_empty(),
        "ARCHITECTURE.md's arrows differ: {wrong:#?}"
    );
    Ok(())
}
