//! The HTTP API: routing on the raw path, the keys request path
//! (parse → policy → backend → encode) and the endpoints beside the keys.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::{ApiBody, WatchBody};
use crate::identity::Identity;
use crate::metrics::{Decided, RequestMetrics};
use crate::policy::{covers, decide_basis, Basis, Decision, Grants, Permitted};
use crate::quota::{Quotas, Usage};
use crate::reload::{Live, ReloadStats};
use crate::store::event::Action;
use crate::store::event::{Event, ViewTrie};
use crate::store::{now_nanos, Started, Store, WriteOp, STAT_NAMES};
use crate::store::{Interest, Keep};
use crate::v2::error::{self as code, EtcdError};
use crate::v2::request::{key_path, parse_params, Form, KeyPath, KeysMethod, KeysRequest};
use crate::weakmap::WeakMap;

/// A verified client: who it is and what it may do (decided once per
/// connection).
pub struct Client {
    /// The identity from its leaf certificate.
    pub identity: Identity,
    /// Its grants under the current policy, and whether a reload revoked
    /// it (shared with its watches).
    pub auth: Arc<Authority>,
    /// The earliest notAfter of its chain, Unix seconds: the connection
    /// ends then.
    pub not_after: Option<i64>,
    /// What its leaf certificate holds against the per-identity limits.
    pub usage: Arc<Usage>,
    /// The chain it presented, leaf first (verified again at a reload).
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Closes its connections when a reload no longer trusts its chain.
    revoker: crate::stop::Stopper,
}

/// What a client may do now: replaced by a reload.
pub struct Authority {
    /// Its grants under the current policy.
    pub grants: arc_swap::ArcSwap<Grants>,
    /// A reload found its chain no longer trusted.
    pub revoked: std::sync::atomic::AtomicBool,
}

impl Client {
    /// A client with `grants`, for a verified `chain`.
    pub fn new(
        identity: Identity,
        grants: Arc<Grants>,
        not_after: Option<i64>,
        usage: Arc<Usage>,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Client {
        Client {
            identity,
            auth: Arc::new(Authority {
                grants: arc_swap::ArcSwap::new(grants),
                revoked: Default::default(),
            }),
            not_after,
            usage,
            chain,
            revoker: crate::stop::Stopper::new(),
        }
    }

    /// Its grants now.
    pub fn grants(&self) -> arc_swap::Guard<Arc<Grants>> {
        self.auth.grants.load()
    }

    /// Ends its authority: its connections close, its watches end.
    pub fn revoke(&self) {
        self.auth
            .revoked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.revoker.stop();
    }

    /// A connection's view of the revocation.
    pub fn revocation(&self) -> crate::stop::StopSignal {
        self.revoker.signal()
    }
}

/// What every request needs: the store, the policy, and who we are.
pub struct App {
    /// The embedded store.
    pub store: Store,
    /// What a reload replaces: TLS, CAs, CRLs, roles and binds.
    pub live: arc_swap::ArcSwap<Live>,
    /// Held for writing while a reload swaps `live` and updates the
    /// clients; for reading while a client is made.
    pub reloading: std::sync::RwLock<()>,
    /// The clients connected now, by chain and configuration generation.
    /// Who a verified chain is — the identity read from the leaf, its
    /// grants and the chain's earliest notAfter — is a function of the
    /// chain and the configuration, so the connections that present one
    /// chain share it instead of parsing the certificates (and checking
    /// the leaf's signature to name its issuer) at every handshake. The
    /// chain was verified first (`tls::CachingVerifier`: in full, or
    /// recognised as verified before and within its validity). A reload
    /// updates the clients it finds here; new handshakes make new ones.
    pub clients: WeakMap<([u8; 32], u64), Client>,
    /// Reloads and the last one's result.
    pub reloads: ReloadStats,
    /// 16 hex digits: `X-Etcd-Cluster-Id` and the member id.
    pub cluster_id: String,
    /// `cluster_id` as a header value, made once.
    pub cluster_header: HeaderValue,
    /// The member name in `/v2/members`.
    pub name: String,
    /// The client URL `/v2/members` and `/v2/machines` advertise.
    pub advertise_url: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest total size of the request headers.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_header_count: usize,
    /// The per-identity limits.
    pub quotas: Quotas,
    /// Requests by method, decision and status; latency.
    pub metrics: RequestMetrics,
    /// Start time, Unix ns.
    pub started: i64,
    /// Write an audit line per decision.
    pub audit: bool,
    /// Logs are JSON lines.
    pub json_log: bool,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
/// The etcd version keygate speaks (its v2 API).
pub const ETCD_VERSION: &str = "3.4.0";

/// Answers one request from a verified client (HTTP/2: hyper's body).
pub async fn handle(
    app: Arc<App>,
    client: Arc<Client>,
    req: Request<Incoming>,
) -> Response<ApiBody> {
    if let Some(refused) = refuse_head(&app, &req) {
        app.metrics.record(
            req.method(),
            Decided::None,
            refused.status(),
            Duration::ZERO,
        );
        return refused;
    }
    // Read the whole (bounded) body first, whatever the answer: an unread
    // body would cost the client its keep-alive connection.
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, app.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        // The client reset the stream, or broke its body off: no answer
        // reaches it, and nothing is counted (as an HTTP/1.1 client that
        // leaves mid-body).
        Err(e) if !e.is::<http_body_util::LengthLimitError>() => {
            return plain(StatusCode::BAD_REQUEST, "400 Bad Request");
        }
        Err(_) => {
            let resp = body_too_large(app.max_body_bytes);
            let status = resp.status();
            app.metrics
                .record(&parts.method, Decided::None, status, Duration::ZERO);
            return resp;
        }
    };
    route_whole(&app, &client, Request::from_parts(parts, body))
        .resolve()
        .await
}

/// An answer: at once, or once a write has committed.
// Ready is the common case and lives on the stack briefly: boxing it would
// cost every read an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Answer<'a> {
    /// Answered without waiting (reads, watches set up, errors).
    Ready(Response<ApiBody>),
    /// A write: answered once it is durable.
    Later(Pin<Box<dyn Future<Output = Response<ApiBody>> + Send + 'a>>),
}

impl Answer<'_> {
    /// The response, waiting for it if need be.
    pub async fn resolve(self) -> Response<ApiBody> {
        match self {
            Answer::Ready(r) => r,
            Answer::Later(f) => f.await,
        }
    }
}

impl From<Response<ApiBody>> for Answer<'_> {
    fn from(r: Response<ApiBody>) -> Self {
        Answer::Ready(r)
    }
}

/// Answers a request whose whole body has been read (the HTTP/1.1
/// connection reads it itself, within `max_body_bytes`).
///
/// Synchronous up to a write's commit: a read costs its connection no
/// future of its own.
pub fn answer<'a>(app: &'a App, client: &'a Client, req: Request<Bytes>) -> Answer<'a> {
    if let Some(refused) = refuse_head(app, &req) {
        app.metrics.record(
            req.method(),
            Decided::None,
            refused.status(),
            Duration::ZERO,
        );
        return refused.into();
    }
    route_whole(app, client, req)
}

/// Routes a request that passed [`refuse_head`], and counts it; HEAD
/// answers as GET without the body.
fn route_whole<'a>(app: &'a App, client: &'a Client, req: Request<Bytes>) -> Answer<'a> {
    let start = Instant::now();
    let method = req.method().clone();
    let head = method == Method::HEAD;
    let mut decided = Decided::None;
    match route(app, client, req, start, &mut decided) {
        Answer::Ready(resp) => {
            let resp = if head { strip_body(resp) } else { resp };
            app.metrics
                .record(&method, decided, resp.status(), start.elapsed());
            resp.into()
        }
        Answer::Later(f) => Answer::Later(Box::pin(async move {
            // Counted when dropped: also when the answer is given up.
            let mut counted = Counted {
                app,
                method,
                decided,
                start,
                status: None,
            };
            let resp = f.await;
            let resp = if head { strip_body(resp) } else { resp };
            counted.status = Some(resp.status());
            resp
        })),
    }
}

/// The status logged and counted for a write whose answer was given up
/// (the client reset its stream, or the request's deadline passed) before
/// the write was durable: it may still commit. nginx's "client closed
/// request".
fn given_up() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Counts a request when dropped: with its answer's status, or
/// [`given_up`].
struct Counted<'a> {
    app: &'a App,
    method: Method,
    decided: Decided,
    start: Instant,
    status: Option<StatusCode>,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let status = self.status.unwrap_or_else(given_up);
        self.app
            .metrics
            .record(&self.method, self.decided, status, self.start.elapsed());
    }
}

/// An allowed write's audit line, written when dropped: with its answer's
/// status, or [`given_up`] (the write may still commit, and its decision
/// is logged all the same).
struct WriteAudit<'a> {
    app: &'a App,
    client: &'a Client,
    req: Permitted<KeysRequest>,
    start: Instant,
    status: Option<StatusCode>,
}

impl Drop for WriteAudit<'_> {
    fn drop(&mut self) {
        let status = self.status.unwrap_or_else(given_up);
        audit_allowed(self.app, self.client, &self.req, status, self.start);
    }
}

/// What no request head may carry: a protocol switch, or more headers
/// than the limits allow.
fn refuse_head<B>(app: &App, req: &Request<B>) -> Option<Response<ApiBody>> {
    if req.method() == Method::CONNECT || req.headers().contains_key(hyper::header::UPGRADE) {
        return Some(close(plain(StatusCode::BAD_REQUEST, "400 Bad Request")));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if req.headers().len() > app.max_header_count || header_bytes > app.max_header_bytes {
        return Some(close(headers_too_large()));
    }
    None
}

/// 431, for a head over the limits.
pub fn headers_too_large() -> Response<ApiBody> {
    plain(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "431 Request Header Fields Too Large",
    )
}

/// 413 etcd-style, for a body over `max_body_bytes`; the connection closes.
pub fn body_too_large(max_body_bytes: usize) -> Response<ApiBody> {
    let mut r = etcd_error(&EtcdError::request(
        code::INVALID_FORM,
        format!("request body larger than {max_body_bytes} bytes"),
    ));
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    close(r)
}

/// 503 etcd-style, when a per-identity limit refuses a connection or a
/// watch (SPEC §6): `what` names what the client holds too many of, at
/// `index`.
pub fn over_limit(app: &App, what: &str, field: &str, max: usize, index: u64) -> Response<ApiBody> {
    let mut r = etcd_error(&EtcdError::new(
        code::RAFT_INTERNAL,
        format!("too many {what} for this client certificate (server.{field} = {max})"),
        index,
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    cluster_header(app, &mut r);
    r
}

/// HEAD is answered as GET without a body, keeping the Content-Length the
/// body would have had (HTTP/2 forbids data frames on a HEAD answer).
fn strip_body(resp: Response<ApiBody>) -> Response<ApiBody> {
    let (mut parts, body) = resp.into_parts();
    if let ApiBody::Full(b) = &body {
        let len = b.as_ref().map_or(0, |b| b.len());
        parts
            .headers
            .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, ApiBody::empty())
}

/// `start`: when routing began, the request's head and body read (for the
/// audit line's latency).
fn route<'a>(
    app: &'a App,
    client: &'a Client,
    req: Request<Bytes>,
    start: Instant,
    decided: &mut Decided,
) -> Answer<'a> {
    if req.method() == Method::OPTIONS {
        return Response::new(ApiBody::empty()).into();
    }
    let path = req.uri().path();
    if path == "/v2/keys" || path.starts_with("/v2/keys/") {
        return keys(app, client, req, start, decided);
    }
    route_other(app, client, &req, start, decided).into()
}

/// The endpoints beside the keys.
fn route_other(
    app: &App,
    client: &Client,
    req: &Request<Bytes>,
    start: Instant,
    decided: &mut Decided,
) -> Response<ApiBody> {
    let path = req.uri().path();
    let method = req.method().clone();
    let get = method == Method::GET;
    let get_or_head = get || method == Method::HEAD;
    match path {
        // Membership is keygate's own and fixed: no client changes it. Every
        // write gets the 405 etcd's members handler gives PUT and DELETE on
        // /v2/members: no Allow header, with the cluster id.
        p if (p == "/v2/members" || p.starts_with("/v2/members/"))
            && matches!(method, Method::POST | Method::PUT | Method::DELETE) =>
        {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            cluster_header(app, &mut r);
            r
        }
        "/version" => only(get, "GET", || {
            json_response(format!(
                "{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"3.4.0\"}}"
            ))
        }),
        "/health" => only(get, "GET", || {
            let mut r = Response::new(ApiBody::full(&b"{\"health\":\"true\"}"[..]));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
            r
        }),
        "/v2/machines" => only(get_or_head, "GET,HEAD", || {
            let mut r = Response::new(ApiBody::full(app.advertise_url.clone()));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
            r
        }),
        "/v2/members" | "/v2/members/" => only(get, "GET", || {
            let mut r = json_response(format!("{{\"members\":[{}]}}\n", member_json(app)));
            cluster_header(app, &mut r);
            r
        }),
        "/v2/members/leader" => only(get, "GET", || {
            let mut r = json_response(format!("{}\n", member_json(app)));
            cluster_header(app, &mut r);
            r
        }),
        "/v2/stats/self" | "/v2/stats/store" | "/v2/stats/leader" => {
            // Decided by the admin grant: its line names the path, and
            // "admin" as the prefix that decided.
            let grants = client.grants();
            let (resp, origin) = match &grants.admin {
                None => {
                    *decided = Decided::Deny;
                    (denied(), None)
                }
                Some(origin) => {
                    *decided = Decided::Allow;
                    let resp = only(get, "GET", || json_response(stats(app, path)));
                    (
                        resp,
                        Some((origin.bind as i64, origin.role.as_str(), "admin")),
                    )
                }
            };
            let line = AuditLine {
                method: method.as_str(),
                key: path,
                recursive: false,
                wait: false,
                decided: origin,
            };
            write_audit(app, client, &line, resp.status(), start);
            resp
        }
        _ => not_found(),
    }
}

fn only(
    allowed: bool,
    allow: &'static str,
    f: impl FnOnce() -> Response<ApiBody>,
) -> Response<ApiBody> {
    if allowed {
        f()
    } else {
        method_not_allowed(allow)
    }
}

fn member_json(app: &App) -> String {
    let mut url = Vec::new();
    crate::v2::json::write_str(&mut url, &app.advertise_url);
    let url = String::from_utf8_lossy(&url);
    format!(
        "{{\"id\":\"{}\",\"name\":\"{}\",\"peerURLs\":[{url}],\"clientURLs\":[{url}]}}",
        app.cluster_id, app.name
    )
}

fn stats(app: &App, path: &str) -> String {
    match path {
        "/v2/stats/store" => {
            let mut s = String::from("{");
            for (name, v) in STAT_NAMES.iter().zip(app.store.stats().values()) {
                s.push_str(&format!("\"{name}\":{v},"));
            }
            s.push_str(&format!("\"watchers\":{}}}", app.store.watcher_count()));
            s
        }
        "/v2/stats/leader" => format!("{{\"leader\":\"{}\",\"followers\":{{}}}}", app.cluster_id),
        _ => {
            let start = crate::v2::json::rfc3339_nanos(app.started);
            let uptime = std::time::Duration::from_nanos((now_nanos() - app.started).max(0) as u64);
            format!(
                "{{\"name\":\"{}\",\"id\":\"{}\",\"state\":\"StateLeader\",\"startTime\":\"{start}\",\
                 \"leaderInfo\":{{\"leader\":\"{}\",\"uptime\":\"{uptime:?}\",\"startTime\":\"{start}\"}},\
                 \"recvAppendRequestCnt\":0,\"sendAppendRequestCnt\":0}}",
                app.name, app.cluster_id, app.cluster_id
            )
        }
    }
}

fn keys<'a>(
    app: &'a App,
    client: &'a Client,
    req: Request<Bytes>,
    start: Instant,
    decided: &mut Decided,
) -> Answer<'a> {
    let (parts, body) = req.into_parts();
    let rest = &parts.uri.path()["/v2/keys".len()..];
    let key = match key_path(rest) {
        KeyPath::Key(k) => k,
        KeyPath::Redirect(mut loc) => {
            if let Some(q) = parts.uri.query() {
                loc.push('?');
                loc.push_str(q);
            }
            return redirect(&parts.method, &loc).into();
        }
        KeyPath::BadEscape => return plain(StatusCode::BAD_REQUEST, "400 Bad Request").into(),
        KeyPath::NotUtf8 => {
            let mut r = etcd_error(&EtcdError::request(
                code::INVALID_FIELD,
                "key is not valid UTF-8",
            ));
            cluster_header(app, &mut r);
            return r.into();
        }
    };
    let method = match parts.method {
        Method::GET => KeysMethod::Get,
        Method::HEAD => KeysMethod::Head,
        Method::PUT => KeysMethod::Put,
        Method::POST => KeysMethod::Post,
        Method::DELETE => KeysMethod::Delete,
        _ => return method_not_allowed("HEAD,GET,PUT,POST,DELETE").into(),
    };
    let mut form = Form::default();
    let mut form_err = None;
    if matches!(method, KeysMethod::Put | KeysMethod::Post) && is_form(&parts.headers) {
        if let Err(e) = form.parse_into(&body) {
            form_err = Some(e);
        }
    }
    if let Some(q) = parts.uri.query() {
        if let Err(e) = form.parse_into(q.as_bytes()) {
            form_err.get_or_insert(e);
        }
    }
    let parsed = match form_err {
        Some(e) => Err(EtcdError::request(code::INVALID_FORM, e)),
        None => parse_params(method, key, &form),
    };
    let mut resp = match parsed {
        Err(e) => etcd_error(&e),
        Ok(req) => match crate::policy::decide(&client.grants(), req) {
            Decision::Deny(req) => {
                *decided = Decided::Deny;
                let resp = denied();
                audit(app, client, &req, None, resp.status(), start);
                resp
            }
            Decision::Allow(req) => {
                *decided = Decided::Allow;
                let method = req.get().method();
                if method.is_write() {
                    // Answered once durable: everything it needs moves into
                    // the future.
                    return Answer::Later(Box::pin(async move {
                        let mut audit = WriteAudit {
                            app,
                            client,
                            req,
                            start,
                            status: None,
                        };
                        let mut resp = write_keys(app, &mut audit.req, method).await;
                        audit.status = Some(resp.status());
                        drop(audit);
                        cluster_header(app, &mut resp);
                        resp
                    }));
                }
                let resp = serve_read(app, client, &req);
                audit_allowed(app, client, &req, resp.status(), start);
                resp
            }
        },
    };
    cluster_header(app, &mut resp);
    resp.into()
}

/// The audit line of an allowed request.
fn audit_allowed(
    app: &App,
    client: &Client,
    req: &Permitted<KeysRequest>,
    status: StatusCode,
    start: Instant,
) {
    audit(app, client, req.get(), Some(req.basis()), status, start);
}

/// One audit line per decision (SPEC §6).
fn audit(
    app: &App,
    client: &Client,
    req: &KeysRequest,
    basis: Option<&Basis>,
    status: StatusCode,
    start: Instant,
) {
    if !app.audit {
        return;
    }
    let decided = match basis {
        None => None,
        Some(Basis::Traverse) => Some((-1, "", "traverse")),
        Some(Basis::Prefix { prefix, origin }) => {
            Some((origin.bind as i64, origin.role.as_str(), prefix.as_str()))
        }
    };
    let line = AuditLine {
        method: req.method().as_str(),
        key: &req.key,
        recursive: req.recursive,
        wait: req.is_watch(),
        decided,
    };
    write_audit(app, client, &line, status, start);
}

/// What a decision's audit line says of the request.
struct AuditLine<'a> {
    method: &'a str,
    key: &'a str,
    recursive: bool,
    wait: bool,
    /// Allowed: the bind, role and prefix that decided; `None`: denied.
    decided: Option<(i64, &'a str, &'a str)>,
}

fn write_audit(
    app: &App,
    client: &Client,
    req: &AuditLine<'_>,
    status: StatusCode,
    start: Instant,
) {
    if !app.audit {
        return;
    }
    let id = &client.identity;
    let (decision, (bind, role, prefix)) = match req.decided {
        None => ("deny", (-1, "", "")),
        Some(d) => ("allow", d),
    };
    let line = crate::audit::Decision {
        cn: id.cn.as_deref().unwrap_or(""),
        uri: id.uris.first().map(String::as_str).unwrap_or(""),
        fingerprint: &id.fingerprint[..id.fingerprint.len().min(16)],
        method: req.method,
        key: req.key,
        recursive: req.recursive,
        wait: req.wait,
        decision,
        bind,
        role,
        prefix,
        status: status.as_u16(),
        latency_us: start.elapsed().as_micros().try_into().unwrap_or(u64::MAX),
    };
    crate::audit::decision(&line, app.json_log);
}

fn is_form(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Whether a watch of `req` is still allowed to the client (decided again
/// after a reload): its chain is trusted, its grants still allow it, and
/// a watch set up unfiltered (the client read everything) still may be.
fn still_allowed(auth: &Arc<Authority>, req: &KeysRequest, filtered: bool) -> Keep {
    let auth = auth.clone();
    let req = req.clone();
    Arc::new(move || {
        if auth.revoked.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let g = auth.grants.load();
        decide_basis(&g, &req).is_some() && (filtered || g.reads_all())
    })
}

/// Runs an allowed read (or watch) against the embedded store, answering
/// as if the store held only the client's view.
fn serve_read(app: &App, client: &Client, req: &Permitted<KeysRequest>) -> Response<ApiBody> {
    let grants = req.grants();
    let traverse = matches!(req.basis(), Basis::Traverse);
    let req_ref = req.get();
    let store: &Store = &app.store;
    match req_ref.method() {
        KeysMethod::Get | KeysMethod::Head if req_ref.is_watch() => {
            // A client that reads every key sees every event whole: its
            // watch is not filtered (neither as the writer delivers nor as
            // each event is written).
            let filtered = !grants.reads_all();
            // A filtered watch follows the client's grants as a reload
            // changes them.
            let interest: Option<Interest> = filtered.then(|| {
                let auth = client.auth.clone();
                Arc::new(move |e: &Event| auth.grants.load().sees(e)) as Interest
            });
            let r = req_ref;
            let keep = still_allowed(&client.auth, r, filtered);
            let Some(slot) = app.quotas.watch(&client.usage) else {
                let max = app.quotas.max_watches;
                // The watch was allowed: the client may know the index.
                let index = app.store.snapshot().index;
                return over_limit(app, "watches", "max_watches_per_identity", max, index);
            };
            // A reload either comes after the watch is registered (and
            // decides it again) or before this check.
            let _no_reload = app.reloading.read().unwrap_or_else(|p| p.into_inner());
            if !keep() {
                return denied();
            }
            match store.watch(&r.key, r.recursive, r.stream, r.wait_index, interest, keep) {
                Err(e) => etcd_error(&e),
                Ok((started, index)) => {
                    let view = filtered.then(|| client.auth.clone());
                    let body = match started {
                        Started::Ready(e) => WatchBody::ready(&e, r.stream, view),
                        Started::Once(rx, g) => WatchBody::once(rx, g, view),
                        Started::Stream(rx, g) => WatchBody::stream(rx, g, view),
                    }
                    .holding(slot);
                    let body = if app.audit {
                        body.audited(client.identity.label(), &r.key, app.json_log)
                    } else {
                        body
                    };
                    keys_response(StatusCode::OK, index, ApiBody::Watch(body))
                }
            }
        }
        KeysMethod::Get | KeysMethod::Head if traverse => {
            let trie = ViewTrie::new(&req_ref.key, grants.read.below(&req_ref.key));
            match store.get_view(&req_ref.key, req_ref.recursive, &trie) {
                Ok((body, index)) => keys_response(StatusCode::OK, index, ApiBody::full(body)),
                Err(_) => {
                    let (cause, index) = store.view_missing_cause(&req_ref.key, grants.view_trie());
                    etcd_error(&EtcdError::new(code::KEY_NOT_FOUND, cause, index))
                }
            }
        }
        // A plain read.
        _ => match store.get(&req_ref.key, req_ref.recursive) {
            Ok((body, index)) => keys_response(StatusCode::OK, index, ApiBody::full(body)),
            Err(e) => {
                let inside = e.cause.as_deref().is_some_and(|c| grants.can_read(c));
                // A missing key: the cause is the first component missing
                // from the view, which lies above the store's cause when a
                // directory above the prefix exists only outside the view.
                // A non-directory: recomputed when it lies above the view.
                let recompute = match e.code {
                    code::KEY_NOT_FOUND => true,
                    code::NOT_DIR => !inside,
                    _ => false,
                };
                if recompute {
                    let (cause, index) = store.view_missing_cause(&req_ref.key, grants.view_trie());
                    etcd_error(&EtcdError::new(code::KEY_NOT_FOUND, cause, index))
                } else {
                    etcd_error(&e)
                }
            }
        },
    }
}

/// Runs an allowed write against the embedded store.
async fn write_keys(
    app: &App,
    req: &mut Permitted<KeysRequest>,
    method: KeysMethod,
) -> Response<ApiBody> {
    let (value, prev_value) = req.take_values();
    let grants = req.grants();
    let r = req.get();
    let store: &Store = &app.store;
    let can_read = grants.can_read(&r.key);
    let keep_value = can_read || !r.refresh;
    let allowed_by = match req.basis() {
        Basis::Prefix { prefix, .. } => Some(prefix),
        _ => None,
    };
    let expire = r.expiration(now_nanos());
    let no_value = r.no_value_on_success;
    let op = match method {
        KeysMethod::Put => WriteOp::Put {
            key: r.key.clone(),
            value,
            dir: r.dir,
            expire,
            refresh: r.refresh,
            prev_exist: r.prev_exist,
            prev_value,
            prev_index: r.prev_index,
        },
        KeysMethod::Post => WriteOp::Post {
            key: r.key.clone(),
            value,
            dir: r.dir,
            expire,
        },
        _ => WriteOp::Delete {
            key: r.key.clone(),
            dir: r.dir,
            recursive: r.recursive,
            prev_value,
            prev_index: r.prev_index,
        },
    };
    match store.write(op).await {
        Ok((event, index)) => {
            let strip = no_value
                && matches!(
                    event.action,
                    Action::Set | Action::CompareAndSwap | Action::Create | Action::Update
                );
            let status = if event.is_created() {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = event.encode_with(strip, keep_value, can_read);
            keys_response(status, index, ApiBody::full(body))
        }
        Err(mut e) => {
            // Never name a path above the prefix that allowed the write.
            if let (Some(prefix), Some(cause)) = (allowed_by, &e.cause) {
                if cause.starts_with('/') && covers(cause, prefix) && cause != prefix {
                    e.cause = Some(prefix.to_string());
                }
            }
            etcd_error(&e)
        }
    }
}

const X_ETCD_INDEX: HeaderName = HeaderName::from_static("x-etcd-index");
const X_RAFT_INDEX: HeaderName = HeaderName::from_static("x-raft-index");
const X_RAFT_TERM: HeaderName = HeaderName::from_static("x-raft-term");
const X_ETCD_CLUSTER_ID: HeaderName = HeaderName::from_static("x-etcd-cluster-id");

fn keys_response(status: StatusCode, index: u64, body: ApiBody) -> Response<ApiBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    let idx = HeaderValue::from(index);
    h.insert(X_ETCD_INDEX, idx.clone());
    h.insert(X_RAFT_INDEX, idx);
    h.insert(X_RAFT_TERM, HeaderValue::from_static("1"));
    r
}

/// etcd's error answer.
pub fn etcd_error(e: &EtcdError) -> Response<ApiBody> {
    let mut r = Response::new(ApiBody::full(e.to_json()));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert(X_ETCD_INDEX, HeaderValue::from(e.index));
    r
}

/// The default-deny answer (SPEC §3.2).
pub fn denied() -> Response<ApiBody> {
    let mut r = Response::new(ApiBody::full(
        &b"{\"errorCode\":110,\"message\":\"The request requires user authentication\",\"cause\":\"permission denied\",\"index\":0}\n"[..],
    ));
    *r.status_mut() = StatusCode::FORBIDDEN;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert(X_ETCD_INDEX, HeaderValue::from_static("0"));
    r
}

fn cluster_header(app: &App, r: &mut Response<ApiBody>) {
    r.headers_mut()
        .insert(X_ETCD_CLUSTER_ID, app.cluster_header.clone());
}

fn json_response(body: String) -> Response<ApiBody> {
    let mut r = Response::new(ApiBody::full(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    r
}

/// A plain-text answer as Go's `http.Error` writes it.
pub fn plain(status: StatusCode, text: &str) -> Response<ApiBody> {
    let mut r = Response::new(ApiBody::full(format!("{text}\n")));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Asks the client to close the connection after this answer.
pub fn close(mut r: Response<ApiBody>) -> Response<ApiBody> {
    r.headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn not_found() -> Response<ApiBody> {
    plain(StatusCode::NOT_FOUND, "404 page not found")
}

fn method_not_allowed(allow: &'static str) -> Response<ApiBody> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn redirect(method: &Method, loc: &str) -> Response<ApiBody> {
    let body = if method == Method::GET {
        let mut esc = String::new();
        for c in loc.chars() {
            match c {
                '&' => esc.push_str("&amp;"),
                '<' => esc.push_str("&lt;"),
                '>' => esc.push_str("&gt;"),
                '"' => esc.push_str("&#34;"),
                '\'' => esc.push_str("&#39;"),
                c => esc.push(c),
            }
        }
        ApiBody::full(format!("<a href=\"{esc}\">Moved Permanently</a>.\n\n"))
    } else {
        ApiBody::empty()
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(loc) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    if method == Method::GET || method == Method::HEAD {
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    r
}
