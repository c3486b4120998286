//! The TLS listener with a real handshake: a self-signed certificate made
//! here, an HTTPS client trusting only it, and plain HTTP refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use service_kit::tls::{ServiceListener, acceptor};
use tokio_util::sync::CancellationToken;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM.
/// The key is SEC1 ("EC PRIVATE KEY"), which the loader converts.
pub fn self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, Vec<u8>)> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let ec = EcKey::generate(&group)?;
    let key = PKey::from_ec_key(ec.clone())?;
    let cert = service_kit::tls::self_signed_cert(&key)?;
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, &cert)?;
    std::fs::write(&key_file, ec.private_key_to_pem()?)?;
    Ok((cert_file, key_file, cert))
}

#[tokio::test]
async fn https_with_the_configured_certificate_and_no_plain_http() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert_file, key_file, cert_pem) = self_signed(dir.path())?;
    let tls = acceptor("TEST", Some(&cert_file), Some(&key_file))?;
    let listener = ServiceListener::bind("127.0.0.1:0", tls).await?;
    assert!(listener.is_tls());
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().merge(service_kit::health::routes(
        service_kit::health::Readiness::new(),
    ));
    let stop = CancellationToken::new();
    let server = tokio::spawn(listener.serve(app, stop.clone()));

    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert_pem)?])
        .timeout(Duration::from_secs(10))
        .build()?;
    for host in ["localhost", "127.0.0.1"] {
        let resp = https
            .get(format!("https://{host}:{port}/healthz"))
            .send()
            .await?;
        assert_eq!(resp.status(), 200, "https via {host}");
        assert_eq!(resp.text().await?, r#"{"status":"alive"}"#);
    }

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");

    // A client that does not trust the certificate refuses the server.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = untrusting
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "an untrusted certificate was accepted");

    // Graceful shutdown still works through the TLS listener.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server).await???;
    Ok(())
}

#[test]
fn config_errors_name_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert_file, key_file, _) = self_signed(dir.path())?;
    let missing = dir.path().join("missing.pem");
    let err = |c: Option<&Path>, k: Option<&Path>| match acceptor("COMMAND", c, k) {
        Ok(_) => String::from("accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(acceptor("COMMAND", None, None)?.is_none());
    let e = err(Some(&cert_file), None);
    assert!(e.contains("'tls_key_file' (COMMAND_TLS_KEY_FILE)"), "{e}");
    let e = err(None, Some(&key_file));
    assert!(e.contains("'tls_cert_file' (COMMAND_TLS_CERT_FILE)"), "{e}");
    let e = err(Some(&missing), Some(&key_file));
    assert!(
        e.contains("'tls_cert_file' (COMMAND_TLS_CERT_FILE): cannot read")
            && e.contains("missing.pem"),
        "{e}"
    );
    let e = err(Some(&cert_file), Some(&missing));
    assert!(
        e.contains("'tls_key_file' (COMMAND_TLS_KEY_FILE): cannot read"),
        "{e}"
    );
    // The files swapped: neither parses as what it should be.
    let e = err(Some(&key_file), Some(&cert_file));
    assert!(e.contains("'tls_cert_file'"), "{e}");
    // A key of another certificate.
    let other = tempfile::tempdir()?;
    let (_, other_key, _) = self_signed(other.path())?;
    let e = err(Some(&cert_file), Some(&other_key));
    assert!(e.contains("does not belong to the certificate"), "{e}");
    Ok(())
}
