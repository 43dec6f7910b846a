//! The HTTPS listener: TLS handshakes with a deadline, the client's
//! identity from its verified leaf, and HTTP/1.1 + HTTP/2 on top.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, App, Client};
use crate::config::Server as ServerLimits;
use crate::identity::Identity;

/// Counters of the listener.
#[derive(Default, Debug)]
pub struct ListenerStats {
    /// Connections refused because `max_connections` was reached.
    pub refused: AtomicU64,
    /// Failed or timed-out handshakes.
    pub handshake_failures: AtomicU64,
    /// Connections open (in the handshake or past it).
    pub open: AtomicU64,
    /// Failed handshakes by reason.
    pub by_reason: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl ListenerStats {
    fn count_reason(&self, reason: &'static str) {
        let mut m = self.by_reason.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(reason).or_default() += 1;
    }
}

/// A short, bounded label for why a handshake failed (for counters: never
/// a certificate field).
pub fn handshake_reason(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(err) = e.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return "io";
    };
    match err {
        Error::NoCertificatesPresented => "no_certificate",
        Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::UnknownRevocationStatus => "no_crl",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "wrong_key_usage"
            }
            CertificateError::BadSignature => "bad_signature",
            _ => "invalid_certificate",
        },
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => "protocol",
        Error::PeerIncompatible(_) => "incompatible",
        _ => "other",
    }
}

/// The SHA-256 of a presented chain: the key under which its connections
/// share the [`Client`] read from it.
fn chain_key(chain: &[rustls::pki_types::CertificateDer<'_>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for c in chain {
        ctx.update(&(c.len() as u64).to_le_bytes());
        ctx.update(c);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Counts a connection as open while it lives.
struct OpenConnection(Arc<ListenerStats>);

impl OpenConnection {
    fn new(stats: &Arc<ListenerStats>) -> OpenConnection {
        stats.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(stats.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves a connection until it ends or its certificate expires.
async fn until_expiry<E: std::fmt::Display>(
    conn: impl Future<Output = Result<(), E>>,
    expiry: std::time::Duration,
    peer: std::net::SocketAddr,
) {
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = tokio::time::sleep(expiry) => {
            tracing::info!(%peer, "client certificate expired: connection closed");
        }
    }
}

/// hyper's HTTP/1 header count limit when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Serves until `shutdown` completes, then stops accepting and gives
/// in-flight requests `shutdown_timeout` to finish.
pub async fn run(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Arc<App>,
    limits: ServerLimits,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limits = Arc::new(limits);
    // Who a verified chain is: the identity read from the leaf, its grants
    // and the chain's earliest notAfter are a pure function of the chain
    // and the configuration, so the connections that present one chain
    // share them instead of parsing the certificates (and checking the
    // leaf's signature to name its issuer) at every handshake. rustls still
    // verifies every chain in full (trust, validity, CRLs) first.
    let clients: Arc<crate::weakmap::WeakMap<[u8; 32], Client>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        let stats = stats.clone();
        let clients = clients.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = OpenConnection::new(&stats);
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        let reason = handshake_reason(&e);
                        stats.count_reason(reason);
                        tracing::debug!(%peer, reason, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        stats.count_reason("timeout");
                        tracing::debug!(%peer, reason = "timeout", "TLS handshake timed out");
                        return;
                    }
                };
            let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
                // The verifier requires a certificate; never serve without one.
                return;
            };
            let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
            let client = clients.get_or_make(&chain_key(chain), || {
                let issuers: Vec<&[u8]> = chain[1..]
                    .iter()
                    .map(|c| c.as_ref())
                    .chain(app.client_cas.iter().map(Vec::as_slice))
                    .collect();
                let identity = Identity::from_leaf(leaf, &issuers);
                // The connection's authority ends with the first
                // certificate of its chain to expire.
                let not_after = chain
                    .iter()
                    .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
                    .map(|(_, c)| c.validity().not_after.timestamp())
                    .min();
                let grants = app.policy.shared_grants(&identity);
                Client {
                    identity,
                    grants,
                    not_after,
                }
            });
            let not_after = client.not_after;
            tracing::debug!(%peer, client = client.identity.label(), roles = ?client.grants.roles, "client connected");
            let svc = service_fn(move |req| {
                let app = app.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(api::handle(app, client, req).await) }
            });
            // The protocol is the one ALPN agreed on (HTTP/2 only by ALPN,
            // as etcd): no sniffing of the first bytes, no rewind buffer.
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            // The connection's authority ends with its certificate.
            let expiry = not_after
                .map(|t| {
                    let left = t
                        .saturating_mul(1_000_000_000)
                        .saturating_sub(crate::store::now_nanos());
                    std::time::Duration::from_nanos(left.max(0) as u64)
                })
                .unwrap_or(std::time::Duration::MAX)
                .min(std::time::Duration::from_secs(u32::MAX as u64));
            let io = TokioIo::new(tls);
            if h2 {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(limits.max_streams_per_connection)
                    .max_header_list_size(limits.max_header_bytes as u32);
                let conn = watcher.watch(builder.serve_connection(io, svc));
                until_expiry(conn, expiry, peer).await;
            } else {
                let mut builder = http1::Builder::new();
                if limits.max_header_count != HYPER_DEFAULT_MAX_HEADERS {
                    // Setting it costs an initialized header array per
                    // request; hyper's default is the same limit without it.
                    builder.max_headers(limits.max_header_count);
                }
                builder
                    .timer(TokioTimer::new())
                    .keep_alive(true)
                    // hyper runs this timer while a keep-alive connection
                    // waits for its next request too, so it is the idle
                    // timeout as well.
                    .header_read_timeout(limits.idle_timeout)
                    .max_buf_size(limits.max_header_bytes.max(8192) + 65536);
                let conn = watcher.watch(builder.serve_connection(io, svc));
                until_expiry(conn, expiry, peer).await;
            }
        });
    }
    drop(listener);
    let timeout = limits.shutdown_timeout;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(timeout) => {
            tracing::warn!("shutdown timeout reached with requests still in flight");
        }
    }
}
