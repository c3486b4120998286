//! HTTPS on a service's own listener when `tls_cert_file` and `tls_key_file`
//! are configured; plain HTTP otherwise.
//!
//! TLS is OpenSSL through `tokio-native-tls`, which `reqwest` already links
//! (no second TLS stack). Handshakes run on their own tasks with a timeout,
//! so a client that connects and sends nothing cannot hold up the accept
//! loop. [`ServiceListener`] is an axum [`Listener`]: `axum::serve` keeps its
//! graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::{Listener, ListenerExt, TapIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
pub use tokio_native_tls::TlsAcceptor;
use tokio_native_tls::{TlsStream, native_tls};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for `accept`.
const ACCEPT_QUEUE: usize = 128;

/// The server identity from the two PEM files, or `None` when neither key
/// is set. `prefix` is the service's env prefix (`COMMAND`), for errors
/// that name the key as the operator would set it.
pub fn acceptor(
    prefix: &str,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> anyhow::Result<Option<TlsAcceptor>> {
    let (cert_file, key_file) = match (cert_file, key_file) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => anyhow::bail!(
            "config key 'tls_key_file' ({prefix}_TLS_KEY_FILE) is required when 'tls_cert_file' is set"
        ),
        (None, Some(_)) => anyhow::bail!(
            "config key 'tls_cert_file' ({prefix}_TLS_CERT_FILE) is required when 'tls_key_file' is set"
        ),
    };
    let read = |key: &str, env: &str, path: &Path| {
        std::fs::read(path).with_context(|| {
            format!(
                "config key '{key}' ({prefix}_{env}): cannot read {}",
                path.display()
            )
        })
    };
    let cert_pem = read("tls_cert_file", "TLS_CERT_FILE", cert_file)?;
    let key_pem = read("tls_key_file", "TLS_KEY_FILE", key_file)?;
    let certs = openssl::x509::X509::stack_from_pem(&cert_pem).with_context(|| {
        format!(
            "config key 'tls_cert_file' ({prefix}_TLS_CERT_FILE): {} is not a PEM certificate (chain)",
            cert_file.display()
        )
    })?;
    let leaf = certs.first().ok_or_else(|| {
        anyhow::anyhow!(
            "config key 'tls_cert_file' ({prefix}_TLS_CERT_FILE): {} holds no PEM certificate",
            cert_file.display()
        )
    })?;
    // Any PEM private key (PKCS#8, PKCS#1 RSA, SEC1 EC); native-tls wants PKCS#8.
    let key = openssl::pkey::PKey::private_key_from_pem(&key_pem).with_context(|| {
        format!(
            "config key 'tls_key_file' ({prefix}_TLS_KEY_FILE): {} is not an unencrypted PEM private key",
            key_file.display()
        )
    })?;
    let leaf_key = leaf
        .public_key()
        .context("reading the certificate's public key")?;
    if !leaf_key.public_eq(&key) {
        anyhow::bail!(
            "config keys 'tls_cert_file' and 'tls_key_file' ({prefix}_TLS_CERT_FILE, {prefix}_TLS_KEY_FILE): the private key in {} does not belong to the certificate in {}",
            key_file.display(),
            cert_file.display()
        );
    }
    let pkcs8 = key
        .private_key_to_pem_pkcs8()
        .context("converting the private key to PKCS#8")?;
    let identity = native_tls::Identity::from_pkcs8(&cert_pem, &pkcs8).with_context(|| {
        format!(
            "config keys 'tls_cert_file' and 'tls_key_file' ({prefix}_TLS_CERT_FILE, {prefix}_TLS_KEY_FILE): not a usable identity"
        )
    })?;
    let acceptor = native_tls::TlsAcceptor::builder(identity)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .context("building the TLS acceptor")?;
    Ok(Some(TlsAcceptor::from(acceptor)))
}

/// A bound listener: plain TCP, or TLS over TCP.
pub enum ServiceListener {
    Plain(TcpListener),
    Tls {
        addr: SocketAddr,
        handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    },
}

impl ServiceListener {
    /// Bind `addr`; with an acceptor, connections are served over TLS.
    pub async fn bind(addr: &str, tls: Option<TlsAcceptor>) -> anyhow::Result<Self> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding listen_addr {addr}"))?;
        let Some(acceptor) = tls else {
            return Ok(Self::Plain(tcp));
        };
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(accept_tls(tcp, acceptor, tx));
        Ok(Self::Tls {
            addr: local,
            handshaken: rx,
        })
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls { .. })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Plain(l) => l.local_addr(),
            Self::Tls { addr, .. } => Ok(*addr),
        }
    }

    /// For `into_make_service_with_connect_info::<SocketAddr>()`: axum
    /// implements that connect info for a tapped listener whose address is a
    /// `SocketAddr`.
    fn with_peer_addr(self) -> TapIo<Self, fn(&mut ServiceStream)> {
        self.tap_io(|_| {})
    }

    /// Serve `router` until `shutdown`, then finish the requests in flight.
    /// Handlers see the peer address (`ConnectInfo<SocketAddr>`: the
    /// per-address rate limit and the audit trail use it).
    pub async fn serve(
        self,
        router: axum::Router,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> io::Result<()> {
        axum::serve(
            self.with_peer_addr(),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    }
}

/// Accept TCP connections and handshake each on its own task until the
/// listener (the receiving side) is dropped.
async fn accept_tls(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let acceptor = std::sync::Arc::new(acceptor);
    loop {
        let (stream, peer) = tokio::select! {
            _ = tx.closed() => return,
            r = tcp.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // As axum does: resource exhaustion (EMFILE) passes.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for ServiceListener {
    type Io = ServiceStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            Self::Plain(l) => {
                let (s, a) = Listener::accept(l).await;
                (ServiceStream::Plain(s), a)
            }
            Self::Tls { handshaken, .. } => match handshaken.recv().await {
                Some((s, a)) => (ServiceStream::Tls(Box::new(s)), a),
                // The accept task only ends once this receiver is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        ServiceListener::local_addr(self)
    }
}

/// One accepted connection.
pub enum ServiceStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ServiceStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServiceStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A self-signed certificate (PEM) for `localhost` and 127.0.0.1, valid for
/// a day, signed by `key`: for tests and throwaway local setups.
pub fn self_signed_cert(
    key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
) -> anyhow::Result<Vec<u8>> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509, X509NameBuilder};
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "localhost")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(1)?)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build().to_pem()?)
}
