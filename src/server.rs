//! The HTTPS listener: TLS handshakes with a deadline, the client's
//! identity from its verified leaf, and HTTP/1.1 + HTTP/2 on top.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, App};
use crate::config::Server as ServerLimits;
use crate::identity::Identity;

/// Counters of the listener.
#[derive(Default, Debug)]
pub struct ListenerStats {
    /// Connections refused because `max_connections` was reached.
    pub refused: AtomicU64,
    /// Failed or timed-out handshakes.
    pub handshake_failures: AtomicU64,
}

/// Serves until `shutdown` completes, then stops accepting and gives
/// in-flight requests `shutdown_timeout` to finish.
pub async fn run(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Arc<App>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let stats = Arc::new(ListenerStats::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limits = Arc::new(limits);
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
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
                // The verifier requires a certificate; never serve without one.
                return;
            };
            let client = Arc::new(Identity::from_leaf(leaf));
            let svc = service_fn(move |req| {
                let app = app.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(api::handle(app, client, req).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .max_headers(limits.max_header_count)
                .header_read_timeout(limits.request_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192) + 65536);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.max_streams_per_connection)
                .max_header_list_size(limits.max_header_bytes as u32);
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            let conn = watcher.watch(conn.into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
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
