//! The HTTP API: routing on the raw path, the keys request path
//! (parse → policy → backend → encode) and the endpoints beside the keys.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::{ApiBody, WatchBody};
use crate::identity::Identity;
use crate::policy::{Decision, Permitted, Policy};
use crate::store::event::Action;
use crate::store::{now_nanos, Started, Store, WriteOp, STAT_NAMES};
use crate::v2::error::{self as code, EtcdError};
use crate::v2::request::{key_path, parse_params, Form, KeyPath, KeysMethod, KeysRequest};

/// What every request needs: the store, the policy, and who we are.
pub struct App {
    /// The embedded store.
    pub store: Store,
    /// The access policy.
    pub policy: Policy,
    /// 16 hex digits: `X-Etcd-Cluster-Id` and the member id.
    pub cluster_id: String,
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
    /// Start time, Unix ns.
    pub started: i64,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
/// The etcd version keygate speaks (its v2 API).
pub const ETCD_VERSION: &str = "3.4.0";

/// Answers one request from a verified client.
pub async fn handle(
    app: Arc<App>,
    client: Arc<Identity>,
    req: Request<Incoming>,
) -> Response<ApiBody> {
    if req.method() == Method::CONNECT || req.headers().contains_key(hyper::header::UPGRADE) {
        return close(plain(StatusCode::BAD_REQUEST, "400 Bad Request"));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if req.headers().len() > app.max_header_count || header_bytes > app.max_header_bytes {
        return close(plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "431 Request Header Fields Too Large",
        ));
    }
    // Read the whole (bounded) body first, whatever the answer: an unread
    // body would cost the client its keep-alive connection.
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, app.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let mut r = etcd_error(&EtcdError::request(
                code::INVALID_FORM,
                format!("request body larger than {} bytes", app.max_body_bytes),
            ));
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return close(r);
        }
    };
    let req = Request::from_parts(parts, body);
    let head = req.method() == Method::HEAD;
    let resp = route(&app, &client, req).await;
    if head {
        strip_body(resp)
    } else {
        resp
    }
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

async fn route(app: &App, client: &Identity, req: Request<Bytes>) -> Response<ApiBody> {
    if req.method() == Method::OPTIONS {
        return Response::new(ApiBody::empty());
    }
    let path = req.uri().path();
    if path == "/v2/keys" || path.starts_with("/v2/keys/") {
        return keys(app, client, req).await;
    }
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
            if !app.policy.may_read_stats(client) {
                return denied();
            }
            only(get, "GET", || json_response(stats(app, path)))
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

async fn keys(app: &App, client: &Identity, req: Request<Bytes>) -> Response<ApiBody> {
    let (parts, body) = req.into_parts();
    let rest = &parts.uri.path()["/v2/keys".len()..];
    let key = match key_path(rest) {
        KeyPath::Key(k) => k,
        KeyPath::Redirect(mut loc) => {
            if let Some(q) = parts.uri.query() {
                loc.push('?');
                loc.push_str(q);
            }
            return redirect(&parts.method, &loc);
        }
        KeyPath::BadEscape => return plain(StatusCode::BAD_REQUEST, "400 Bad Request"),
        KeyPath::NotUtf8 => {
            let mut r = etcd_error(&EtcdError::request(
                code::INVALID_FIELD,
                "key is not valid UTF-8",
            ));
            cluster_header(app, &mut r);
            return r;
        }
    };
    let method = match parts.method {
        Method::GET => KeysMethod::Get,
        Method::HEAD => KeysMethod::Head,
        Method::PUT => KeysMethod::Put,
        Method::POST => KeysMethod::Post,
        Method::DELETE => KeysMethod::Delete,
        _ => return method_not_allowed("HEAD,GET,PUT,POST,DELETE"),
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
        Ok(req) => match app.policy.decide(client, req) {
            Decision::Deny => denied(),
            Decision::Allow(req) => serve_keys(app, req).await,
        },
    };
    cluster_header(app, &mut resp);
    resp
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

/// Runs an allowed keys request against the embedded store.
async fn serve_keys(app: &App, req: Permitted<KeysRequest>) -> Response<ApiBody> {
    let req = req.into_inner();
    let store: &Store = &app.store;
    match req.method() {
        KeysMethod::Get | KeysMethod::Head if req.is_watch() => {
            match store.watch(&req.key, req.recursive, req.stream, req.wait_index, None) {
                Err(e) => etcd_error(&e),
                Ok((started, index)) => {
                    let body = match started {
                        Started::Ready(e) => WatchBody::ready(&e, req.stream),
                        Started::Once(rx, g) => WatchBody::once(rx, g),
                        Started::Stream(rx, g) => WatchBody::stream(rx, g),
                    };
                    keys_response(StatusCode::OK, index, ApiBody::Watch(body))
                }
            }
        }
        KeysMethod::Get | KeysMethod::Head => match store.get(&req.key, req.recursive) {
            Ok((body, index)) => keys_response(StatusCode::OK, index, ApiBody::full(body)),
            Err(e) => etcd_error(&e),
        },
        method => {
            let expire = req.expiration(now_nanos());
            let no_value = req.no_value_on_success;
            let op = match method {
                KeysMethod::Put => WriteOp::Put {
                    key: req.key,
                    value: req.value,
                    dir: req.dir,
                    expire,
                    refresh: req.refresh,
                    prev_exist: req.prev_exist,
                    prev_value: req.prev_value,
                    prev_index: req.prev_index,
                },
                KeysMethod::Post => WriteOp::Post {
                    key: req.key,
                    value: req.value,
                    dir: req.dir,
                    expire,
                },
                _ => WriteOp::Delete {
                    key: req.key,
                    dir: req.dir,
                    recursive: req.recursive,
                    prev_value: req.prev_value,
                    prev_index: req.prev_index,
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
                    keys_response(status, index, ApiBody::full(event.encode(strip)))
                }
                Err(e) => etcd_error(&e),
            }
        }
    }
}

fn keys_response(status: StatusCode, index: u64, body: ApiBody) -> Response<ApiBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    let idx = HeaderValue::from(index);
    h.insert("x-etcd-index", idx.clone());
    h.insert("x-raft-index", idx);
    h.insert("x-raft-term", HeaderValue::from_static("1"));
    r
}

/// etcd's error answer.
pub fn etcd_error(e: &EtcdError) -> Response<ApiBody> {
    let mut r = Response::new(ApiBody::full(e.to_json()));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert("x-etcd-index", HeaderValue::from(e.index));
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
    h.insert("x-etcd-index", HeaderValue::from_static("0"));
    r
}

fn cluster_header(app: &App, r: &mut Response<ApiBody>) {
    if let Ok(v) = HeaderValue::from_str(&app.cluster_id) {
        r.headers_mut().insert("x-etcd-cluster-id", v);
    }
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
fn close(mut r: Response<ApiBody>) -> Response<ApiBody> {
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
