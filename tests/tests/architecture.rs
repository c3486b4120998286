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
