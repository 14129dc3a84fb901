//! The ops API's HTTP/1.1 server: hyper's connection driver with a
//! header-read timeout, a cap on open connections (a semaphore around
//! `accept`), optional TLS (rustls), and a graceful stop. The request
//! timeout and the body limit are layers of the router ([`super::router`]).
//!
//! A slow client can hold at most one connection slot, for at most the
//! header-read timeout while it sends its headers (or while it idles
//! between two requests, or during its TLS handshake) and the request
//! timeout while its request runs. Past the cap, new connections wait in
//! the listener's backlog until a slot frees.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How long a client has to send a request's headers (from the connection's
/// start, or from the end of its previous request), and its TLS handshake.
pub const HEADER_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// How long one request may take, reading its body and running its handler.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Most connections open at once.
pub const CONNECTIONS_MAX_DEFAULT: u32 = 256;
/// Pause after a failed `accept` (out of file descriptors, say).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The limits of the ops API's HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// See [`HEADER_READ_TIMEOUT_DEFAULT`].
    pub header_read_timeout: Duration,
    /// See [`REQUEST_TIMEOUT_DEFAULT`]; past it the answer is `408`.
    pub request_timeout: Duration,
    /// See [`CONNECTIONS_MAX_DEFAULT`].
    pub connections_max: u32,
    /// Largest request body ([`super::REQUEST_BYTES_MAX`]); past it the answer is `413`.
    pub request_bytes_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            request_bytes_max: super::REQUEST_BYTES_MAX,
        }
    }
}

/// A certificate or key that cannot be used for the ops API's TLS.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct TlsError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The TLS settings of the ops API from a PEM certificate chain and a PEM
/// private key (TLS 1.3, HTTP/1.1).
pub fn tls_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let fail = |file: &Path, reason: String| TlsError { file: file.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(fail(cert_file, "no PEM certificate in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| fail(key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(key_file, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves; then stops accepting, lets requests in flight
/// finish (for at most the request timeout) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.connections_max as usize));
    let (stop_tx, stop) = watch::channel(false);
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "ops API: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(stream, router.clone(), limits, acceptor.clone(), stop.clone(), slot));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Each connection gives its slot back when it ends.
    let drained = tokio::time::timeout(limits.request_timeout, slots.acquire_many(limits.connections_max)).await;
    if drained.is_err() {
        tracing::warn!("ops API: some connections were still open at shutdown");
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let Some(acceptor) = tls else { return drive(stream, router, limits, stop).await };
    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => drive(stream, router, limits, stop).await,
        Ok(Err(error)) => tracing::debug!(%error, "ops API: TLS handshake failed"),
        Err(_) => tracing::debug!("ops API: TLS handshake timed out"),
    }
}

/// One HTTP/1.1 connection, to its end or until the server stops.
async fn drive<IO>(io: IO, router: Router, limits: HttpLimits, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "ops API: connection ended badly");
    }
}
