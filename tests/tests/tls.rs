//! TLS on the services' own listeners: with `<PREFIX>_TLS_CERT_FILE` and
//! `<PREFIX>_TLS_KEY_FILE` set, the command service, the query service, the
//! event processor (health and metrics) and the observer serve HTTPS with
//! that certificate and no plain HTTP; a missing file stops the service at
//! start with an error naming the key.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use system_tests::{Service, Stack};

/// A self-signed RSA certificate for `localhost` and 127.0.0.1 (PKCS#1 key
/// file, which the services convert).
fn self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, Vec<u8>)> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let cert = service_kit::tls::self_signed_cert(&key)?;
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, &cert)?;
    std::fs::write(&key_file, key.rsa()?.private_key_to_pem()?)?;
    Ok((cert_file, key_file, cert))
}

fn command(
    binary: &str,
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(devstack::workspace_bin(binary)?);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "info,sqlx=warn,rdkafka=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(log)?))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(log)?,
        ))
        .kill_on_drop(true);
    Ok(cmd)
}

/// Start `binary` and wait until `/healthz` answers over HTTPS.
async fn start_tls(
    binary: &str,
    port: u16,
    env: &[(String, String)],
    https: &reqwest::Client,
    log_dir: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let log = log_dir.join(format!("{binary}-tls.log"));
    let mut child = command(binary, env, &log)?.spawn()?;
    let url = format!("https://localhost:{port}/healthz");
    let up = devstack::wait_http_ok(https, &url, Duration::from_secs(30)).await;
    if let Err(e) = up {
        let exited = child.try_wait().ok().flatten();
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        anyhow::bail!("{e}; exit status {exited:?}; log:\n{log}");
    }
    Ok(child)
}

#[tokio::test]
async fn every_service_serves_https_with_the_configured_certificate() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let certs = tempfile::tempdir()?;
    let (cert_file, key_file, cert_pem) = self_signed(certs.path())?;
    let (cert_file, key_file) = (
        cert_file.to_string_lossy().to_string(),
        key_file.to_string_lossy().to_string(),
    );
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert_pem)?])
        .timeout(Duration::from_secs(5))
        .build()?;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let tls = [
        ("TLS_CERT_FILE", cert_file.as_str()),
        ("TLS_KEY_FILE", key_file.as_str()),
    ];
    let mut children = vec![];
    for service in [Service::Command, Service::Query, Service::Processor] {
        let port = devstack::free_port()?;
        let env = stack.wiring.env(service, port, &tls);
        children.push((
            service.binary(),
            port,
            start_tls(service.binary(), port, &env, &https, stack.log_dir()).await?,
        ));
    }
    let port = devstack::free_port()?;
    let env: Vec<(String, String)> = [
        ("OBSERVER_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("OBSERVER_TLS_CERT_FILE", cert_file.clone()),
        ("OBSERVER_TLS_KEY_FILE", key_file.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    children.push((
        "observer",
        port,
        start_tls("observer", port, &env, &https, stack.log_dir()).await?,
    ));

    for (name, port, _) in &children {
        // HTTPS, with the hostname and the IP address in the certificate.
        for host in ["localhost", "127.0.0.1"] {
            let r = https
                .get(format!("https://{host}:{port}/healthz"))
                .send()
                .await
                .with_context(|| format!("{name} over https via {host}"))?;
            assert_eq!(r.status(), 200, "{name} https via {host}");
        }
        // Plain HTTP on the TLS port gets no HTTP answer.
        let r = plain
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        assert!(r.is_err(), "{name} answered plain HTTP: {r:?}");
    }
    // The API itself over TLS, end to end: a write, read back.
    let (command_port, query_port) = (children[0].1, children[1].1);
    let created = https
        .post(format!("https://localhost:{command_port}/v1/todos"))
        .header("x-user-id", "tls-user")
        .json(&serde_json::json!({"title": "over TLS"}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!("https://localhost:{query_port}/v1/todos/{id}");
    devstack::wait_until(
        "the todo in the query API over TLS",
        Duration::from_secs(30),
        || {
            let (https, url) = (https.clone(), url.clone());
            async move {
                match https.get(&url).header("x-user-id", "tls-user").send().await {
                    Ok(r) => r.status() == 200,
                    Err(_) => false,
                }
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_certificate_file_stops_the_service_naming_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_, key_file, _) = self_signed(dir.path())?;
    let missing = dir.path().join("nope.pem");
    let env: Vec<(String, String)> = [
        (
            "QUERY_DATABASE_URL",
            "postgres://127.0.0.1:1/unused".to_string(),
        ),
        ("QUERY_KAFKA_BROKERS", "127.0.0.1:1".to_string()),
        ("QUERY_LISTEN_ADDR", "127.0.0.1:0".to_string()),
        ("QUERY_TLS_CERT_FILE", missing.to_string_lossy().to_string()),
        ("QUERY_TLS_KEY_FILE", key_file.to_string_lossy().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let log = dir.path().join("query.log");
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        command("query-service", &env, &log)?.status(),
    )
    .await??;
    let out = std::fs::read_to_string(&log)?;
    assert_eq!(status.code(), Some(2), "exit status; output:\n{out}");
    assert!(
        out.contains("QUERY_TLS_CERT_FILE: cannot read") && out.contains("nope.pem"),
        "output:\n{out}"
    );
    Ok(())
}
