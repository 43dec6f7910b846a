//! The HTTPS listener: TLS handshakes with a deadline, the client's
//! identity from its verified leaf, and HTTP/1.1 + HTTP/2 on top.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, App, Client};
use crate::config::Server as ServerLimits;
use crate::quota::Held;
use crate::stop::StopSignal;

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

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

/// Why a connection's authority ended before the connection did.
enum Ended {
    Closed,
    Expired,
    Revoked,
}

/// Serves a connection until it ends, its certificate expires, or a
/// reload no longer trusts its chain; its share of its identity's
/// connection limit is held until then.
async fn until_expiry(serving: Serving, peer: std::net::SocketAddr) {
    let Serving {
        mut conn,
        expiry,
        slot: _slot,
        revoked,
    } = serving;
    let at = tokio::time::Instant::now() + expiry;
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(at));
    // The timer is polled only when its moment may have come.
    let mut armed = false;
    let ended = std::future::poll_fn(|cx| {
        if conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ended::Closed);
        }
        if revoked.poll_stopping(cx).is_ready() {
            return Poll::Ready(Ended::Revoked);
        }
        crate::http1::poll_timer(sleep.as_mut(), at, &mut armed, None, cx).map(|()| Ended::Expired)
    })
    .await;
    match ended {
        Ended::Closed => {}
        Ended::Expired => tracing::info!(%peer, "client certificate expired: connection closed"),
        Ended::Revoked => {
            tracing::info!(%peer, "client certificate chain no longer trusted after a reload: connection closed")
        }
    }
}

/// The limits connections need.
struct Limits {
    server: ServerLimits,
    http1: crate::http1::Limits,
}

/// The TLS handshake within `handshake_timeout`, then who the client is
/// (shared by the connections of one chain). `None`: refused, counted.
async fn handshake(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: &App,
    limits: &Limits,
    stats: &ListenerStats,
) -> Option<(TlsStream, Arc<Client>)> {
    // The configuration current when the connection came.
    let (acceptor, generation) = {
        let live = app.live.load();
        (TlsAcceptor::from(live.tls.clone()), live.generation)
    };
    let tls =
        match tokio::time::timeout(limits.server.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                let reason = handshake_reason(&e);
                stats.count_reason(reason);
                tracing::debug!(%peer, reason, error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                stats.count_reason("timeout");
                tracing::debug!(%peer, reason = "timeout", "TLS handshake timed out");
                return None;
            }
        };
    // The verifier requires a certificate; never serve without one.
    let chain = tls.get_ref().1.peer_certificates()?;
    let leaf = chain.first()?;
    // A client is made under one configuration: a reload waits, or comes
    // after it is made (and updates it).
    let _no_reload = app.reloading.read().unwrap_or_else(|p| p.into_inner());
    let live = app.live.load();
    if live.generation != generation && !live.trusts(chain) {
        // Verified under a configuration a reload replaced since.
        stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
        stats.count_reason("untrusted_after_reload");
        return None;
    }
    let key = (
        crate::tls::chain_key(leaf.as_ref(), &chain[1..]),
        live.generation,
    );
    let client = app.clients.get_or_make(&key, || {
        let identity = live.identity(chain);
        // The connection's authority ends with the first certificate of
        // its chain to expire.
        let not_after = crate::tls::earliest_not_after(chain);
        let grants = live.policy.shared_grants(&identity);
        let usage = app.quotas.usage(&identity.fingerprint);
        let chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        Client::new(identity, grants, not_after, usage, chain)
    });
    tracing::debug!(%peer, client = client.identity.label(), roles = ?client.grants().roles, "client connected");
    Some((tls, client))
}

/// Time left until `not_after` (Unix seconds), when the connection's
/// authority ends with its certificate.
fn until_not_after(not_after: Option<i64>) -> std::time::Duration {
    not_after
        .map(|t| {
            let left = t
                .saturating_mul(1_000_000_000)
                .saturating_sub(crate::store::now_nanos());
            std::time::Duration::from_nanos(left.max(0) as u64)
        })
        .unwrap_or(std::time::Duration::MAX)
        .min(std::time::Duration::from_secs(u32::MAX as u64))
}

/// The serving future of an accepted connection, by the protocol ALPN
/// agreed on (HTTP/2 only by ALPN, as etcd: no sniffing of the first bytes),
/// the time until its certificate expires, and its slot under
/// `max_connections_per_identity` (none: the connection is over the limit,
/// and its requests are answered 503 before it closes).
fn connection(
    tls: TlsStream,
    client: Arc<Client>,
    app: Arc<App>,
    limits: &Limits,
    stop: StopSignal,
) -> Serving {
    let expiry = until_not_after(client.not_after);
    let revoked = client.revocation();
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let Some(slot) = app.quotas.connection(&client.usage) else {
        tracing::debug!(
            client = client.identity.label(),
            max = app.quotas.max_connections,
            "max_connections_per_identity reached: connection refused"
        );
        let conn: Pin<Box<dyn Future<Output = ()> + Send>> = if h2 {
            Box::pin(refuse_h2(tls, app, limits.server.clone(), stop))
        } else {
            let refusal = connections_over_limit(&app);
            let limits = limits.http1.clone();
            Box::pin(crate::http1::refuse(tls, refusal, limits, stop))
        };
        return Serving {
            conn,
            expiry,
            slot: None,
            revoked,
        };
    };
    let conn: Pin<Box<dyn Future<Output = ()> + Send>> = if h2 {
        Box::pin(serve_h2(tls, app, client, limits.server.clone(), stop))
    } else {
        let limits = limits.http1.clone();
        Box::pin(crate::http1::serve(tls, app, client, limits, stop))
    };
    Serving {
        conn,
        expiry,
        slot: Some(slot),
        revoked,
    }
}

/// What serves an accepted connection, and what ends it early.
struct Serving {
    conn: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Until its certificate expires.
    expiry: std::time::Duration,
    /// Its share of `max_connections_per_identity` (none: over it).
    slot: Option<Held>,
    /// Told when a reload no longer trusts its chain.
    revoked: crate::stop::StopSignal,
}

/// The answer to a connection over `max_connections_per_identity`.
fn connections_over_limit(app: &App) -> hyper::Response<crate::body::ApiBody> {
    let max = app.quotas.max_connections;
    // At index 0, as a 403: the refusal comes before any decision, and a
    // client without grants must not learn the store's index from it.
    api::over_limit(app, "connections", "max_connections_per_identity", max, 0)
}

/// An HTTP/2 connection over `max_connections_per_identity`: its streams
/// are answered 503, and once one was, the connection is shut down
/// gracefully (GOAWAY); it is closed at `request_timeout` in any case, and
/// shut down the same way when keygate stops.
async fn refuse_h2(tls: TlsStream, app: Arc<App>, limits: ServerLimits, stop: StopSignal) {
    let answered = Arc::new(tokio::sync::Notify::new());
    let told = answered.clone();
    let svc = service_fn(move |_req| {
        told.notify_one();
        let resp = connections_over_limit(&app);
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(1)
        .max_header_list_size(limits.max_header_bytes as u32);
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    let mut conn = std::pin::pin!(conn);
    let _ = tokio::time::timeout(limits.request_timeout, async {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = answered.notified() => {}
            () = stop.stopping() => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    })
    .await;
}

/// A stream's request was not read and answered within `request_timeout`:
/// the stream is reset (as an HTTP/1.1 connection is closed then).
#[derive(Debug)]
struct RequestTimedOut;

impl std::fmt::Display for RequestTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request_timeout reached")
    }
}

impl std::error::Error for RequestTimedOut {}

/// The open streams of an HTTP/2 connection: how many, since when it has
/// had none, and the deadlines of the answers being sent.
struct Streams {
    state: std::sync::Mutex<StreamsState>,
    /// Told when an answer's deadline is added.
    deadline_added: tokio::sync::Notify,
}

struct StreamsState {
    open: usize,
    idle_since: tokio::time::Instant,
    next_id: u64,
    /// Deadline of each answer (not a watch) still being sent, by stream.
    answering: std::collections::BTreeMap<u64, tokio::time::Instant>,
}

impl Streams {
    fn new() -> Streams {
        Streams {
            state: std::sync::Mutex::new(StreamsState {
                open: 0,
                idle_since: tokio::time::Instant::now(),
                next_id: 0,
                answering: Default::default(),
            }),
            deadline_added: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream whose request begins now.
    fn open(self: &Arc<Streams>) -> OpenStream {
        let mut state = self.lock();
        state.open += 1;
        state.next_id += 1;
        OpenStream {
            streams: self.clone(),
            id: state.next_id,
        }
    }

    /// Completes once the connection has had no open stream for `idle`, or
    /// an answer is still being sent past its deadline (a client that
    /// grants no flow-control window holds it, and its connection,
    /// otherwise).
    async fn overdue(&self, idle: std::time::Duration) {
        loop {
            let added = self.deadline_added.notified();
            let mut added = std::pin::pin!(added);
            added.as_mut().enable();
            let now = tokio::time::Instant::now();
            let next = {
                let state = self.lock();
                let answer = state.answering.values().min().copied();
                if answer.is_some_and(|d| d <= now)
                    || (state.open == 0 && state.idle_since + idle <= now)
                {
                    return;
                }
                let idle_at = if state.open == 0 {
                    state.idle_since + idle
                } else {
                    now + idle
                };
                answer.map_or(idle_at, |d| d.min(idle_at))
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = added => {}
            }
        }
    }
}

/// One open stream: from its request until its answer's body is done (or
/// dropped, as when the client resets the stream).
struct OpenStream {
    streams: Arc<Streams>,
    id: u64,
}

impl OpenStream {
    /// The answer is to be sent by `deadline`.
    fn answer_by(&self, deadline: tokio::time::Instant) {
        self.streams.lock().answering.insert(self.id, deadline);
        self.streams.deadline_added.notify_one();
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut state = self.streams.lock();
        state.answering.remove(&self.id);
        state.open -= 1;
        if state.open == 0 {
            state.idle_since = tokio::time::Instant::now();
        }
    }
}

/// An HTTP/2 answer's body: an open stream while it lives; a watch in it
/// ends cleanly once its connection stops (keygate stopping).
struct H2Body {
    body: crate::body::ApiBody,
    stop: StopSignal,
    _open: OpenStream,
}

impl hyper::body::Body for H2Body {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Infallible>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending if this.stop.poll_stopping(cx).is_ready() => Poll::Ready(None),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// HTTP/2 through hyper. Each stream's request is read and answered within
/// `request_timeout` (a watch's body excepted, once its headers are sent):
/// a stream whose answer is not ready by then is reset, and a connection
/// whose answer is not sent by then (the client grants no window) is shut
/// down, as is one without open streams for `idle_timeout` (GOAWAY, then
/// closed after `request_timeout` at most); when keygate stops, every
/// connection is, its watches ended cleanly first.
async fn serve_h2(
    tls: TlsStream,
    app: Arc<App>,
    client: Arc<Client>,
    limits: ServerLimits,
    stop: StopSignal,
) {
    let streams = Arc::new(Streams::new());
    // One signal per stream: each answer's body waits with its own waker.
    let stopper = Arc::new(crate::stop::Stopper::new());
    let svc = {
        let streams = streams.clone();
        let stopper = stopper.clone();
        let request_timeout = limits.request_timeout;
        service_fn(move |req| {
            let open = streams.open();
            let deadline = tokio::time::Instant::now() + request_timeout;
            let signal = stopper.signal();
            let answer = api::handle(app.clone(), client.clone(), req);
            async move {
                match tokio::time::timeout_at(deadline, answer).await {
                    Ok(resp) => {
                        if !matches!(resp.body(), crate::body::ApiBody::Watch(_)) {
                            open.answer_by(deadline);
                        }
                        Ok(resp.map(|body| H2Body {
                            body,
                            stop: signal,
                            _open: open,
                        }))
                    }
                    Err(_) => Err(RequestTimedOut),
                }
            }
        })
    };
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        .max_header_list_size(limits.max_header_bytes as u32);
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
            }
            return;
        }
        () = stop.stopping() => stopper.stop(),
        () = streams.overdue(limits.idle_timeout) => {}
    }
    conn.as_mut().graceful_shutdown();
    // Answers in flight finish within their own deadline; a client that
    // holds the connection past it is closed.
    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
}

/// Idle time before the first keepalive probe, and between probes.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// TCP keepalive on an accepted connection, as Go sets it (and so etcd): a
/// peer that vanished without a FIN or a reset (its host gone, a NAT
/// mapping dropped) is found within about 2.5 minutes on Linux (15 s, then
/// 9 probes 15 s apart), and its connection ends, with its watches and its
/// share of the per-identity limits.
fn keepalive(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    let params = socket2::TcpKeepalive::new().with_time(KEEPALIVE);
    #[cfg(target_os = "linux")]
    let params = params.with_interval(KEEPALIVE);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&params)
}

/// Serves until `shutdown` completes, then stops accepting and gives
/// in-flight requests `shutdown_timeout` to finish.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    limits: ServerLimits,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let timeout = limits.shutdown_timeout;
    let limits = Arc::new(Limits {
        http1: crate::http1::Limits {
            idle_timeout: limits.idle_timeout,
            request_timeout: limits.request_timeout,
            max_header_bytes: limits.max_header_bytes,
            max_header_count: limits.max_header_count,
            max_body_bytes: limits.max_body_bytes,
        },
        server: limits,
    });
    let stopper = crate::stop::Stopper::new();
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
        if let Err(e) = keepalive(&tcp) {
            tracing::debug!(error = %e, "cannot turn on TCP keepalive");
        }
        let app = app.clone();
        let limits = limits.clone();
        let stats = stats.clone();
        let stop = stopper.signal();
        // Each phase's future is boxed: the task itself stays small, and a
        // connection holds only what its current phase needs (10,000
        // waiting watchers cost 10,000 of these).
        tokio::spawn(async move {
            let _permit = permit;
            let _open = OpenConnection::new(&stats);
            // Neither the handshake's state nor the TLS stream stays in
            // this task: the accepted stream moves into the boxed serving
            // future within one statement.
            let accepted = crate::http1::boxed(handshake(tcp, peer, &app, &limits, &stats));
            let serving = match accepted.await {
                Some((tls, client)) => connection(tls, client, app, &limits, stop),
                None => return,
            };
            until_expiry(serving, peer).await;
        });
    }
    drop(listener);
    // Connections finish their answers in flight and end their watches
    // (HTTP/2 ones also say GOAWAY).
    stopper.stop();
    tokio::select! {
        () = stopper.closed() => {}
        () = tokio::time::sleep(timeout) => {
            tracing::warn!("shutdown timeout reached with requests still in flight");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keepalive_probes_an_accepted_connection_as_go_does() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(!sock.keepalive().unwrap());
        keepalive(&tcp).unwrap();
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE);
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), KEEPALIVE);
    }
}
