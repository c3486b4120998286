//! Acceptance 2 of issue 8: schemathesis (PyPI) fuzzes the command, query
//! and observer APIs from the OpenAPI documents they publish at `/openapi.json`, against
//! real processes on real PostgreSQL and a real broker. Any failed check
//! fails the test: a 5xx, a status, content type, header or body the
//! document does not describe, schema-invalid input that is accepted, or
//! schema-valid input that is refused. Bounded: a fixed seed and
//! `MAX_EXAMPLES` per operation and phase.
//!
//! The schemathesis CLI comes from `scripts/install-deps.sh` (a venv under
//! `$XDG_DATA_HOME/todo-platform`, by default under `~/.local/share`);
//! `SCHEMATHESIS_BIN` overrides the path.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
// The canary actions are fuzzed past the role check with an operator token.
use system_tests::{OPERATOR_TOKEN, Service, ServiceProcess, Stack};

const MAX_EXAMPLES: &str = "50";
const SEED: &str = "20261126";

fn schemathesis_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEMATHESIS_BIN") {
        return Ok(PathBuf::from(p));
    }
    // Where scripts/install-deps.sh puts it.
    let data = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".local/share")
        }
    };
    let venv = data.join("todo-platform/schemathesis-venv/bin/schemathesis");
    if venv.is_file() {
        return Ok(venv);
    }
    anyhow::bail!(
        "schemathesis not found at {} (run scripts/install-deps.sh, or set SCHEMATHESIS_BIN)",
        venv.display()
    )
}

/// `tests/schemathesis`: the hooks module and config files.
fn settings_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis")
}

/// Fetch the service's document and check it is the OpenAPI 3.1 JSON the
/// binary embeds.
async fn fetch_document(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let url = format!("{base}/openapi.json");
    let resp = http.get(&url).send().await?;
    anyhow::ensure!(resp.status() == 200, "GET {url}: {}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    anyhow::ensure!(ct == "application/json", "GET {url}: content type {ct}");
    let doc: serde_json::Value = resp.json().await?;
    anyhow::ensure!(
        doc["openapi"] == "3.1.0",
        "GET {url}: not an OpenAPI 3.1 document"
    );
    Ok(url)
}

/// Run schemathesis against one service; `Err` carries its full report.
/// `headers` are sent with every request besides `X-User-Id`.
async fn fuzz(
    schema_url: &str,
    config: Option<&str>,
    headers: &[String],
) -> anyhow::Result<String> {
    let bin = schemathesis_bin()?;
    let dir = settings_dir();
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.current_dir(&dir)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .arg("--no-color");
    if let Some(config) = config {
        cmd.arg("--config-file").arg(dir.join(config));
    }
    let headers = headers.iter().flat_map(|h| ["--header", h.as_str()]);
    let out = cmd
        .args([
            "run",
            schema_url,
            "--checks",
            "all",
            // Dev auth trusts any X-User-Id, so "invalid credentials" are a
            // valid identity; tests/tests/auth.rs covers refused tokens.
            "--exclude-checks",
            "ignored_auth",
            // 503 while a dependency check fails is the documented answer;
            // with no parameters there is nothing to fuzz.
            "--exclude-path",
            "/readyz",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            // One worker: Python 3.11's ast.parse is not thread-safe, and
            // hypothesis calls it while generating (a spurious runtime error).
            "--workers",
            "1",
            // Same seed, same requests: no example database carried over
            // from earlier runs.
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--header",
            "X-User-Id: fuzz",
        ])
        .args(headers)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    let report = format!(
        "{}{}\n(schemathesis took {:.1}s)",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        started.elapsed().as_secs_f64()
    );
    if out.status.success() {
        Ok(report)
    } else {
        Err(anyhow::anyhow!(
            "schemathesis found failures against {schema_url} (exit {:?}):\n{report}",
            out.status.code()
        ))
    }
}

/// An observer with everything its API serves configured: the canary
/// controller (its decision log in the stack's Postgres, one canary moved
/// through a real HAProxy's runtime API) and SLO evaluation against a
/// Prometheus that is not there (the documented `backend_down` answers).
async fn spawn_observer(
    stack: &Stack,
    spec_dir: &std::path::Path,
    runtime_api: &str,
) -> anyhow::Result<ServiceProcess> {
    use devstack::haproxy::{BACKEND, CANARY, STABLE};
    std::fs::write(
        spec_dir.join("fuzz.yaml"),
        format!(
            "name: fuzz\ntarget: command-service\nstable: {BACKEND}/{STABLE}\ncanary: {BACKEND}/{CANARY}\n\
             stable_version: a\ncanary_version: b\ndriver:\n  haproxy:\n    runtime_api: {runtime_api}\n"
        ),
    )?;
    let port = devstack::free_port()?;
    let slo_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../slo");
    let env: Vec<(String, String)> = [
        ("OBSERVER_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("OBSERVER_PROMETHEUS_URL", "http://127.0.0.1:1".into()),
        ("OBSERVER_PROMETHEUS_TIMEOUT_MS", "200".into()),
        ("OBSERVER_PROMETHEUS_RETRIES", "0".into()),
        ("OBSERVER_SLO_DIR", slo_dir.display().to_string()),
        ("OBSERVER_CANARY_DIR", spec_dir.display().to_string()),
        ("OBSERVER_DATABASE_URL", stack.wiring.database_url.clone()),
        ("OBSERVER_AUTH_MODE", "dev".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ServiceProcess::spawn("observer", port, &env, stack.log_dir()).await
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_the_published_api_documents() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let (command, query) = tokio::try_join!(
        stack.spawn(Service::Command, &[]),
        stack.spawn(Service::Query, &[])
    )?;
    let spec_dir = tempfile::Builder::new().prefix("canary-specs-").tempdir()?;
    // Both HAProxy servers are the command service: only the weights matter.
    let command_addr = command.base_url().trim_start_matches("http://").to_string();
    let haproxy = devstack::haproxy::Haproxy::start(&command_addr, &command_addr, 0).await?;
    let observer = spawn_observer(&stack, spec_dir.path(), &haproxy.runtime_api()).await?;
    let http = reqwest::Client::new();
    let mut failures = vec![];
    let operator = vec![format!("Authorization: Bearer {OPERATOR_TOKEN}")];
    for (name, base, config, headers) in [
        ("command", command.base_url(), None, &vec![]),
        (
            "query",
            query.base_url(),
            Some("query-service.toml"),
            &vec![],
        ),
        ("observer", observer.base_url(), None, &operator),
    ] {
        let url = fetch_document(&http, &base).await?;
        match fuzz(&url, config, headers).await {
            Ok(report) => println!("=== {name} API ===\n{report}"),
            Err(e) => failures.push(format!("=== {name} API ===\n{e:#}")),
        }
    }
    // A write the API accepted must also be publishable: an event Postgres
    // cannot store as jsonb (a NUL in a title did that) stalls the relay
    // and, behind it, every later event.
    let pool = stack.pool().await?;
    let drained = devstack::wait_until("the outbox to drain", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox")
                .fetch_one(&pool)
                .await
                .map(|n| n == 0)
                .unwrap_or(false)
        }
    })
    .await;
    if let Err(e) = drained {
        let log = std::fs::read_to_string(command.log_path()).unwrap_or_default();
        let relay: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("relay"))
            .rev()
            .take(5)
            .collect();
        failures.push(format!(
            "{e:#}; last relay log lines:\n{}",
            relay.join("\n")
        ));
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}
