//! Access control end to end (SPEC §3.1, §3.2, §7): a keygate with several
//! teams' roles and binds, real certificates shaped with rcgen, and every
//! request sent over mTLS.
//!
//! - `matrix`: identity × method × key, on a populated and on an empty
//!   store. Denials are the exact 403 body with `X-Etcd-Index: 0`, the same
//!   whether the key exists or not, and leave the store (tree, index and
//!   stats counters) untouched.
//! - `binds`: which certificate shapes get which roles.
//! - `view_*`: what reads above a client's prefixes show (SPEC §3.2).
//! - `write_without_read`: answers to a client that may write but not read.
//! - `watch_*`: filtering of watches and history.
//! - `other_endpoints`: stats (admin only) and the endpoints every client may use.
//! - `canonicalization`: the key decided on is the key the store touches.
//! - `random_operations_leak_nothing`: five identities' random requests,
//!   interleaved, never show one another's keys or values.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{seeds, tls_config, CertFiles, Client, Keygate, Pki, Resp, Rng};
use http_body_util::BodyExt;
use rcgen::{DnType, SanType};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The default-deny body (SPEC §3.2), as etcd's encoder writes it (one
/// JSON document and a newline).
const DENY: &str = "{\"errorCode\":110,\"message\":\"The request requires user authentication\",\"cause\":\"permission denied\",\"index\":0}\n";

const LONG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Setup

/// The identities of the tests: name → certificate.
struct Ids {
    certs: HashMap<&'static str, CertFiles>,
}

impl Ids {
    fn new(pki: &Pki) -> Ids {
        let mut certs = HashMap::new();
        certs.insert("team-a", pki.issue("team-a-1", |_| {}));
        certs.insert(
            "team-b",
            pki.issue("svc-b", |p| {
                p.subject_alt_names = vec![SanType::URI(
                    "spiffe://example.org/ns/team-b/svc".try_into().unwrap(),
                )];
            }),
        );
        certs.insert("reader", pki.issue("reader", |_| {}));
        certs.insert("writer-only", pki.issue("wo-1", |_| {}));
        certs.insert(
            "admin",
            pki.issue("ops-1", |p| {
                p.distinguished_name
                    .push(DnType::OrganizationalUnitName, "platform");
            }),
        );
        // Near misses of every bind: the admin CN without the OU, a SPIFFE
        // id of another namespace.
        certs.insert(
            "nobody",
            pki.issue("ops-2", |p| {
                p.subject_alt_names = vec![SanType::URI(
                    "spiffe://example.org/ns/team-c/svc".try_into().unwrap(),
                )];
            }),
        );
        certs.insert("deep", pki.issue("deep-1", |_| {}));
        Ids { certs }
    }

    fn get(&self, name: &str) -> &CertFiles {
        &self.certs[name]
    }
}

/// The roles and binds of SPEC §3 plus `reader`, `writer-only` and `deep`
/// (nested prefixes: `/x/y` two levels down, a hidden one, and a write
/// prefix `/p/q` whose parent nobody but admin may write).
fn config(pki: &Pki) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[tls]
cert = {cert:?}
key = {key:?}
client_ca = {ca:?}

[backend]
data_dir = "data"

[log]
audit = false

[roles.team-a]
read = ["/team-a"]
write = ["/team-a"]

[roles.team-b]
read = ["/team-b"]
write = ["/team-b"]

[roles.reader]
read = ["/"]

[roles.writer-only]
write = ["/wo", "/p/q"]

[roles.admin]
read = ["/"]
write = ["/"]
admin = true

[roles.deep]
read = ["/x/y", "/x/_h", "/_sys/deep"]
write = ["/x/y"]

[[bind]]
cn = "team-a-*"
roles = ["team-a"]

[[bind]]
uri = "spiffe://example.org/ns/team-b/*"
roles = ["team-b"]

[[bind]]
ou = "platform"
cn = "ops-*"
roles = ["admin"]

[[bind]]
cn = "reader"
roles = ["reader"]

[[bind]]
cn = "wo-*"
roles = ["writer-only"]

[[bind]]
cn = "deep-*"
roles = ["deep"]
"#,
        cert = pki.server.cert,
        key = pki.server.key,
        ca = pki.ca,
    )
}

/// A keygate on the test config, the identities, and a connection per identity.
struct Env {
    kg: Keygate,
    ids: Ids,
    conns: HashMap<&'static str, Client>,
}

impl Env {
    async fn new() -> Env {
        let pki = Arc::new(Pki::new());
        let ids = Ids::new(&pki);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate.toml");
        std::fs::write(&path, config(&pki)).unwrap();
        let kg = Keygate::start_with(pki, dir, path);
        let mut env = Env {
            kg,
            ids,
            conns: HashMap::new(),
        };
        let names: Vec<&'static str> = env.ids.certs.keys().copied().collect();
        for name in names {
            let c = env.connect(name).await;
            env.conns.insert(name, c);
        }
        env
    }

    /// A new HTTP/1.1 connection as `who`.
    async fn connect(&self, who: &str) -> Client {
        Client::h1(&self.kg.addr(), &self.kg.pki.ca, self.ids.get(who)).await
    }

    /// A request on `who`'s keep-alive connection.
    async fn req(&mut self, who: &str, method: &str, target: &str, body: Option<&str>) -> Resp {
        self.req_h(who, method, target, body, &[]).await
    }

    async fn req_h(
        &mut self,
        who: &str,
        method: &str,
        target: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let c = self.conns.get_mut(who).unwrap();
        tokio::time::timeout(LONG, c.req_h(method, target, body, headers))
            .await
            .unwrap_or_else(|_| panic!("{who} {method} {target}: no answer"))
    }

    /// An admin write that must succeed; returns its index.
    async fn put(&mut self, target: &str, body: Option<&str>) -> u64 {
        let r = self.req("admin", "PUT", target, body).await;
        assert!(
            r.status == 200 || r.status == 201,
            "setup PUT {target}: {r:?}"
        );
        index(&r)
    }

    async fn delete(&mut self, target: &str) -> u64 {
        let r = self.req("admin", "DELETE", target, None).await;
        assert_eq!(r.status, 200, "setup DELETE {target}: {r:?}");
        index(&r)
    }

    /// The whole visible tree as admin sees it, and the store index.
    async fn snapshot(&mut self) -> (String, String) {
        let r = self
            .req("admin", "GET", "/v2/keys/?recursive=true&sorted=true", None)
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        (
            r.body.clone(),
            r.header("x-etcd-index").unwrap().to_string(),
        )
    }

    /// The store's operation counters (watchers left out: they change when
    /// an earlier watch's connection closes).
    async fn counters(&mut self) -> Value {
        let r = self.req("admin", "GET", "/v2/stats/store", None).await;
        assert_eq!(r.status, 200, "{r:?}");
        let mut v = r.json();
        v.as_object_mut().unwrap().remove("watchers");
        v
    }

    /// Starts a watch as `who` on a new connection; returns the answer's
    /// head and its body still open.
    async fn watch(&self, who: &str, target: &str) -> Watch {
        let mut c = self.connect(who).await;
        let resp = tokio::time::timeout(LONG, c.send("GET", target, None, &[]))
            .await
            .unwrap_or_else(|_| panic!("{who} GET {target}: no answer head"))
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Watch {
            _conn: c,
            status,
            headers,
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }
}

/// An open watch.
struct Watch {
    _conn: Client,
    status: u16,
    headers: hyper::HeaderMap,
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl Watch {
    /// The next newline-terminated line of the body within `wait`; `None`
    /// when nothing (complete) arrived.
    async fn line(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8(line).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => return None,
                Ok(Some(f)) => {
                    if let Ok(d) = f.unwrap().into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }

    /// Whatever bytes arrive within `wait` (for "nothing arrives").
    async fn bytes_within(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(f)) = tokio::time::timeout_at(deadline, self.body.frame()).await {
            if let Ok(d) = f.unwrap().into_data() {
                self.buf.extend_from_slice(&d);
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// The rest of a finished body.
    async fn rest(mut self) -> String {
        while let Some(f) = tokio::time::timeout(LONG, self.body.frame())
            .await
            .expect("body did not end")
        {
            if let Ok(d) = f.unwrap().into_data() {
                self.buf.extend_from_slice(&d);
            }
        }
        String::from_utf8(self.buf).unwrap()
    }
}

fn index(r: &Resp) -> u64 {
    r.header("x-etcd-index")
        .unwrap_or_else(|| panic!("no X-Etcd-Index: {r:?}"))
        .parse()
        .unwrap()
}

/// Asserts the exact default-deny answer.
#[track_caller]
fn assert_denied(r: &Resp, what: &str) {
    assert_eq!(r.status, 403, "{what}: status; {r:?}");
    assert_eq!(r.header("x-etcd-index"), Some("0"), "{what}: X-Etcd-Index");
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what}: Content-Type"
    );
    assert_eq!(r.body, DENY, "{what}: body");
}

/// Asserts an etcd error answer's status, code and cause.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: u64, cause: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    let v = r.json();
    assert_eq!(v["errorCode"], json!(code), "{what}: {r:?}");
    if let Some(c) = cause {
        assert_eq!(v["cause"], json!(c), "{what}: {r:?}");
    }
}

/// Removes `nodes` from a node (a non-recursive listing shows child
/// directories without their children).
fn without_nodes(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("nodes");
    v
}

// ---------------------------------------------------------------------------
// 1–2. The matrix

/// The keys of the matrix.
const KEYS: [&str; 8] = [
    "/team-a/k", // inside team-a
    "/team-b/k", // outside
    "/team-ab",  // sibling: /team-a does not cover it
    "/team-a",   // exact prefix
    "/",         // root: above everyone's prefixes
    "/x",        // bare ancestor of deep's /x/y
    "/x/y/k",    // inside deep
    "/wo/k",     // inside writer-only
];

/// Per identity and key (in `KEYS` order): read access (`R` covered, `T`
/// traverse: above a read prefix, `-` none) and write access (`W`, `-`).
/// Written out by hand from the config, not computed.
const ACCESS: [(&str, [&str; 8]); 7] = [
    //             /team-a/k /team-b/k /team-ab /team-a  /     /x    /x/y/k /wo/k
    ("team-a", ["RW", "--", "--", "RW", "T-", "--", "--", "--"]),
    ("team-b", ["--", "RW", "--", "--", "T-", "--", "--", "--"]),
    ("reader", ["R-", "R-", "R-", "R-", "R-", "R-", "R-", "R-"]),
    (
        "writer-only",
        ["--", "--", "--", "--", "--", "--", "--", "-W"],
    ),
    ("admin", ["RW", "RW", "RW", "RW", "RW", "RW", "RW", "RW"]),
    ("nobody", ["--", "--", "--", "--", "--", "--", "--", "--"]),
    ("deep", ["--", "--", "--", "--", "T-", "T-", "RW", "--"]),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum M {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Options,
    /// `get`: not a method etcd allows (methods are case-sensitive).
    LowerGet,
    Foo,
    /// `wait=true`.
    Wait,
    /// `wait=true&recursive=true`.
    WaitRecursive,
}

const METHODS: [M; 10] = [
    M::Get,
    M::Head,
    M::Put,
    M::Post,
    M::Delete,
    M::Options,
    M::LowerGet,
    M::Foo,
    M::Wait,
    M::WaitRecursive,
];

/// What a cell must answer.
#[derive(Debug, PartialEq, Eq)]
enum Exp {
    Deny,
    /// 405 before any decision.
    NotAllowed,
    /// 200, empty body, before any decision.
    Options,
    /// A watch started: 200 and the body left open.
    Watching,
    /// This status (and, for an error, this errorCode).
    Status(u16, Option<u64>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Root,
    Dir,
    File,
    Missing,
}

/// The populated store: these keys (values are the key's last component).
const POPULATED: [&str; 6] = [
    "/team-a/k",
    "/team-b/k",
    "/team-ab",
    "/x/y/k",
    "/x/z",
    "/wo/k",
];

fn kind(key: &str, populated: bool) -> Kind {
    match key {
        "/" => Kind::Root,
        _ if !populated => Kind::Missing,
        "/team-a" | "/x" => Kind::Dir,
        _ => Kind::File,
    }
}

/// etcd's answer to an allowed write (statuses as etcd 3.4 gives them,
/// see tests/differential/etcd-3.4.expected.txt).
fn write_answer(m: M, k: Kind) -> Exp {
    use Exp::Status as S;
    match (m, k) {
        (M::Put, Kind::Root) => S(400, Some(107)),
        (M::Put, Kind::Dir) => S(403, Some(102)),
        (M::Put, Kind::File) => S(200, None),
        (M::Put, Kind::Missing) => S(201, None),
        (M::Post, Kind::File) => S(400, Some(104)),
        (M::Post, _) => S(201, None),
        (M::Delete, Kind::Root) => S(400, Some(107)),
        (M::Delete, Kind::Dir) => S(403, Some(102)),
        (M::Delete, Kind::File) => S(200, None),
        (M::Delete, Kind::Missing) => S(404, Some(100)),
        _ => unreachable!(),
    }
}

fn expect(access: &str, m: M, key: &str, populated: bool) -> Exp {
    let read = access.as_bytes()[0];
    let write = access.as_bytes()[1] == b'W';
    let exists = !matches!(kind(key, populated), Kind::Missing);
    match m {
        M::Options => Exp::Options,
        M::LowerGet | M::Foo => Exp::NotAllowed,
        M::Get | M::Head => match read {
            b'R' if exists => Exp::Status(200, None),
            b'R' => Exp::Status(404, Some(100)),
            // A traversal shows the view: in the populated store every
            // traversing client has a node below; the empty store holds no
            // view, not even the root.
            b'T' if populated => Exp::Status(200, None),
            b'T' => Exp::Status(404, Some(100)),
            _ => Exp::Deny,
        },
        M::Wait => match read {
            b'R' => Exp::Watching,
            _ => Exp::Deny,
        },
        M::WaitRecursive => match read {
            b'R' | b'T' => Exp::Watching,
            _ => Exp::Deny,
        },
        M::Put | M::Post | M::Delete if write => write_answer(m, kind(key, populated)),
        M::Put | M::Post | M::Delete => Exp::Deny,
    }
}

fn target(m: M, key: &str) -> String {
    let path = if key == "/" {
        "/v2/keys/".to_string()
    } else {
        format!("/v2/keys{key}")
    };
    match m {
        M::Wait => format!("{path}?wait=true"),
        M::WaitRecursive => format!("{path}?wait=true&recursive=true"),
        _ => path,
    }
}

fn method_name(m: M) -> &'static str {
    match m {
        M::Get | M::Wait | M::WaitRecursive => "GET",
        M::Head => "HEAD",
        M::Put => "PUT",
        M::Post => "POST",
        M::Delete => "DELETE",
        M::Options => "OPTIONS",
        M::LowerGet => "get",
        M::Foo => "FOO",
    }
}

/// Makes the store hold exactly `POPULATED` (or nothing).
async fn reset(env: &mut Env, populated: bool) {
    let r = env.req("admin", "GET", "/v2/keys/", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let keys: Vec<String> = v["node"]["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    for k in keys {
        env.delete(&format!("/v2/keys{k}?recursive=true")).await;
    }
    if populated {
        for k in POPULATED {
            let v = k.rsplit('/').next().unwrap();
            env.put(&format!("/v2/keys{k}"), Some(&format!("value={v}")))
                .await;
        }
    }
}

/// The tree without indexes (to see whether an allowed write changed it).
fn shape_of(body: &str) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("modifiedIndex");
                m.remove("createdIndex");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(body).unwrap();
    strip(&mut v);
    v
}

/// Status, headers (sorted) and body of an answer.
type Fingerprint = (u16, Vec<(String, String)>, String);

/// A denial without its `Date`.
fn denial_fingerprint(r: &Resp) -> Fingerprint {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    h.sort();
    (r.status, h, r.body.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix() {
    let mut env = Env::new().await;
    let mut failures: Vec<String> = Vec::new();
    // Denials seen on the populated store, to compare with the empty one.
    let mut denials: HashMap<(&str, M, &str), Fingerprint> = HashMap::new();
    for populated in [true, false] {
        reset(&mut env, populated).await;
        let baseline = shape_of(&env.snapshot().await.0);
        for (who, access) in ACCESS {
            for m in METHODS {
                for (ki, &key) in KEYS.iter().enumerate() {
                    let exp = expect(access[ki], m, key, populated);
                    let cell = format!(
                        "{who} {} {} ({})",
                        method_name(m),
                        target(m, key),
                        if populated { "populated" } else { "empty" }
                    );
                    let before = env.snapshot().await;
                    let counters = env.counters().await;
                    let got = run_cell(&mut env, who, m, key).await;
                    if let Err(e) = check_cell(&exp, m, &got) {
                        failures.push(format!("{cell}: expected {exp:?}: {e}"));
                    }
                    let untouched = matches!(exp, Exp::Deny | Exp::NotAllowed | Exp::Options);
                    if untouched {
                        // Nothing reached the store: no counter moved, the
                        // tree and the index are the same.
                        if env.counters().await != counters {
                            failures.push(format!("{cell}: the store counted an operation"));
                        }
                        if env.snapshot().await != before {
                            failures.push(format!("{cell}: the store changed"));
                        }
                    }
                    if let (Exp::Deny, Cell::Full(r)) = (&exp, &got) {
                        let fp = denial_fingerprint(r);
                        if populated {
                            denials.insert((who, m, key), fp);
                        } else if let Some(p) = denials.get(&(who, m, key)) {
                            if *p != fp {
                                failures.push(format!(
                                    "{cell}: denial differs from the one on the populated store: \
                                     {p:?} vs {fp:?}"
                                ));
                            }
                        }
                    }
                    if matches!(m, M::Put | M::Post | M::Delete)
                        && shape_of(&env.snapshot().await.0) != baseline
                    {
                        reset(&mut env, populated).await;
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cells:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What a cell answered.
enum Cell {
    Full(Resp),
    /// A watch whose head said 200 and whose body stayed open.
    Open(u16, hyper::HeaderMap),
}

async fn run_cell(env: &mut Env, who: &str, m: M, key: &str) -> Cell {
    let t = target(m, key);
    match m {
        M::Wait | M::WaitRecursive => {
            let mut w = env.watch(who, &t).await;
            if w.status == 200 {
                // A started watch: nothing is written during the matrix
                // that it could be waiting for, so its body stays open.
                if let Some(l) = w.line(Duration::from_millis(20)).await {
                    panic!("{who} GET {t}: watch answered at once: {l}");
                }
                Cell::Open(w.status, w.headers)
            } else {
                let status = w.status;
                let headers = w.headers.clone();
                let body = w.rest().await;
                Cell::Full(Resp {
                    status,
                    headers,
                    body,
                })
            }
        }
        M::Put | M::Post => Cell::Full(env.req(who, method_name(m), &t, Some("value=m")).await),
        _ => Cell::Full(env.req(who, method_name(m), &t, None).await),
    }
}

fn check_cell(exp: &Exp, m: M, got: &Cell) -> Result<(), String> {
    let r = match (exp, got) {
        (Exp::Watching, Cell::Open(200, h)) => {
            return if h.contains_key("x-etcd-index") {
                Ok(())
            } else {
                Err("watch without X-Etcd-Index".into())
            };
        }
        (_, Cell::Open(s, _)) => return Err(format!("a watch started ({s})")),
        (_, Cell::Full(r)) => r,
    };
    let got_line = || format!("got {} {:?} {:?}", r.status, r.headers, r.body);
    match exp {
        Exp::Watching => Err(got_line()),
        Exp::Deny => {
            let ok = r.status == 403
                && r.header("x-etcd-index") == Some("0")
                && r.header("content-type") == Some("application/json")
                && if m == M::Head {
                    r.body.is_empty()
                        && r.header("content-length") == Some(&*DENY.len().to_string())
                } else {
                    r.body == DENY
                };
            if ok {
                Ok(())
            } else {
                Err(got_line())
            }
        }
        Exp::NotAllowed => {
            if r.status == 405 && r.header("allow") == Some("HEAD,GET,PUT,POST,DELETE") {
                Ok(())
            } else {
                Err(got_line())
            }
        }
        Exp::Options => {
            if r.status == 200 && r.body.is_empty() {
                Ok(())
            } else {
                Err(got_line())
            }
        }
        Exp::Status(s, code) => {
            if r.status != *s {
                return Err(got_line());
            }
            if m == M::Head {
                return if r.body.is_empty() {
                    Ok(())
                } else {
                    Err(got_line())
                };
            }
            if r.body == DENY {
                return Err(format!("denied: {}", got_line()));
            }
            if let Some(c) = code {
                let v: Value = serde_json::from_str(&r.body).map_err(|_| got_line())?;
                if v["errorCode"] != json!(c) {
                    return Err(got_line());
                }
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Binds: which certificates get which roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds() {
    let mut env = Env::new().await;
    env.put("/v2/keys/team-a/k", Some("value=a")).await;
    env.put("/v2/keys/team-b/k", Some("value=b")).await;
    env.put("/v2/keys/team-ab", Some("value=ab")).await;
    type Edit = Box<dyn FnOnce(&mut rcgen::CertificateParams)>;
    let uri = |u: &'static str| -> Edit {
        Box::new(move |p: &mut rcgen::CertificateParams| {
            p.subject_alt_names = vec![SanType::URI(u.try_into().unwrap())];
        })
    };
    let ou = |o: &'static str| -> Edit {
        Box::new(move |p: &mut rcgen::CertificateParams| {
            p.distinguished_name.push(DnType::OrganizationalUnitName, o);
        })
    };
    let none = || -> Edit { Box::new(|_| {}) };
    // (CN, shape, readable: [/team-a/k, /team-b/k, /team-ab], admin stats)
    let cases: Vec<(&str, Edit, [bool; 3], bool)> = vec![
        ("team-a-1", none(), [true, false, false], false),
        // `*` matches an empty run...
        ("team-a-", none(), [true, false, false], false),
        // ...but not a missing `-`, a `/`, or another case.
        ("team-a", none(), [false, false, false], false),
        ("team-a-x/y", none(), [false, false, false], false),
        ("Team-A-1", none(), [false, false, false], false),
        ("xteam-a-1", none(), [false, false, false], false),
        (
            "anything",
            uri("spiffe://example.org/ns/team-b/svc"),
            [false, true, false],
            false,
        ),
        (
            "anything2",
            uri("spiffe://example.org/ns/team-b/a/b"),
            [false, false, false],
            false,
        ),
        (
            "anything3",
            uri("spiffe://example.org/ns/team-bb/svc"),
            [false, false, false],
            false,
        ),
        // The SPIFFE id in the CN is not a URI SAN.
        (
            "spiffe://example.org/ns/team-b/svc",
            none(),
            [false, false, false],
            false,
        ),
        // A client in two binds has both roles.
        (
            "team-a-2",
            uri("spiffe://example.org/ns/team-b/svc2"),
            [true, true, false],
            false,
        ),
        // Both fields of the admin bind must match.
        ("ops-7", ou("platform"), [true, true, true], true),
        ("ops-8", none(), [false, false, false], false),
        ("dev-1", ou("platform"), [false, false, false], false),
        ("ops-9", ou("platform2"), [false, false, false], false),
        ("ops-10", ou("Platform"), [false, false, false], false),
        ("reader", none(), [true, true, true], false),
        ("reader2", none(), [false, false, false], false),
    ];
    let mut failures = Vec::new();
    for (i, (cn, edit, readable, admin)) in cases.into_iter().enumerate() {
        let cert = env.kg.pki.issue(&format!("bind{i}"), move |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CommonName, cn);
            edit(p);
        });
        let mut c = Client::h1(&env.kg.addr(), &env.kg.pki.ca, &cert).await;
        for (key, want) in ["/team-a/k", "/team-b/k", "/team-ab"].iter().zip(readable) {
            let r = c.req("GET", &format!("/v2/keys{key}"), None).await;
            let got = r.status == 200;
            if got != want || (!got && r.body != DENY) {
                failures.push(format!(
                    "cert #{i} cn={cn:?}: GET {key}: {} {}",
                    r.status, r.body
                ));
            }
        }
        let r = c.req("GET", "/v2/stats/store", None).await;
        if (r.status == 200) != admin || (!admin && r.body != DENY) {
            failures.push(format!(
                "cert #{i} cn={cn:?}: stats: {} {}",
                r.status, r.body
            ));
        }
        // Identity never comes from the request.
        let r = c
            .req_h(
                "GET",
                "/v2/keys/team-b/k",
                None,
                &[
                    (
                        "x-forwarded-client-cert",
                        "URI=spiffe://example.org/ns/team-b/svc",
                    ),
                    ("x-ssl-client-s-dn", "CN=ops-1,OU=platform"),
                    ("x-client-cn", "ops-1"),
                    ("x-remote-user", "admin"),
                ],
            )
            .await;
        if (r.status == 200) != readable[1] {
            failures.push(format!(
                "cert #{i} cn={cn:?}: identity headers changed the decision: {}",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// 3. The client's view

/// Keys for the view tests.
async fn populate_view(env: &mut Env) {
    for (k, v) in [
        ("/team-a/k", "a"),
        ("/team-a/d/e", "ae"),
        ("/team-a/_h", "ha"),
        ("/team-b/k", "secret-b"),
        ("/team-b/_h", "hb"),
        ("/team-ab", "secret-ab"),
        ("/x/y/k", "xy"),
        ("/x/z", "secret-xz"),
        ("/x/_h", "xh"),
        ("/_root_hidden", "secret-r"),
        ("/_sys/deep/k", "sd"),
        ("/_sys/other", "secret-so"),
    ] {
        env.put(&format!("/v2/keys{k}"), Some(&format!("value={v}")))
            .await;
    }
}

/// Asserts nothing of what `who` may not see appears in the answer.
#[track_caller]
fn assert_clean(r: &Resp, forbidden: &[&str], what: &str) {
    for f in forbidden {
        assert!(!r.body.contains(f), "{what}: body names {f:?}: {}", r.body);
        for (k, v) in &r.headers {
            assert!(
                !v.to_str().unwrap_or("").contains(f),
                "{what}: header {k} names {f:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_of_team_a() {
    let mut env = Env::new().await;
    populate_view(&mut env).await;
    let foreign = ["team-b", "team-ab", "secret", "/x", "_h", "_root", "_sys"];
    let a = env
        .req(
            "admin",
            "GET",
            "/v2/keys/team-a?recursive=true&sorted=true",
            None,
        )
        .await
        .json()["node"]
        .clone();
    let current = env.snapshot().await.1;

    // Recursive listing of the root: only /team-a's subtree, in full.
    for t in [
        "/v2/keys/?recursive=true",
        "/v2/keys/?recursive=true&sorted=true",
        "/v2/keys?recursive=true",
    ] {
        let r = env.req("team-a", "GET", t, None).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        assert_eq!(
            r.json(),
            json!({"action":"get","node":{"dir":true,"nodes":[a.clone()]}}),
            "{t}"
        );
        assert_eq!(r.header("x-etcd-index"), Some(current.as_str()), "{t}");
        assert_clean(&r, &foreign, t);
    }
    // One level: /team-a as a child, without its children.
    for t in ["/v2/keys/", "/v2/keys"] {
        let r = env.req("team-a", "GET", t, None).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        assert_eq!(
            r.json(),
            json!({"action":"get","node":{"dir":true,"nodes":[without_nodes(a.clone())]}}),
            "{t}"
        );
        assert_clean(&r, &foreign, t);
    }
    let r = env.req("team-a", "HEAD", "/v2/keys/", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    // Hidden names stay hidden in team-a's own listing too.
    let r = env.req("team-a", "GET", "/v2/keys/team-a", None).await;
    assert!(!r.body.contains("_h"), "{}", r.body);
    let r = env.req("team-a", "GET", "/v2/keys/team-a/_h", None).await;
    assert_eq!(r.json()["node"]["value"], json!("ha"));

    // Everything else: 403, whether it exists or not.
    for key in [
        "/team-b",
        "/team-b/k",
        "/team-b/nope",
        "/team-b/_h",
        "/team-ab",
        "/x",
        "/x/y",
        "/_root_hidden",
        "/_sys",
        "/nope",
    ] {
        for q in [
            "",
            "?recursive=true",
            "?wait=true&waitIndex=1",
            "?wait=true&recursive=true&waitIndex=1",
        ] {
            let r = env
                .req("team-a", "GET", &format!("/v2/keys{key}{q}"), None)
                .await;
            assert_denied(&r, &format!("team-a GET {key}{q}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_of_nested_prefix() {
    let mut env = Env::new().await;
    populate_view(&mut env).await;
    let foreign = ["team", "secret", "/x/z", "_h", "_root", "_sys/other"];
    let y = env
        .req(
            "admin",
            "GET",
            "/v2/keys/x/y?recursive=true&sorted=true",
            None,
        )
        .await
        .json()["node"]
        .clone();
    let sys_deep = env
        .req(
            "admin",
            "GET",
            "/v2/keys/_sys/deep?recursive=true&sorted=true",
            None,
        )
        .await
        .json()["node"]
        .clone();

    // /x is bare: key and dir only, children only toward /x/y.
    let r = env.req("deep", "GET", "/v2/keys/x", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"key":"/x","dir":true,"nodes":[without_nodes(y.clone())]}})
    );
    assert_clean(&r, &foreign, "deep GET /x");
    let r = env
        .req("deep", "GET", "/v2/keys/x?recursive=true", None)
        .await;
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"key":"/x","dir":true,"nodes":[y.clone()]}})
    );
    assert_clean(&r, &foreign, "deep GET /x recursive");
    // The root lists /x, not the hidden /_sys (though deep reads below it).
    let r = env.req("deep", "GET", "/v2/keys/", None).await;
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"dir":true,"nodes":[{"key":"/x","dir":true}]}})
    );
    assert_clean(&r, &foreign, "deep GET /");
    let r = env
        .req("deep", "GET", "/v2/keys/?recursive=true", None)
        .await;
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"dir":true,"nodes":[
            {"key":"/x","dir":true,"nodes":[y.clone()]}
        ]}})
    );
    assert_clean(&r, &foreign, "deep GET / recursive");
    // A hidden directory read by path is bare too.
    let r = env
        .req("deep", "GET", "/v2/keys/_sys?recursive=true", None)
        .await;
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"key":"/_sys","dir":true,"nodes":[sys_deep]}})
    );
    assert_clean(&r, &["team", "secret", "other"], "deep GET /_sys");
    let r = env.req("deep", "GET", "/v2/keys/x/_h", None).await;
    assert_eq!(r.json()["node"]["value"], json!("xh"));

    // A TTL on /x does not show on the bare node.
    env.put("/v2/keys/x?dir=true&prevExist=true&ttl=1000", None)
        .await;
    let r = env.req("deep", "GET", "/v2/keys/x", None).await;
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"key":"/x","dir":true,"nodes":[without_nodes(y.clone())]}})
    );

    // Beside the view: 403 whether it exists or not.
    for key in ["/x/z", "/x/q", "/x/q/r", "/team-a", "/_sys/other"] {
        let r = env
            .req("deep", "GET", &format!("/v2/keys{key}"), None)
            .await;
        assert_denied(&r, &format!("deep GET {key}"));
    }

    // /x with /x/y gone: still in the view through /x/_h (hidden: no nodes).
    env.delete("/v2/keys/x/y?recursive=true").await;
    let r = env.req("deep", "GET", "/v2/keys/x", None).await;
    assert_eq!(
        r.json(),
        json!({"action":"get","node":{"key":"/x","dir":true}})
    );
    // And with /x/_h gone too, /x is missing: the same 404 as when /x does
    // not exist at all, the cause naming the first component missing from
    // the view (not /x/y, which would tell /x exists).
    env.delete("/v2/keys/x/_h").await;
    // Nothing else in deep's view: not even the root.
    env.delete("/v2/keys/_sys?recursive=true").await;
    for (round, last) in [("/x holds only /x/z", false), ("/x does not exist", true)] {
        let idx = env.snapshot().await.1;
        for (t, cause) in [
            ("/v2/keys/x", "/x"),
            ("/v2/keys/x?recursive=true", "/x"),
            ("/v2/keys/x/y", "/x"),
            ("/v2/keys/x/y/k", "/x"),
            ("/v2/keys/", "/"),
        ] {
            let r = env.req("deep", "GET", t, None).await;
            let what = format!("deep GET {t} ({round})");
            assert_eq!(r.status, 404, "{what}: {r:?}");
            assert_eq!(
                r.json(),
                json!({"errorCode":100,"message":"Key not found","cause":cause,"index":idx.parse::<u64>().unwrap()}),
                "{what}"
            );
            assert_eq!(r.header("x-etcd-index"), Some(idx.as_str()), "{what}");
            assert_clean(&r, &foreign, &what);
            let h = env.req("deep", "HEAD", t, None).await;
            assert_eq!(h.status, 404, "HEAD: {what}");
        }
        if !last {
            env.delete("/v2/keys/x?recursive=true").await;
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Write without read

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_without_read() {
    let mut env = Env::new().await;
    let wo = "writer-only";

    let r = env.req(wo, "PUT", "/v2/keys/wo/k", Some("value=v1")).await;
    assert_eq!(r.status, 201, "{r:?}");
    let v = r.json();
    assert_eq!(v["action"], json!("set"));
    assert_eq!(v["node"]["value"], json!("v1"), "its own value is shown");
    assert!(v.get("prevNode").is_none(), "{v}");

    // Overwrite: the new value (sent), never the old one.
    let r = env.req(wo, "PUT", "/v2/keys/wo/k", Some("value=v2")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["node"]["value"], json!("v2"));
    assert!(v.get("prevNode").is_none(), "overwrite shows prevNode: {v}");
    assert!(!r.body.contains("v1"), "{}", r.body);

    // Refresh: the value was not sent, so it is not shown.
    for t in [
        "/v2/keys/wo/k?refresh=true&ttl=5",
        "/v2/keys/wo/k?refresh=true&ttl=5&prevExist=true",
    ] {
        let r = env.req(wo, "PUT", t, None).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        let v = r.json();
        assert!(v["node"].get("value").is_none(), "{t}: {v}");
        assert_eq!(v["node"]["ttl"], json!(5), "{t}: {v}");
        assert!(v.get("prevNode").is_none(), "{t}: {v}");
        assert!(!r.body.contains("v2"), "{t}: {}", r.body);
    }

    // A compare on the value is a read: refused, right or wrong value.
    let before = env.snapshot().await;
    for (m, t, body) in [
        ("PUT", "/v2/keys/wo/k?prevValue=x", Some("value=z")),
        ("PUT", "/v2/keys/wo/k?prevValue=v2", Some("value=z")),
        ("PUT", "/v2/keys/wo/k", Some("value=z&prevValue=v2")),
        ("PUT", "/v2/keys/wo/nope?prevValue=v2", Some("value=z")),
        ("DELETE", "/v2/keys/wo/k?prevValue=v2", None),
        ("DELETE", "/v2/keys/wo/k?prevValue=x", None),
    ] {
        let r = env.req(wo, m, t, body).await;
        assert_denied(&r, &format!("{m} {t} {body:?}"));
    }
    assert_eq!(
        env.snapshot().await,
        before,
        "a refused compare changed the store"
    );

    // prevIndex and prevExist stay allowed.
    let idx = index(&env.req("admin", "GET", "/v2/keys/wo/k", None).await);
    let r = env
        .req(
            wo,
            "PUT",
            &format!("/v2/keys/wo/k?prevIndex={idx}"),
            Some("value=v3"),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["action"], json!("compareAndSwap"));
    assert_eq!(v["node"]["value"], json!("v3"));
    assert!(v.get("prevNode").is_none(), "{v}");
    let r = env
        .req(wo, "PUT", "/v2/keys/wo/k?prevIndex=1", Some("value=q"))
        .await;
    assert_error(&r, 412, 101, None, "prevIndex mismatch");
    assert!(!r.body.contains("v3"), "{}", r.body);
    let r = env
        .req(wo, "PUT", "/v2/keys/wo/k?prevExist=false", Some("value=q"))
        .await;
    assert_error(&r, 412, 105, Some("/wo/k"), "prevExist=false on existing");
    let r = env
        .req(wo, "PUT", "/v2/keys/wo/k?prevExist=true", Some("value=v4"))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["action"], json!("update"));
    assert_eq!(v["node"]["value"], json!("v4"));
    assert!(v.get("prevNode").is_none(), "{v}");
    let r = env
        .req(wo, "PUT", "/v2/keys/wo/new?prevExist=true", Some("value=q"))
        .await;
    assert_error(&r, 404, 100, Some("/wo/new"), "prevExist=true on missing");

    // POST: the value it sent.
    let r = env.req(wo, "POST", "/v2/keys/wo/q", Some("value=p")).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["node"]["value"], json!("p"));

    // Directories: existence and type are not hidden from a writer.
    let r = env.req(wo, "PUT", "/v2/keys/wo/d?dir=true", None).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = env.req(wo, "PUT", "/v2/keys/wo/d", Some("value=x")).await;
    assert_error(&r, 403, 102, Some("/wo/d"), "PUT on a dir");

    // No read at all.
    for (m, t) in [
        ("GET", "/v2/keys/wo/k"),
        ("HEAD", "/v2/keys/wo/k"),
        ("GET", "/v2/keys/wo"),
        ("GET", "/v2/keys/wo?recursive=true"),
        ("GET", "/v2/keys/"),
        ("GET", "/v2/keys/wo/k?wait=true&waitIndex=1"),
        ("GET", "/v2/keys/wo?wait=true&recursive=true&waitIndex=1"),
        ("GET", "/v2/keys/?wait=true&recursive=true&waitIndex=1"),
    ] {
        let r = env.req(wo, m, t, None).await;
        if m == "HEAD" {
            assert_eq!(
                (r.status, r.header("x-etcd-index")),
                (403, Some("0")),
                "{t}"
            );
        } else {
            assert_denied(&r, &format!("writer-only {m} {t}"));
        }
    }

    // DELETE: no prevNode, no value.
    let r = env.req(wo, "DELETE", "/v2/keys/wo/k", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["action"], json!("delete"));
    assert!(v.get("prevNode").is_none(), "{v}");
    assert!(v["node"].get("value").is_none(), "{v}");
    assert!(!r.body.contains("v4"), "{}", r.body);
    let r = env.req(wo, "PUT", "/v2/keys/wo/k2", Some("value=w")).await;
    let idx = index(&r);
    let r = env
        .req(
            wo,
            "DELETE",
            &format!("/v2/keys/wo/k2?prevIndex={idx}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["action"], json!("compareAndDelete"));
    assert!(v.get("prevNode").is_none(), "{v}");
    assert!(v["node"].get("value").is_none(), "{v}");

    // The cause of a 100 never names a path above the allowing prefix:
    // etcd would say /p (the first missing component).
    for round in ["/p missing", "/p exists"] {
        for (m, t, body) in [
            ("DELETE", "/v2/keys/p/q/k", None),
            ("DELETE", "/v2/keys/p/q?recursive=true", None),
            ("PUT", "/v2/keys/p/q/k?prevExist=true", Some("value=1")),
            ("PUT", "/v2/keys/p/q/k?prevIndex=3", Some("value=1")),
        ] {
            let r = env.req(wo, m, t, body).await;
            assert_error(&r, 404, 100, Some("/p/q"), &format!("{m} {t} ({round})"));
        }
        env.put("/v2/keys/p/other", Some("value=o")).await;
    }
    // /p a file: the write below it fails without naming /p.
    env.delete("/v2/keys/p?recursive=true").await;
    env.put("/v2/keys/p", Some("value=file")).await;
    let r = env.req(wo, "PUT", "/v2/keys/p/q/k", Some("value=1")).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_ne!(r.json()["cause"], json!("/p"), "{r:?}");
    // Above the prefix: no write.
    let r = env.req(wo, "PUT", "/v2/keys/p", Some("value=x")).await;
    assert_denied(&r, "writer-only PUT /p");
    let r = env
        .req(wo, "DELETE", "/v2/keys/p?recursive=true", None)
        .await;
    assert_denied(&r, "writer-only DELETE /p");
}

// ---------------------------------------------------------------------------
// 5. Watches

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_filtering() {
    let mut env = Env::new().await;
    env.put("/v2/keys/team-a/seed", Some("value=1")).await;
    env.put("/v2/keys/team-b/seed", Some("value=1")).await;

    // A recursive watch on / is not woken by team-b, but by team-a.
    let mut w = env
        .watch("team-a", "/v2/keys/?wait=true&recursive=true")
        .await;
    assert_eq!(w.status, 200);
    env.put("/v2/keys/team-b/w", Some("value=secret-b")).await;
    env.put("/v2/keys/team-ab", Some("value=secret-ab")).await;
    env.delete("/v2/keys/team-b?recursive=true").await;
    assert_eq!(
        w.bytes_within(Duration::from_millis(300)).await,
        b"",
        "woken by a foreign write"
    );
    let ia = env.put("/v2/keys/team-a/w", Some("value=2")).await;
    let body = w.rest().await;
    assert!(
        !body.contains("team-b") && !body.contains("secret"),
        "{body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"action":"set","node":{"key":"/team-a/w","value":"2","modifiedIndex":ia,"createdIndex":ia}})
    );

    // waitIndex at a past foreign event: the first visible event after it.
    let i1 = env.put("/v2/keys/team-b/p", Some("value=secret-b")).await;
    env.put("/v2/keys/x/y/p", Some("value=secret-xy")).await;
    let i2 = env.put("/v2/keys/team-a/p", Some("value=2")).await;
    for t in [
        format!("/v2/keys/?wait=true&recursive=true&waitIndex={i1}"),
        format!("/v2/keys/team-a?wait=true&recursive=true&waitIndex={i1}"),
        format!("/v2/keys/team-a/p?wait=true&waitIndex={i1}"),
    ] {
        let r = env.req("team-a", "GET", &t, None).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        assert_eq!(
            r.json(),
            json!({"action":"set","node":{"key":"/team-a/p","value":"2","modifiedIndex":i2,"createdIndex":i2}}),
            "{t}"
        );
        assert!(!r.body.contains("team-b"), "{t}");
    }
    // Only foreign events after waitIndex: the watch waits for a visible one.
    let i3 = env.put("/v2/keys/team-b/q", Some("value=secret-b")).await;
    let mut w = env
        .watch(
            "team-a",
            &format!("/v2/keys/?wait=true&recursive=true&waitIndex={i3}"),
        )
        .await;
    assert_eq!(w.status, 200);
    assert_eq!(w.bytes_within(Duration::from_millis(200)).await, b"");
    env.put("/v2/keys/team-b/q2", Some("value=secret-b")).await;
    assert_eq!(w.bytes_within(Duration::from_millis(200)).await, b"");
    let i4 = env.put("/v2/keys/team-a/q", Some("value=3")).await;
    let v: Value = serde_json::from_str(&w.rest().await).unwrap();
    assert_eq!(v["node"]["modifiedIndex"], json!(i4));

    // A stream never carries team-b's events, and nothing is sent for them.
    let mut s = env
        .watch("team-a", "/v2/keys/?wait=true&recursive=true&stream=true")
        .await;
    assert_eq!(s.status, 200);
    for round in 0..3 {
        for k in ["team-b/s", "team-ab", "x/y/s", "team-b"] {
            let t = format!("/v2/keys/{k}{round}");
            env.put(&t, Some("value=secret")).await;
        }
        assert_eq!(
            s.bytes_within(Duration::from_millis(200)).await,
            b"",
            "stream sent bytes for foreign events"
        );
        env.put(&format!("/v2/keys/team-a/s{round}"), Some("value=ok"))
            .await;
        let line = s.line(LONG).await.expect("stream event");
        assert!(
            !line.contains("team-b") && !line.contains("secret"),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["node"]["key"], json!(format!("/team-a/s{round}")));
    }
    env.delete("/v2/keys/team-b?recursive=true").await;
    assert_eq!(s.bytes_within(Duration::from_millis(200)).await, b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bare_directory_events() {
    let mut env = Env::new().await;
    env.put("/v2/keys/x/y/k", Some("value=1")).await;
    env.put("/v2/keys/x/z", Some("value=secret")).await;
    env.put("/v2/keys/team-a/k", Some("value=1")).await;

    // A non-recursive watch above the view is not allowed.
    let r = env.req("deep", "GET", "/v2/keys/x?wait=true", None).await;
    assert_denied(&r, "deep non-recursive watch on /x");

    // Events below /x: only /x/y's.
    let w = env
        .watch("deep", "/v2/keys/x?wait=true&recursive=true")
        .await;
    assert_eq!(w.status, 200);
    env.put("/v2/keys/x/z2", Some("value=secret")).await;
    env.delete("/v2/keys/x/z2").await;
    let i = env.put("/v2/keys/x/y/k2", Some("value=2")).await;
    let v: Value = serde_json::from_str(&w.rest().await).unwrap();
    assert_eq!(
        v,
        json!({"action":"set","node":{"key":"/x/y/k2","value":"2","modifiedIndex":i,"createdIndex":i}})
    );

    // The delete of /x (in deep's view) arrives as a bare node; team-a's
    // recursive watch on / does not see it.
    let w = env
        .watch("deep", "/v2/keys/x?wait=true&recursive=true")
        .await;
    let wr = env
        .watch("deep", "/v2/keys/?wait=true&recursive=true")
        .await;
    let wk = env.watch("deep", "/v2/keys/x/y/k?wait=true").await;
    let mut wa = env
        .watch("team-a", "/v2/keys/?wait=true&recursive=true")
        .await;
    let idel = env.delete("/v2/keys/x?recursive=true").await;
    let bare = "{\"action\":\"delete\",\"node\":{\"key\":\"/x\",\"dir\":true},\"prevNode\":{\"key\":\"/x\",\"dir\":true}}\n";
    assert_eq!(w.rest().await, bare, "recursive watch on /x");
    assert_eq!(wr.rest().await, bare, "recursive watch on /");
    assert_eq!(wk.rest().await, bare, "watch on /x/y/k");
    assert_eq!(wa.bytes_within(Duration::from_millis(200)).await, b"");
    let ia = env.put("/v2/keys/team-a/after", Some("value=1")).await;
    let v: Value = serde_json::from_str(&wa.rest().await).unwrap();
    assert_eq!(v["node"]["modifiedIndex"], json!(ia), "{v}");
    // The same from history.
    let r = env
        .req(
            "deep",
            "GET",
            &format!("/v2/keys/x?wait=true&recursive=true&waitIndex={idel}"),
            None,
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, bare));
    let r = env
        .req(
            "team-a",
            "GET",
            &format!("/v2/keys/?wait=true&recursive=true&waitIndex={idel}"),
            None,
        )
        .await;
    assert_eq!(r.json()["node"]["modifiedIndex"], json!(ia), "{r:?}");

    // The expiry of a directory in the view: a bare expire event.
    env.put("/v2/keys/x?dir=true&ttl=1", None).await;
    env.put("/v2/keys/x/y/k", Some("value=1")).await;
    let w = env
        .watch("deep", "/v2/keys/x?wait=true&recursive=true")
        .await;
    let body = tokio::time::timeout(Duration::from_secs(8), w.rest())
        .await
        .expect("no expire event");
    assert_eq!(
        body,
        "{\"action\":\"expire\",\"node\":{\"key\":\"/x\",\"dir\":true},\"prevNode\":{\"key\":\"/x\",\"dir\":true}}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_endpoints() {
    let mut env = Env::new().await;
    for who in [
        "team-a",
        "team-b",
        "reader",
        "writer-only",
        "nobody",
        "deep",
    ] {
        for p in ["/v2/stats/store", "/v2/stats/self", "/v2/stats/leader"] {
            let r = env.req(who, "GET", p, None).await;
            assert_denied(&r, &format!("{who} GET {p}"));
        }
    }
    for p in ["/v2/stats/store", "/v2/stats/self", "/v2/stats/leader"] {
        let r = env.req("admin", "GET", p, None).await;
        assert_eq!(r.status, 200, "admin {p}: {r:?}");
        r.json();
    }
    for who in [
        "team-a",
        "team-b",
        "reader",
        "writer-only",
        "admin",
        "nobody",
        "deep",
    ] {
        for p in [
            "/version",
            "/health",
            "/v2/members",
            "/v2/members/leader",
            "/v2/machines",
        ] {
            let r = env.req(who, "GET", p, None).await;
            assert_eq!(r.status, 200, "{who} GET {p}: {r:?}");
        }
        for p in [
            "/v3/kv/range",
            "/v2/auth/users",
            "/metrics",
            "/debug/vars",
            "/v2/keysx",
        ] {
            let r = env.req(who, "GET", p, None).await;
            assert_eq!(r.status, 404, "{who} GET {p}: {r:?}");
        }
        for m in ["POST", "PUT", "DELETE"] {
            let r = env.req(who, m, "/v2/members", None).await;
            assert_eq!(r.status, 405, "{who} {m} /v2/members: {r:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// 6. Canonicalization

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
struct RawResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line) as
/// bytes over TLS as `cert`, with `Connection: close`; reads the answer.
async fn raw(kg: &Keygate, cert: &CertFiles, head: &str) -> RawResp {
    let connector = TlsConnector::from(tls_config(&kg.pki.ca, Some(cert), &[b"http/1.1"]));
    let tcp = TcpStream::connect(kg.addr()).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let req = format!("{head}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(LONG, tls.read(&mut chunk)).await {
            Err(_) => panic!(
                "{head:?}: no end of answer: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head_part, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{head:?}: not an HTTP answer: {text:?}"));
    let mut lines = head_part.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    RawResp {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonicalization() {
    let mut env = Env::new().await;
    env.put("/v2/keys/team-a/k", Some("value=a")).await;
    env.put("/v2/keys/team-b/k", Some("value=secret-b")).await;
    env.put("/v2/keys/team-a%252Fx", Some("value=pct")).await;
    env.put("/v2/keys/team-a%00", Some("value=nul")).await;
    let r = env.req("reader", "GET", "/v2/keys/", None).await;
    let keys: Vec<Value> = r.json()["node"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["key"].clone())
        .collect();
    assert!(keys.contains(&json!("/team-a%2Fx")), "{keys:?}");
    assert!(keys.contains(&json!("/team-a\u{0}")), "{keys:?}");

    // Not clean: the 301 etcd gives, before any decision, for everyone
    // alike; Location from the path and query, not from Host.
    let redirects = [
        ("/v2/keys/team-a/../team-b/k", "/v2/keys/team-b/k"),
        ("/v2/keys/team-a/%2e%2e/team-b/k", "/v2/keys/team-b/k"),
        ("/v2/keys/team-a/%2E%2E%2Fteam-b%2Fk", "/v2/keys/team-b/k"),
        ("/v2/keys/team-a%2F..%2Fteam-b", "/v2/keys/team-b"),
        (
            "/v2/keys/team-a%2f..%2f..%2fteam-b%2fk",
            "/v2/keys/team-b/k",
        ),
        ("/v2/keys/../../team-b/k", "/v2/keys/team-b/k"),
        ("/v2/keys/%2e%2e/team-b/k", "/v2/keys/team-b/k"),
        ("/v2/keys/team-a/./k", "/v2/keys/team-a/k"),
        ("/v2/keys/team-a/%2e/k", "/v2/keys/team-a/k"),
        ("/v2/keys//team-b/k", "/v2/keys/team-b/k"),
        ("/v2/keys/team-a//k", "/v2/keys/team-a/k"),
        ("/v2/keys/team-a%2F%2Fk", "/v2/keys/team-a/k"),
        ("/v2/keys/team-a/k//", "/v2/keys/team-a/k/"),
        (
            "/v2/keys/team-a/../team-b/k?recursive=true&x=%2F",
            "/v2/keys/team-b/k?recursive=true&x=%2F",
        ),
    ];
    for (path, loc) in redirects {
        for who in ["team-a", "nobody", "admin"] {
            for m in ["GET", "PUT", "DELETE", "HEAD"] {
                let before = env.snapshot().await;
                let counters = env.counters().await;
                let body = (m == "PUT").then_some("value=overwritten");
                let r = env.req(who, m, path, body).await;
                let what = format!("{who} {m} {path}");
                assert_eq!(r.status, 301, "{what}: {r:?}");
                assert_eq!(r.header("location"), Some(loc), "{what}");
                assert_eq!(env.counters().await, counters, "{what}: reached the store");
                assert_eq!(env.snapshot().await, before, "{what}: changed the store");
            }
        }
    }

    // Decided on exactly the key the store touches.
    let decided = [
        // (path, team-a may read, key)
        ("/v2/keys/team-a%2Fk", true, "/team-a/k"),
        ("/v2/keys/team-a/k/", true, "/team-a/k"),
        ("/v2/keys/team-a%2Fk%2F", true, "/team-a/k"),
        ("/v2/keys/team-a/", true, "/team-a"),
        ("/v2/keys/%74eam-a/k", true, "/team-a/k"),
        ("/v2/keys/team-b/k/", false, "/team-b/k"),
        ("/v2/keys/team-b%2Fk", false, "/team-b/k"),
        ("/v2/keys/team-b/", false, "/team-b"),
        // A literal %2F in the name: the key /team-a%2Fx, not under /team-a.
        ("/v2/keys/team-a%252Fx", false, "/team-a%2Fx"),
        ("/v2/keys/team-a%252Fnope", false, "/team-a%2Fnope"),
        ("/v2/keys/team-a%252F..%252Fteam-a%252Fk", false, ""),
        // NUL: /team-a\0 is not under /team-a; /team-a/k\0 is.
        ("/v2/keys/team-a%00", false, "/team-a\u{0}"),
        ("/v2/keys/team-a%00/k", false, "/team-a\u{0}/k"),
        ("/v2/keys/team-b/k%00", false, "/team-b/k\u{0}"),
        ("/v2/keys/team-a/k%00", true, "/team-a/k\u{0}"),
    ];
    for (path, allowed, key) in decided {
        let r = env.req("team-a", "GET", path, None).await;
        let what = format!("team-a GET {path}");
        if allowed {
            assert!(r.status == 200 || r.status == 404, "{what}: {r:?}");
            let v = r.json();
            let got = if r.status == 200 {
                v["node"]["key"].clone()
            } else {
                v["cause"].clone()
            };
            assert_eq!(got, json!(key), "{what}");
        } else {
            assert_denied(&r, &what);
        }
        // Writes too, and a denied write changes nothing.
        let before = env.snapshot().await;
        let r = env.req("team-a", "PUT", path, Some("value=w")).await;
        if allowed {
            assert!(
                r.status == 200 || r.status == 201 || r.status == 403,
                "PUT {what}: {r:?}"
            );
            if r.status != 403 {
                assert_eq!(r.json()["node"]["key"], json!(key), "PUT {what}");
            } else {
                // PUT on a directory: etcd's 102, not a denial.
                assert_eq!(r.json()["errorCode"], json!(102), "PUT {what}");
            }
        } else {
            assert_denied(&r, &format!("PUT {what}"));
            assert_eq!(
                env.snapshot().await,
                before,
                "PUT {what}: changed the store"
            );
        }
    }
    // The encoded names do not show in team-a's view.
    let r = env
        .req("team-a", "GET", "/v2/keys/?recursive=true", None)
        .await;
    assert!(
        !r.body.contains("%2F") && !r.body.contains("team-b"),
        "{}",
        r.body
    );
    let v = r.json();
    let top: Vec<&Value> = v["node"]["nodes"].as_array().unwrap().iter().collect();
    assert_eq!(top.len(), 1, "{v}");
    assert_eq!(top[0]["key"], json!("/team-a"));

    // Absolute-form targets: decided on the path only.
    let a = env.ids.get("team-a").clone();
    let r = raw(
        &env.kg,
        &a,
        "GET https://evil/v2/keys/team-b/k HTTP/1.1\r\nHost: evil",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (403, DENY), "{r:?}");
    assert_eq!(r.header("x-etcd-index"), Some("0"));
    let r = raw(
        &env.kg,
        &a,
        "GET https://127.0.0.1/v2/keys/team-b/k HTTP/1.1\r\nHost: 127.0.0.1",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (403, DENY), "{r:?}");
    let r = raw(
        &env.kg,
        &a,
        "GET https://evil/v2/keys/team-a/k HTTP/1.1\r\nHost: evil",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["node"]["value"],
        json!("w"),
        "the value team-a wrote above"
    );
    let r = raw(
        &env.kg,
        &a,
        "GET https://evil/v2/keys/team-a/../team-b/k HTTP/1.1\r\nHost: evil",
    )
    .await;
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("/v2/keys/team-b/k"));
    let r = raw(
        &env.kg,
        &a,
        "GET https://evil/v2/stats/store HTTP/1.1\r\nHost: evil",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (403, DENY), "{r:?}");
    let before = env.snapshot().await;
    let r = raw(
        &env.kg,
        &a,
        "DELETE https://evil/v2/keys/team-b/k HTTP/1.1\r\nHost: evil",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (403, DENY), "{r:?}");
    assert_eq!(env.snapshot().await, before);

    // Host changes nothing.
    let plain = env.req("team-a", "GET", "/v2/keys/team-a/k", None).await;
    for host in ["other", "evil:2379", "team-b"] {
        let r = raw(
            &env.kg,
            &a,
            &format!("GET /v2/keys/team-a/k HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, plain.body.as_str()),
            "Host: {host}"
        );
        let r = raw(
            &env.kg,
            &a,
            &format!("GET /v2/keys/team-b/k HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (403, DENY), "Host: {host}");
        let r = raw(
            &env.kg,
            &a,
            &format!("GET /v2/keys/team-a/../team-b/k HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!(
            r.header("location"),
            Some("/v2/keys/team-b/k"),
            "Host: {host}"
        );
    }

    // Method-override headers are ignored.
    let overrides = [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ];
    for h in overrides {
        let r = env
            .req_h("team-a", "GET", "/v2/keys/team-a/k", None, &[(h, "DELETE")])
            .await;
        assert_eq!(r.status, 200, "{h}: {r:?}");
        assert_eq!(r.json()["action"], json!("get"), "{h}");
        let r = env
            .req_h("team-a", "GET", "/v2/keys/team-b/k", None, &[(h, "DELETE")])
            .await;
        assert_denied(&r, h);
        let before = env.snapshot().await;
        let r = env
            .req_h(
                "team-a",
                "PUT",
                "/v2/keys/team-b/k",
                Some("value=x"),
                &[(h, "GET")],
            )
            .await;
        assert_denied(&r, h);
        let r = env
            .req_h("team-a", "DELETE", "/v2/keys/team-b/k", None, &[(h, "GET")])
            .await;
        assert_denied(&r, h);
        let r = env
            .req_h(
                "reader",
                "POST",
                "/v2/keys/team-b",
                Some("value=x"),
                &[(h, "GET")],
            )
            .await;
        assert_denied(&r, h);
        assert_eq!(env.snapshot().await, before, "{h}: changed the store");
    }
    let r = env.req("team-a", "GET", "/v2/keys/team-a/k", None).await;
    assert_eq!(
        r.json()["node"]["value"],
        json!("w"),
        "team-a/k still there"
    );
}

/// SPEC §3.2: a watch receives "the delete/expire event of a directory that
/// was in its view just before the event" — not that of a directory above
/// its prefixes that held nothing it may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_skips_removal_of_directory_outside_view() {
    let mut env = Env::new().await;
    let mut failures = Vec::new();

    // Deleted: /x holds only /x/z, so /x is not in deep's view.
    env.put("/v2/keys/x/z", Some("value=secret")).await;
    let mut w = env
        .watch("deep", "/v2/keys/x?wait=true&recursive=true")
        .await;
    assert_eq!(w.status, 200);
    let idel = env.delete("/v2/keys/x?recursive=true").await;
    let got = w.bytes_within(Duration::from_millis(300)).await;
    if !got.is_empty() {
        failures.push(format!(
            "live watch: DELETE /x (outside the view) was sent: {}",
            String::from_utf8_lossy(&got)
        ));
    }
    let i = env.put("/v2/keys/x/y/k", Some("value=1")).await;
    if got.is_empty() {
        let v: Value = serde_json::from_str(&w.rest().await).unwrap();
        assert_eq!(v["node"]["modifiedIndex"], json!(i), "{v}");
    }
    let r = env
        .req(
            "deep",
            "GET",
            &format!("/v2/keys/x?wait=true&recursive=true&waitIndex={idel}"),
            None,
        )
        .await;
    if r.json()["node"]["modifiedIndex"] != json!(i) {
        failures.push(format!(
            "history (waitIndex={idel}): expected the event at {i}, got {}",
            r.body.trim_end()
        ));
    }

    // Expired: /x with a TTL, holding only /x/z.
    env.delete("/v2/keys/x?recursive=true").await;
    env.put("/v2/keys/x?dir=true&ttl=1", None).await;
    env.put("/v2/keys/x/z", Some("value=secret")).await;
    let mut w = env
        .watch("deep", "/v2/keys/?wait=true&recursive=true")
        .await;
    // The expiry happens within about two seconds.
    let got = w.bytes_within(Duration::from_secs(3)).await;
    if !got.is_empty() {
        failures.push(format!(
            "live watch: expiry of /x (outside the view) was sent: {}",
            String::from_utf8_lossy(&got)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Random operations by several identities at once

/// Who acts in `random_operations_leak_nothing`: the keys it names (its
/// own and `SHARED`), and its marks. Every value it writes holds its
/// `value` mark and every key of its own its `key` mark, so another's mark
/// in an answer is a leak. Admin writes only where none of the others may
/// read.
struct Actor {
    who: &'static str,
    value: &'static str,
    key: &'static str,
    own: &'static [&'static str],
}

const ACTORS: &[Actor] = &[
    Actor {
        who: "team-a",
        value: "av",
        key: "ak",
        own: &[
            "/team-a/ak1",
            "/team-a/ak2",
            "/team-a/d/ak3",
            "/team-a/_ak4",
            "/team-a/d",
        ],
    },
    Actor {
        who: "team-b",
        value: "bv",
        key: "bk",
        own: &[
            "/team-b/bk1",
            "/team-b/bk2",
            "/team-b/d/bk3",
            "/team-b/_bk4",
            "/team-b/d",
        ],
    },
    Actor {
        who: "deep",
        value: "dv",
        key: "dk",
        own: &["/x/y/dk1", "/x/y/d/dk2", "/x/y", "/x/_h/dk3"],
    },
    Actor {
        who: "writer-only",
        value: "wv",
        key: "wk",
        own: &["/wo/wk1", "/wo/d/wk2", "/p/q/wk3", "/wo"],
    },
    Actor {
        who: "admin",
        value: "sv",
        key: "sk",
        own: &[
            "/x/sk1",
            "/x/skd/sk2",
            "/_sys/sk3",
            "/team-ab/sk4",
            "/_sk5",
            "/wo/sk6",
            "/p/q/sk7",
        ],
    },
];

/// Keys every identity names: above, beside and inside every prefix.
const SHARED: &[&str] = &[
    "/",
    "/team-a",
    "/team-b",
    "/team-ab",
    "/x",
    "/x/y",
    "/x/_h",
    "/_sys",
    "/_sys/deep",
    "/wo",
    "/wo/k",
    "/p",
    "/p/q",
    "/p/q/k",
    "/team-a/k",
    "/team-b/k",
    "/x/y/k",
    "/nope",
];

/// One of `options`, or none, `none` times in `options.len() + none`.
fn one_of(rng: &mut Rng, options: &[&str], none: usize) -> Option<String> {
    options
        .get(rng.below(options.len() + none))
        .map(|o| o.to_string())
}

/// A random request of `actor` at step `n`: method (`WATCH` for a GET with
/// `wait`), target, body, and the value it sends.
fn random_request(
    rng: &mut Rng,
    actor: &Actor,
    n: usize,
) -> (&'static str, String, Option<String>, Option<String>) {
    // Admin writes only its own keys (nobody else may read them).
    let mut key = if actor.who == "admin" || rng.chance(60) {
        rng.pick(actor.own)
    } else {
        rng.pick(SHARED)
    };
    let value = format!("{}{n}", actor.value);
    // The conditions a write may carry: an earlier value of its own, an
    // index up to the current one.
    let compare = [
        format!("prevValue={}{}", actor.value, rng.below(n + 1)),
        format!("prevIndex={}", rng.below(n + 2)),
    ];
    let mut q: Vec<String> = Vec::new();
    let (method, body) = match rng.below(if actor.who == "admin" { 40 } else { 110 }) {
        0..=29 => {
            let options = [
                "prevExist=false",
                "prevExist=true",
                &compare[0],
                &compare[1],
                "ttl=1000",
            ];
            q.extend(one_of(rng, &options, 3));
            ("PUT", Some(format!("value={value}")))
        }
        30..=34 => {
            q.push("dir=true".into());
            ("PUT", None)
        }
        35..=39 => ("POST", Some(format!("value={value}"))),
        40..=54 => {
            let options = ["recursive=true", "dir=true", &compare[0], &compare[1]];
            q.extend(one_of(rng, &options, 2));
            ("DELETE", None)
        }
        55..=59 => ("HEAD", None),
        60..=93 => {
            if rng.chance(50) {
                q.push("recursive=true".into());
            }
            if rng.chance(50) {
                q.push("sorted=true".into());
            }
            ("GET", None)
        }
        _ => {
            // Most watches above the prefixes, where others' events pass.
            if rng.chance(60) {
                key = rng.pick(&["/", "/x", "/_sys", "/p", "/team-a", "/team-b"]);
            }
            q.push("wait=true".into());
            q.push(format!("waitIndex={}", 1 + rng.below(n + 1)));
            if rng.chance(50) {
                q.push("recursive=true".into());
            }
            ("WATCH", None)
        }
    };
    let target = format!(
        "/v2/keys{key}{}{}",
        if q.is_empty() { "" } else { "?" },
        q.join("&")
    );
    let sent = body.as_ref().map(|_| value);
    (method, target, body, sent)
}

/// Identities write, read, list and watch at random, interleaved, over
/// keys above, beside and inside each other's prefixes (SPEC §3.2, §7):
/// no answer to one identity shows another's keys or values, a denial is
/// always the exact 403, nothing answers 5xx, and a client that may write
/// but not read sees no stored value (its own earlier ones included) and
/// no `prevNode`. `KEYGATE_ISOLATION_SEEDS=3,4` runs other seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_leak_nothing() {
    for seed in seeds("KEYGATE_ISOLATION_SEEDS", "1,2") {
        let mut env = Env::new().await;
        let mut rng = Rng::new(seed);
        let (mut shown, mut denied) = (0, 0);
        for n in 0..600 {
            let actor = &ACTORS[rng.below(ACTORS.len())];
            let (method, target, body, sent) = random_request(&mut rng, actor, n);
            let what = format!(
                "seed {seed} step {n}: {} {method} {target} {body:?}",
                actor.who
            );
            let r = if method == "WATCH" {
                // History answers at once; a watch still waiting after
                // 200 ms is dropped (nothing it could show has come).
                let mut w = env.watch(actor.who, &target).await;
                let line = w.line(Duration::from_millis(200)).await;
                Resp {
                    status: w.status,
                    headers: w.headers.clone(),
                    body: line.unwrap_or_default(),
                }
            } else {
                env.req(actor.who, method, &target, body.as_deref()).await
            };
            assert!(r.status < 500, "{what}: {r:?}");
            // etcd's own 403s (102 "Not a file", 108 "Directory not
            // empty") are answers; a denial is the 110.
            let denial =
                r.status == 403 && (method == "HEAD" || r.body.contains("\"errorCode\":110"));
            if denial {
                if method == "HEAD" {
                    assert_eq!(r.header("x-etcd-index"), Some("0"), "{what}");
                    assert_eq!(r.body, "", "{what}");
                } else {
                    assert_denied(&r, &what);
                }
                denied += 1;
                continue;
            }
            if actor.who == "admin" {
                continue;
            }
            shown += 1;
            let mut forbidden: Vec<&str> = ACTORS
                .iter()
                .filter(|a| a.who != actor.who)
                .flat_map(|a| [a.value, a.key])
                .collect();
            let mut seen = r.clone();
            if actor.who == "writer-only" {
                if let Some(v) = &sent {
                    seen.body = seen.body.replace(&format!("\"value\":\"{v}\""), "");
                }
                forbidden.extend(["\"value\"", "prevNode", actor.value]);
            }
            assert_clean(&seen, &forbidden, &what);
        }
        // Both kinds of answer came up often.
        assert!(
            shown > 200 && denied > 50,
            "seed {seed}: {shown} shown, {denied} denied"
        );
    }
}
