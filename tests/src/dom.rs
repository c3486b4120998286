//! The observer pages as headless Chromium renders them, and small readers
//! for the `data-*` attributes the pages put on every number and graph.

use std::path::Path;
use std::time::Duration;

/// Run `chromium --headless` with `args` (plus the flags every run needs)
/// against `url`; stdout on success. Panics when Chromium is missing.
async fn chromium(args: &[&str], url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "observer-chromium-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                &format!("--user-data-dir={}", profile.display()),
            ])
            .args(args)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90 s")
    .expect("chromium is required (apt-get install chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `chromium --headless --dump-dom`: the DOM after parsing.
pub async fn dump_dom(url: &str) -> String {
    chromium(&["--dump-dom"], url).await
}

/// A PNG of `url` at 1280×`height` into `path`.
pub async fn screenshot(url: &str, path: &Path, height: u32) {
    let shot = format!("--screenshot={}", path.display());
    let size = format!("--window-size=1280,{height}");
    chromium(&[&shot, &size], url).await;
    assert!(path.exists(), "no screenshot at {}", path.display());
}

/// The `<tr …>` element whose attribute `attr` is `value`.
pub fn row<'a>(dom: &'a str, attr: &str, value: &str) -> &'a str {
    element(dom, &format!("<tr {attr}=\"{value}\""), "</tr>")
}

/// From the first `start` in `dom` to the next `end`.
pub fn element<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in DOM:\n{dom}"));
    let stop = dom[at..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end} after {start}"))
        + at;
    &dom[at..stop]
}

/// The value of attribute `attr` after the first `marker` in `html`.
pub fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in {html}"));
    let rest = &html[at..];
    let key = format!("{attr}=\"");
    let v = rest
        .find(&key)
        .unwrap_or_else(|| panic!("{attr} after {marker}"))
        + key.len();
    rest[v..v + rest[v..].find('"').expect("quote")].to_string()
}

/// `data-value` of the cell `data-field="field"` in `html`.
pub fn field(html: &str, field: &str) -> String {
    attr_after(html, &format!("data-field=\"{field}\""), "data-value")
}

/// The text of the element `data-field="field"` in `html`.
pub fn text_of(html: &str, field: &str) -> String {
    let at = html
        .find(&format!("data-field=\"{field}\""))
        .expect("field");
    let rest = &html[at..];
    let s = rest.find('>').expect(">") + 1;
    rest[s..s + rest[s..].find('<').expect("<")].to_string()
}

/// `data-value` of the element with `id`.
pub fn id_value(dom: &str, id: &str) -> String {
    attr_after(dom, &format!("id=\"{id}\""), "data-value")
}

/// The `d` of every `<path>` in `html`.
pub fn paths(html: &str) -> Vec<String> {
    html.match_indices("<path")
        .map(|(i, _)| attr_after(&html[i..], "<path", "d"))
        .collect()
}
