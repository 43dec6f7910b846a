//! Abuse: malformed, oversized and deep requests, vanishing clients, and
//! bad TLS peers. No request may panic, hang or corrupt the server; each
//! gets etcd's answer where etcd has one (SPEC §7, "Malformed input ... gets
//! a clear error and never crashes the process or corrupts data"). After
//! each abuse the server process must still be alive and answer a normal
//! GET with the data written before.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{seeds, tls12_config, tls_config, CertFiles, Client, Keygate, Pki, Resp, Rng};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A keygate with one key written first (`/sentinel` = "alive", index 1),
/// and a client certificate it accepts.
struct Server {
    kg: Keygate,
    cert: CertFiles,
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keygate process: {:?}", self.kg.child.try_wait());
            for l in self.kg.log.lock().unwrap().iter() {
                eprintln!("keygate log: {l}");
            }
        }
    }
}

impl Server {
    async fn start(server_extra: &str) -> Server {
        let pki = Arc::new(Pki::new());
        let kg = Keygate::start(pki.clone(), server_extra);
        let cert = pki.client("client");
        let s = Server { kg, cert };
        let mut c = s.client().await;
        let r = c.req("PUT", "/v2/keys/sentinel", Some("value=alive")).await;
        assert_eq!(r.status, 201, "{r:?}");
        s
    }

    fn addr(&self) -> String {
        self.kg.addr()
    }

    fn ca(&self) -> &std::path::Path {
        &self.kg.pki.ca
    }

    async fn client(&self) -> Client {
        Client::h1(&self.addr(), self.ca(), &self.cert).await
    }

    /// The process is alive, and a new connection reads `/sentinel` as it
    /// was written.
    async fn assert_alive(&mut self) {
        assert!(
            self.kg.child.try_wait().unwrap().is_none(),
            "keygate exited; log: {:?}",
            self.kg.log.lock().unwrap()
        );
        let r = tokio::time::timeout(Duration::from_secs(10), async {
            let mut c = self.client().await;
            c.req("GET", "/v2/keys/sentinel", None).await
        })
        .await
        .expect("keygate did not answer a normal GET within 10 s");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.json(),
            json!({"action": "get", "node": {"key": "/sentinel", "value": "alive", "createdIndex": 1, "modifiedIndex": 1}})
        );
    }
}

/// etcd's 4xx error from a parameter: status 400, `X-Etcd-Index: 0`, the
/// exact body.
#[track_caller]
fn param_error(r: &Resp, code: u64, message: &str, cause: &str) {
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(r.header("x-etcd-index"), Some("0"), "{r:?}");
    assert!(r.body.ends_with('\n'), "{r:?}");
    assert_eq!(
        r.json(),
        json!({"errorCode": code, "message": message, "cause": cause, "index": 0}),
        "{r:?}"
    );
}

/// A TLS connection with the given client certificate (or none) and TLS
/// versions.
async fn tls_connect(
    addr: &str,
    ca: &std::path::Path,
    cert: Option<&CertFiles>,
    tls12_only: bool,
) -> std::io::Result<TlsStream<TcpStream>> {
    let cfg = if tls12_only {
        tls12_config(ca, cert)
    } else {
        tls_config(ca, cert, &[b"http/1.1"])
    };
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Asserts that a client presenting `cert` gets no HTTP answer: with TLS
/// 1.2 the handshake fails; with TLS 1.3 (where the client finishes its
/// side first) the server's alert ends the connection before any byte of
/// HTTP arrives.
async fn assert_refused(s: &Server, cert: Option<&CertFiles>) {
    let e = tls_connect(&s.addr(), s.ca(), cert, true)
        .await
        .expect_err("TLS 1.2 handshake accepted a refused client");
    assert!(
        e.to_string().to_ascii_lowercase().contains("alert"),
        "TLS 1.2 refusal should be the server's alert: {e}"
    );

    let outcome = match tls_connect(&s.addr(), s.ca(), cert, false).await {
        Err(e) => format!("handshake failed: {e}"),
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET /v2/keys/sentinel HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
                .await
                .expect("refused TLS 1.3 client left hanging");
            assert!(
                buf.is_empty(),
                "refused client got bytes: {:?}",
                String::from_utf8_lossy(&buf)
            );
            format!("{read:?}")
        }
    };
    assert!(
        outcome.to_ascii_lowercase().contains("alert"),
        "refusal should be a TLS alert: {outcome}"
    );
    // The convenience client sees the same: no answer.
    if let Ok(mut c) = Client::try_connect(&s.addr(), s.ca(), cert, false).await {
        assert!(
            c.send("GET", "/v2/keys/sentinel", None, &[]).await.is_err(),
            "a refused client got an HTTP answer"
        );
    }
}

/// Writes `request` on a fresh TLS connection and reads the answer until
/// the server closes it (the request should say `Connection: close`).
async fn raw_exchange(s: &Server, request: &[u8]) -> String {
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
        .await
        .expect("server did not answer and close within 10 s");
    String::from_utf8_lossy(&buf).into_owned()
}

/// Splits a raw HTTP/1.1 answer into status, lower-cased headers and body.
fn parse_raw(raw: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_percent_encoding_in_path_is_a_plain_400() {
    let mut s = Server::start("").await;
    for target in [
        "/v2/keys/%zz",
        "/v2/keys/a%",
        "/v2/keys/a%2",
        "/v2/keys/%g0/b",
    ] {
        let raw = raw_exchange(
            &s,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        let (status, headers, body) = parse_raw(&raw);
        assert_eq!(status, 400, "{target}: {raw:?}");
        let h = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            h("content-type"),
            Some("text/plain; charset=utf-8"),
            "{raw:?}"
        );
        assert_eq!(h("x-etcd-index"), None, "{raw:?}");
        assert_eq!(body.trim_end(), "400 Bad Request", "{raw:?}");
        // Same through the ordinary client (keep-alive).
        let mut c = s.client().await;
        let r = c.req("PUT", target, Some("value=x")).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.body.trim_end(), "400 Bad Request", "{r:?}");
    }
    s.assert_alive().await;
}

// Expectation recorded from etcd 3.4.23 (Debian etcd-server, --enable-v2): tests/differential/etcd-3.4.expected.txt, sequence 'malformed query and form encoding'
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_percent_encoding_in_query_and_body_is_210() {
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    let zz = "invalid URL escape \"%zz\"";
    let r = c.req("PUT", "/v2/keys/d084/a?value=%zz", None).await;
    param_error(&r, 210, "Invalid POST form", zz);
    let r = c.req("PUT", "/v2/keys/d084/b", Some("value=%zz")).await;
    param_error(&r, 210, "Invalid POST form", zz);
    let r = c.req("GET", "/v2/keys/d084/a?%zz", None).await;
    param_error(&r, 210, "Invalid POST form", zz);
    let r = c.req("PUT", "/v2/keys/d084/c?value=ok&bad=%", None).await;
    param_error(&r, 210, "Invalid POST form", "invalid URL escape \"%\"");
    let r = c
        .req("POST", "/v2/keys/d084/q", Some("value=ok&ttl=%zz"))
        .await;
    param_error(&r, 210, "Invalid POST form", zz);
    let r = c
        .req("DELETE", "/v2/keys/sentinel?prevValue=%zz", None)
        .await;
    param_error(&r, 210, "Invalid POST form", zz);
    // Nothing was written.
    let r = c.req("GET", "/v2/keys/d084?recursive=true", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"cause": "/d084", "errorCode": 100, "index": 1, "message": "Key not found"})
    );
    s.assert_alive().await;
}

// SPEC §3.2: the key is percent-decoded once and must be valid UTF-8, else
// 400, errorCode 209, cause `key is not valid UTF-8`; values likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_key_and_value_is_209() {
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    for (method, target, body) in [
        ("GET", "/v2/keys/%ff", None),
        ("PUT", "/v2/keys/%ff", Some("value=x")),
        ("DELETE", "/v2/keys/a/%c3%28", None),
        ("POST", "/v2/keys/%ed%a0%80", Some("value=x")),
        ("GET", "/v2/keys/%ff?wait=true", None),
    ] {
        let r = c.req(method, target, body).await;
        param_error(&r, 209, "Invalid field", "key is not valid UTF-8");
    }
    let r = c.req("PUT", "/v2/keys/v", Some("value=%ff")).await;
    param_error(&r, 209, "Invalid field", "value is not valid UTF-8");
    let r = c.req("PUT", "/v2/keys/v?value=a%c3", None).await;
    param_error(&r, 209, "Invalid field", "value is not valid UTF-8");
    let r = c
        .req("PUT", "/v2/keys/sentinel?prevValue=%ff", Some("value=x"))
        .await;
    param_error(&r, 209, "Invalid field", "prevValue is not valid UTF-8");
    let r = c.req("GET", "/v2/keys/v", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    s.assert_alive().await;
}

// Expectations recorded from etcd 3.4.23 (Debian etcd-server, --enable-v2): tests/differential/etcd-3.4.expected.txt, sequences 'bad params on get', 'bad params on put', 'bad params on delete and post', 'refresh error cases', 'cas empty and zero params', 'head and post and put with wait params'
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_etcds_errors() {
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    let field = "Invalid field";
    let ttl = "The given TTL in POST form is not a number";
    let index = "The given index in POST form is not a number";
    for (method, target, body, code, message, cause) in [
        (
            "GET",
            "/v2/keys/sentinel?recursive=maybe",
            None,
            209,
            field,
            "invalid value for \"recursive\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?recursive=",
            None,
            209,
            field,
            "invalid value for \"recursive\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?sorted=yes",
            None,
            209,
            field,
            "invalid value for \"sorted\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?wait=maybe",
            None,
            209,
            field,
            "invalid value for \"wait\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?stream=maybe",
            None,
            209,
            field,
            "invalid value for \"stream\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?quorum=maybe",
            None,
            209,
            field,
            "invalid value for \"quorum\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?waitIndex=-1",
            None,
            203,
            index,
            "invalid value for \"waitIndex\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?wait=true&waitIndex=x",
            None,
            203,
            index,
            "invalid value for \"waitIndex\"",
        ),
        (
            "GET",
            "/v2/keys/sentinel?prevExist=maybe",
            None,
            209,
            field,
            "invalid value for prevExist",
        ),
        (
            "GET",
            "/v2/keys/sentinel?refresh=maybe",
            None,
            209,
            field,
            "invalid value for refresh",
        ),
        (
            "GET",
            "/v2/keys/sentinel?ttl=abc",
            None,
            202,
            ttl,
            "invalid value for \"ttl\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?ttl=-1",
            Some("value=x"),
            202,
            ttl,
            "invalid value for \"ttl\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?ttl=18446744073709551616",
            Some("value=x"),
            202,
            ttl,
            "invalid value for \"ttl\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?dir=",
            Some("value=x"),
            209,
            field,
            "invalid value for \"dir\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?noValueOnSuccess=maybe",
            Some("value=x"),
            209,
            field,
            "invalid value for \"noValueOnSuccess\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?prevIndex=",
            Some("value=x"),
            203,
            index,
            "invalid value for \"prevIndex\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?prevIndex=-1",
            Some("value=x"),
            203,
            index,
            "invalid value for \"prevIndex\"",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?prevValue=",
            Some("value=x"),
            201,
            "PrevValue is Required in POST form",
            "\"prevValue\" cannot be empty",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?wait=true",
            Some("value=x"),
            209,
            field,
            "\"wait\" can only be used with GET requests",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?refresh=true&ttl=5",
            Some("value=x"),
            211,
            "Value provided on refresh",
            "A value was provided on a refresh",
        ),
        (
            "PUT",
            "/v2/keys/sentinel?refresh=true",
            None,
            212,
            "A TTL must be provided on refresh",
            "No TTL value set",
        ),
        (
            "DELETE",
            "/v2/keys/sentinel?recursive=maybe",
            None,
            209,
            field,
            "invalid value for \"recursive\"",
        ),
        (
            "DELETE",
            "/v2/keys/sentinel?prevIndex=-5",
            None,
            203,
            index,
            "invalid value for \"prevIndex\"",
        ),
        (
            "DELETE",
            "/v2/keys/sentinel?wait=true",
            None,
            209,
            field,
            "\"wait\" can only be used with GET requests",
        ),
        (
            "POST",
            "/v2/keys/q?dir=maybe",
            Some("value=x"),
            209,
            field,
            "invalid value for \"dir\"",
        ),
        (
            "POST",
            "/v2/keys/q?prevIndex=x",
            Some("value=x"),
            203,
            index,
            "invalid value for \"prevIndex\"",
        ),
    ] {
        let r = c.req(method, target, body).await;
        param_error(&r, code, message, cause);
    }
    s.assert_alive().await;
}

// etcd accepts values up to its 1.5 MiB request limit; a 1 MiB value is
// stored and read back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_value_is_accepted_and_read_back() {
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    let value: String = (0..1 << 20)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let r = c
        .req("PUT", "/v2/keys/big", Some(&format!("value={value}")))
        .await;
    assert_eq!(
        r.status,
        201,
        "status {} {}",
        r.status,
        &r.body[..r.body.len().min(300)]
    );
    let v = r.json();
    assert_eq!(v["node"]["value"].as_str().map(str::len), Some(1 << 20));
    let r = c.req("GET", "/v2/keys/big", None).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(
        v["node"]["value"] == value.as_str(),
        "value read back differs"
    );
    assert_eq!(v["node"]["modifiedIndex"], 2);
    s.assert_alive().await;
}

// SPEC §3 `max_body_bytes = 1572864` (1.5 MiB, as etcd): a larger body is
// refused with an error, nothing is written, and the server lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_one_and_a_half_mib_is_refused() {
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    let body = format!("value={}", "b".repeat(1_572_864));
    let resp = c.send("PUT", "/v2/keys/huge", Some(&body), &[]).await;
    match resp {
        Ok(resp) => {
            let r = common::read(resp).await;
            assert_eq!(r.status, 413, "{r:?}");
        }
        Err(e) => panic!("the oversized body got no answer: {e}"),
    }
    let mut c = s.client().await;
    let r = c.req("GET", "/v2/keys/huge", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"cause": "/huge", "errorCode": 100, "index": 1, "message": "Key not found"})
    );
    s.assert_alive().await;
}

/// Checks, without recursion, that `body` is balanced JSON text (strings,
/// objects, arrays); returns the deepest nesting.
fn balanced_json_depth(body: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for b in body.bytes() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.checked_sub(1).expect("unbalanced JSON"),
            _ => {}
        }
    }
    assert!(!in_str && depth == 0, "JSON not closed");
    max
}

// SPEC §3.2: "a key 8,000 levels deep can be written, listed recursively,
// deleted ... without harm."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_eight_thousand_levels_deep() {
    const LEVELS: usize = 8000;
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    let key = "/a".repeat(LEVELS);
    let r = c
        .req("PUT", &format!("/v2/keys{key}"), Some("value=deep"))
        .await;
    assert_eq!(r.status, 201, "{}", &r.body[..r.body.len().min(300)]);
    assert_eq!(
        r.json(),
        json!({"action": "set", "node": {"key": key, "value": "deep", "modifiedIndex": 2, "createdIndex": 2}})
    );
    let r = c.req("GET", &format!("/v2/keys{key}"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["node"]["value"], "deep");

    // The listing nests 8,000 nodes: checked without a recursive parser.
    let r = c.req("GET", "/v2/keys/a?recursive=true", None).await;
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    assert_eq!(r.header("x-etcd-index"), Some("2"));
    assert!(
        r.body.starts_with("{\"action\":\"get\""),
        "{}",
        &r.body[..200]
    );
    assert!(r.body.ends_with("}\n"));
    let depth = balanced_json_depth(&r.body);
    assert!(depth >= 2 * LEVELS, "listing nests only {depth} levels");
    assert_eq!(r.body.matches("\"key\":\"/a").count(), LEVELS);
    assert_eq!(r.body.matches("\"dir\":true").count(), LEVELS - 1);
    assert!(r.body.contains(&format!("\"key\":\"{key}\"")));
    assert!(r.body.contains("\"value\":\"deep\""));

    let r = c.req("DELETE", "/v2/keys/a?recursive=true", None).await;
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    assert_eq!(
        r.json(),
        json!({"action": "delete",
               "node": {"key": "/a", "dir": true, "modifiedIndex": 3, "createdIndex": 2},
               "prevNode": {"key": "/a", "dir": true, "modifiedIndex": 2, "createdIndex": 2}})
    );
    let r = c.req("GET", &format!("/v2/keys{key}"), None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"cause": "/a", "errorCode": 100, "index": 3, "message": "Key not found"})
    );
    s.assert_alive().await;
}

async fn watchers(c: &mut Client) -> u64 {
    let r = c.req("GET", "/v2/stats/store", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: Value = r.json();
    v["watchers"].as_u64().expect("watchers")
}

// A client that vanishes mid-watch frees its watcher at once: 200 watch
// connections dropped, `/v2/stats/store` shows `"watchers":0` within a
// second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_watch_clients_are_cleaned_up() {
    const N: usize = 200;
    let mut s = Server::start("").await;
    let mut c = s.client().await;
    let mut open = Vec::new();
    for i in 0..N {
        let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
            .await
            .unwrap();
        let target = if i % 2 == 0 {
            "/v2/keys/w?wait=true".to_string()
        } else {
            format!("/v2/keys/?wait=true&recursive=true&stream={}", i % 4 == 1)
        };
        tls.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        // The head of a live watch is sent at once.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut byte))
                .await
                .expect("watch head did not arrive")
                .unwrap();
            assert_eq!(n, 1, "connection closed before the watch head");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        open.push(tls);
    }
    assert_eq!(watchers(&mut c).await, N as u64);

    drop(open);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let n = watchers(&mut c).await;
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} watchers still registered 1 s after their clients vanished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A write now wakes nobody and is served normally.
    let r = c.req("PUT", "/v2/keys/w", Some("value=after")).await;
    assert_eq!(r.status, 201, "{r:?}");
    s.assert_alive().await;
}

// Garbage instead of a TLS handshake (plain HTTP, random bytes, a silent
// peer) is dropped; the next client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_tls_handshake() {
    let mut s = Server::start("handshake_timeout = \"1s\"").await;
    let junk: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let payloads: [&[u8]; 4] = [
        b"GET /v2/keys/sentinel HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &junk,
        // A TLS record header announcing a huge handshake that never comes.
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
        b"\x00",
    ];
    for p in payloads {
        let mut tcp = TcpStream::connect(s.addr()).await.unwrap();
        let _ = tcp.write_all(p).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
            .await
            .expect("server kept a garbage connection open");
        assert!(
            !String::from_utf8_lossy(&buf).contains("HTTP/"),
            "plain-text answer to a non-TLS peer: {buf:?}"
        );
        s.assert_alive().await;
    }
    // A peer that connects and says nothing does not block others.
    let mut silent = TcpStream::connect(s.addr()).await.unwrap();
    s.assert_alive().await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf))
        .await
        .expect("silent peer not dropped after handshake_timeout");
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused_at_handshake() {
    let mut s = Server::start("").await;
    assert_refused(&s, None).await;
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_refused() {
    let mut s = Server::start("").await;
    let other = Pki::new();
    let stranger = other.client("client");
    assert_refused(&s, Some(&stranger)).await;
    // Even with the very CN the server's CA issued.
    let lookalike = other.client("client");
    assert_refused(&s, Some(&lookalike)).await;
    s.assert_alive().await;
}

// HTTP/1.1 framing, served by keygate's own connection code
// (src/http1.rs): bodies by length or chunked, 100-continue, pipelining,
// HTTP/1.0, strict refusal of ambiguous framing, timeouts.

/// Reads from `tls` until `buf` holds `n` complete answers (each with a
/// Content-Length body), or the server closes.
async fn read_answers(
    tls: &mut TlsStream<TcpStream>,
    n: usize,
) -> Vec<(u16, Vec<(String, String)>, String)> {
    let mut raw = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Split off every complete answer.
        loop {
            let text = String::from_utf8_lossy(&raw).into_owned();
            let Some(head_end) = text.find("\r\n\r\n") else {
                break;
            };
            let (status, headers, _) = parse_raw(&text[..head_end + 4]);
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .expect("content-length");
            if raw.len() < head_end + 4 + len {
                break;
            }
            let body = String::from_utf8_lossy(&raw[head_end + 4..head_end + 4 + len]).into_owned();
            raw.drain(..head_end + 4 + len);
            out.push((status, headers, body));
        }
        if out.len() >= n {
            return out;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk))
            .await
            .expect("no answer within 10 s");
        match read {
            Ok(0) | Err(_) => return out,
            Ok(k) => raw.extend_from_slice(&chunk[..k]),
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_bodies_are_read_whole() {
    let mut s = Server::start("").await;
    // Two data chunks (one with an extension), then a trailer.
    let raw = raw_exchange(
        &s,
        b"PUT /v2/keys/chunked HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          6;ext=1\r\nvalue=\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    let (status, headers, body) = parse_raw(&raw);
    assert_eq!(status, 201, "{raw:?}");
    assert_eq!(header(&headers, "connection"), Some("close"), "{raw:?}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["node"]["value"], "hello", "{raw:?}");
    let mut c = s.client().await;
    let r = c.req("GET", "/v2/keys/chunked", None).await;
    assert_eq!(r.json()["node"]["value"], "hello", "{r:?}");
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_or_bad_framing_is_refused_and_writes_nothing() {
    let ops = common::free_port();
    let mut s = Server::start(&format!("ops_listen = \"127.0.0.1:{ops}\"")).await;
    let requests = [
        (
            "Content-Length and Transfer-Encoding",
            "PUT /v2/keys/smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nvalue=x\r\n0\r\n\r\n",
        ),
        (
            "a coding keygate does not know",
            "PUT /v2/keys/smuggled HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "two different lengths",
            "PUT /v2/keys/smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\nvalue=xx",
        ),
        (
            "a length that is not a number",
            "PUT /v2/keys/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 7x\r\n\r\nvalue=x",
        ),
        (
            "a chunk size that is not hex",
            "PUT /v2/keys/smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nvalue=x\r\n0\r\n\r\n",
        ),
        (
            "a chunk without its CRLF",
            "PUT /v2/keys/smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nvalue=xXX0\r\n\r\n",
        ),
        ("not HTTP", "HELLO\r\n\r\n"),
        ("a space in a header name", "GET /v2/keys/sentinel HTTP/1.1\r\nBad Header: x\r\n\r\n"),
    ];
    for (what, request) in requests {
        let raw = raw_exchange(&s, request.as_bytes()).await;
        let (status, headers, body) = parse_raw(&raw);
        assert_eq!(status, 400, "{what}: {raw:?}");
        assert_eq!(
            header(&headers, "connection"),
            Some("close"),
            "{what}: {raw:?}"
        );
        assert_eq!(body.trim_end(), "400 Bad Request", "{what}: {raw:?}");
    }
    let mut c = s.client().await;
    let r = c.req("GET", "/v2/keys/smuggled", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.header("x-etcd-index"),
        Some("1"),
        "nothing was written: {r:?}"
    );
    // Each refusal is counted (its method unread: "other").
    let (_, m) = common::ops_request(ops, "GET", "/metrics");
    assert_eq!(
        common::metric(
            &m,
            "keygate_requests_total{method=\"other\",decision=\"none\",status=\"400\"}"
        ),
        requests.len() as f64,
        "{m}"
    );
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_its_interim_answer() {
    let mut s = Server::start("").await;
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    tls.write_all(
        b"PUT /v2/keys/expect HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut interim))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    tls.write_all(b"value=x").await.unwrap();
    let answers = read_answers(&mut tls, 1).await;
    assert_eq!(answers[0].0, 201, "{answers:?}");
    // A body over the limit is refused without asking for it.
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    tls.write_all(
        b"PUT /v2/keys/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let answers = read_answers(&mut tls, 1).await;
    assert_eq!(answers[0].0, 413, "{answers:?}");
    assert_eq!(
        header(&answers[0].1, "connection"),
        Some("close"),
        "{answers:?}"
    );
    s.assert_alive().await;
}

// Go's server, and so etcd, refuses an HTTP/1.1 request without one
// well-formed Host (400, saying which) and an Expect other than
// 100-continue (417), closing the connection. Recorded from etcd 3.4.23
// (Debian etcd-server, --enable-v2) with raw requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_expect_are_checked_as_etcd_checks_them() {
    let mut s = Server::start("").await;
    let cases: [(&[u8], u16, &str); 4] = [
        (
            b"GET /v2/keys/ HTTP/1.1\r\n\r\n",
            400,
            "400 Bad Request: missing required Host header\n",
        ),
        (
            b"GET /v2/keys/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "400 Bad Request\n",
        ),
        (
            b"GET /v2/keys/ HTTP/1.1\r\nHost: a b\r\n\r\n",
            400,
            "400 Bad Request: malformed Host header\n",
        ),
        (
            b"GET /v2/keys/ HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n",
            417,
            "",
        ),
    ];
    for (request, status, body) in cases {
        let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
            .await
            .unwrap();
        tls.write_all(request).await.unwrap();
        let answers = read_answers(&mut tls, 1).await;
        let (got, headers, text) = &answers[0];
        assert_eq!(*got, status, "{answers:?}");
        assert_eq!(header(headers, "connection"), Some("close"), "{answers:?}");
        assert_eq!(text, body, "{answers:?}");
    }
    // HTTP/1.0 needs no Host.
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    tls.write_all(b"GET /v2/keys/ HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answers(&mut tls, 1).await[0].0, 200);
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let mut s = Server::start("").await;
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    // Three requests in one write, the second with a body; the third
    // arrives byte by byte across records.
    tls.write_all(
        b"GET /v2/keys/sentinel HTTP/1.1\r\nHost: x\r\n\r\n\
          PUT /v2/keys/piped HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=p",
    )
    .await
    .unwrap();
    for b in b"GET /v2/keys/piped HTTP/1.1\r\nHost: x\r\n\r\n" {
        tls.write_all(&[*b]).await.unwrap();
        tls.flush().await.unwrap();
    }
    let answers = read_answers(&mut tls, 3).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 201, 200], "{answers:?}");
    assert!(answers[0].2.contains("\"alive\""), "{answers:?}");
    assert!(answers[2].2.contains("\"value\":\"p\""), "{answers:?}");
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_closes_unless_kept_alive() {
    let mut s = Server::start("").await;
    let raw = raw_exchange(&s, b"GET /v2/keys/sentinel HTTP/1.0\r\n\r\n").await;
    let (status, headers, body) = parse_raw(&raw);
    assert_eq!(status, 200, "{raw:?}");
    assert_eq!(header(&headers, "connection"), Some("close"), "{raw:?}");
    assert!(body.contains("\"alive\""), "{raw:?}");
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    let req = b"GET /v2/keys/sentinel HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    tls.write_all(req).await.unwrap();
    tls.write_all(req).await.unwrap();
    let answers = read_answers(&mut tls, 2).await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        header(&answers[0].1, "connection"),
        Some("keep-alive"),
        "{answers:?}"
    );
    s.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed() {
    let mut s = Server::start("idle_timeout = \"1s\"\nrequest_timeout = \"2s\"").await;
    // Idle after an answer: closed after idle_timeout.
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    tls.write_all(b"GET /v2/keys/sentinel HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answers(&mut tls, 1).await[0].0, 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("an idle connection was not closed");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // A head that never ends: closed after request_timeout, though bytes
    // keep trickling in under the idle timeout.
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..20 {
        if tls.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(500), tls.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "a request head that never ended was not cut off");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    s.assert_alive().await;
}

/// Reads until the connection closes; how long that took. Panics past 10 s.
async fn time_until_closed(tls: &mut TlsStream<TcpStream>) -> Duration {
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("an idle connection was not closed");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    started.elapsed()
}

/// Reads a one-shot watch's answer to the end of its chunked body.
async fn read_watch_answer(tls: &mut TlsStream<TcpStream>, raw: &mut Vec<u8>) {
    while !raw.ends_with(b"\r\n0\r\n\r\n") {
        let mut b = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut b))
            .await
            .expect("no event")
            .unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(raw));
        raw.extend_from_slice(&b[..n]);
    }
    assert!(
        String::from_utf8_lossy(raw).contains("\"action\":\"set\""),
        "{:?}",
        String::from_utf8_lossy(raw)
    );
}

// The idle timeout holds after a watch ends, whether the connection's
// timer came due while the watch waited (it is not watched then) or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_after_a_watch_is_closed() {
    let mut s = Server::start("idle_timeout = \"1s\"\nrequest_timeout = \"2s\"").await;
    for (key, waited) in [("/v2/keys/long", 2500), ("/v2/keys/short", 100)] {
        let (mut tls, mut raw) = open_watch(&s, key).await;
        tokio::time::sleep(Duration::from_millis(waited)).await;
        // A new writer each time: an idle one is closed after 1 s too.
        let mut c = s.client().await;
        assert_eq!(c.req("PUT", key, Some("value=1")).await.status, 201);
        read_watch_answer(&mut tls, &mut raw).await;
        let idle = time_until_closed(&mut tls).await;
        assert!(
            idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
            "watch on {key} woken after {waited} ms: closed after {idle:?} idle"
        );
    }
    // A request answered on the connection after its watch: the idle
    // timeout counts from that answer.
    let (mut tls, mut raw) = open_watch(&s, "/v2/keys/again").await;
    let mut c = s.client().await;
    assert_eq!(
        c.req("PUT", "/v2/keys/again", Some("value=1")).await.status,
        201
    );
    read_watch_answer(&mut tls, &mut raw).await;
    tls.write_all(b"GET /v2/keys/sentinel HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answers(&mut tls, 1).await[0].0, 200);
    let idle = time_until_closed(&mut tls).await;
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "{idle:?}"
    );
    s.assert_alive().await;
}

/// A raw HTTP/1.1 watch on `path`, with its head read (a watch sends its
/// head at once): the connection and the bytes read so far.
async fn open_watch(s: &Server, path: &str) -> (TlsStream<TcpStream>, Vec<u8>) {
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    tls.write_all(format!("GET {path}?wait=true HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !String::from_utf8_lossy(&head).contains("\r\n\r\n") {
        let mut b = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut b))
            .await
            .expect("no watch head")
            .unwrap();
        assert!(n > 0);
        head.extend_from_slice(&b[..n]);
    }
    (tls, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pipelined_behind_a_watch_is_answered_after_it() {
    let mut s = Server::start("").await;
    let (mut tls, head) = open_watch(&s, "/v2/keys/w").await;
    assert!(
        String::from_utf8_lossy(&head).contains("transfer-encoding: chunked"),
        "{head:?}"
    );
    tls.write_all(b"GET /v2/keys/sentinel HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = s.client().await;
    assert_eq!(
        c.req("PUT", "/v2/keys/w", Some("value=1")).await.status,
        201
    );
    // The event, the end of the chunked body, then the pipelined answer.
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&raw).contains("\"alive\"") && Instant::now() < deadline {
        let mut b = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    let event = text.find("\"action\":\"set\"").expect("the event");
    let end = text
        .find("\r\n0\r\n\r\n")
        .expect("the end of the chunked body");
    let next = text.find("HTTP/1.1 200 OK").expect("the pipelined answer");
    assert!(event < end && end < next, "{text:?}");
    s.assert_alive().await;
}

// SPEC §6: SIGTERM stops accepting, finishes what is in flight, ends
// watches cleanly, makes the store durable and exits 0 — without waiting
// for `shutdown_timeout` when only watches are open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_waiting_watches_cleanly_and_exits_0() {
    let mut s = Server::start("shutdown_timeout = \"30s\"").await;
    let (mut tls, mut raw) = open_watch(&s, "/v2/keys/w").await;
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &s.kg.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The watch's body ends (the last chunk), then the connection closes.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("the watch was not ended at shutdown");
    raw.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.ends_with("\r\n0\r\n\r\n"), "{text:?}");
    let code = s.kg.exited_within(started, Duration::from_secs(10)).await;
    assert!(code.success(), "{code:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// request_timeout bounds answering too: a client that pipelines requests
// and never reads the answers does not hold its connection for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_cut_off() {
    let mut s = Server::start("request_timeout = \"1s\"\nidle_timeout = \"60s\"").await;
    let mut c = s.client().await;
    let big = format!("value={}", "b".repeat(1 << 20));
    assert_eq!(c.req("PUT", "/v2/keys/big", Some(&big)).await.status, 201);
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    let request = b"GET /v2/keys/big HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sent = 0;
    for _ in 0..64 {
        // Our own writes may block too once the server stops reading.
        match tokio::time::timeout(Duration::from_millis(500), tls.write_all(request)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut answers = 0usize;
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    answers += text.matches("HTTP/1.1 200 OK").count();
    assert!(
        answers < sent,
        "all {sent} answers arrived ({answers}): the connection was not cut off"
    );
    s.assert_alive().await;
}

// request_timeout is one deadline from a request's first byte until its
// answer is written: a slow head and a slow reader together exceed it,
// though each alone stays under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_deadline_spans_reading_and_writing() {
    let mut s = Server::start("request_timeout = \"2s\"\nidle_timeout = \"60s\"").await;
    let mut c = s.client().await;
    // An answer larger than the socket buffers, so writing it waits for
    // the client to read.
    let big = format!("value={}", "b".repeat(1 << 20));
    for i in 0..8 {
        let path = format!("/v2/keys/big/{i}");
        assert_eq!(c.req("PUT", &path, Some(&big)).await.status, 201);
    }
    let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
        .await
        .unwrap();
    // The head takes 1.5 s to arrive.
    tls.write_all(b"GET /v2/keys/big?recursive=true HTTP/1.1\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tls.write_all(b"X-Slow: 1\r\n").await.unwrap();
        tls.flush().await.unwrap();
    }
    tls.write_all(b"Host: x\r\n\r\n").await.unwrap();
    tls.flush().await.unwrap();
    // The client reads only 1.2 s later: 2.7 s after the first byte, 1.2 s
    // after the head.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("HTTP/1.1 200 OK"),
        "{:?}",
        &text[..text.len().min(200)]
    );
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let length: usize = text[..head_end]
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    assert!(
        all.len() - head_end < length,
        "the whole answer ({length} bytes) arrived: the deadline was not kept"
    );
    s.assert_alive().await;
}

/// Valid requests that random byte edits turn into malformed ones.
const FRAMES: &[&str] = &[
    "GET /v2/keys/sentinel?recursive=true&sorted=true HTTP/1.1\r\nHost: x\r\n\r\n",
    "PUT /v2/keys/m/a?prevExist=false HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nvalue=a%20b&x",
    "PUT /v2/keys/m/b HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nvalue=\r\n2\r\nok\r\n0\r\n\r\n",
    "POST /v2/keys/m/q HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\nvalue=p",
    "DELETE /v2/keys/m?recursive=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "HEAD /v2/keys/m/a HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/keys/m/a?wait=true&waitIndex=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
];

/// Bytes that matter to a parser.
const EDGES: &[u8] = b"\r\n :;,=&%?/#0179aAfF\t\x00\x7f\xff-+\"";

/// The statuses of the answers in `raw`: the first one's (none if the
/// server closed without answering) and every later status line's (a HEAD
/// answer has a length but no body, so answers are not framed here); or
/// why `raw` is not HTTP.
fn statuses(raw: &[u8]) -> Result<Vec<u16>, String> {
    let text = String::from_utf8_lossy(raw);
    if text.is_empty() {
        // Closed without an answer (the head never ended).
        return Ok(Vec::new());
    }
    if !text.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP answer: {text:?}"));
    }
    if !text.contains("\r\n\r\n") {
        return Err(format!("an unfinished head: {text:?}"));
    }
    text.match_indices("HTTP/1.")
        .map(|(at, _)| {
            text.get(at + 9..at + 12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("a bad status line: {text:?}"))
        })
        .collect()
}

/// Random byte edits (changed, inserted, removed, repeated bytes, a cut
/// end) of valid requests, each on its own connection, which the client
/// then closes: every answer is HTTP with a status below 500 or the
/// connection just closes; nothing hangs, nothing panics, and the server
/// still serves what was written before. `KEYGATE_MUTATION_SEEDS=2,3`
/// runs other seeds (300 requests each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_byte_edits_of_requests_never_break_the_server() {
    let mut s = Server::start("").await;
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for seed in seeds("KEYGATE_MUTATION_SEEDS", "1") {
        let mut rng = Rng::new(seed);
        let mut below = |n: usize| rng.below(n);
        for i in 0..300 {
            let mut req = FRAMES[below(FRAMES.len())].as_bytes().to_vec();
            for _ in 0..1 + below(3) {
                if req.is_empty() {
                    req.push(b'G');
                }
                let at = below(req.len());
                match below(5) {
                    0 => req[at] = EDGES[below(EDGES.len())],
                    1 => req.insert(at, EDGES[below(EDGES.len())]),
                    2 => {
                        req.remove(at);
                    }
                    3 => {
                        let piece: Vec<u8> = req[at..(at + 1 + below(8)).min(req.len())].to_vec();
                        req.splice(at..at, piece);
                    }
                    _ => req.truncate(at.max(1)),
                }
            }
            let what = format!(
                "seed {seed} request {i}: {:?}",
                String::from_utf8_lossy(&req)
            );
            let mut tls = tls_connect(&s.addr(), s.ca(), Some(&s.cert), false)
                .await
                .unwrap();
            // The server may answer and close before it has read it all.
            let _ = tls.write_all(&req).await;
            let _ = tls.shutdown().await;
            let mut raw = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await;
            assert!(read.is_ok(), "{what}: no answer and no close within 10 s");
            let statuses = statuses(&raw).unwrap_or_else(|e| panic!("{what}: {e}"));
            for st in statuses {
                assert!(
                    (100..500).contains(&st),
                    "{what}: status {st}: {:?}",
                    String::from_utf8_lossy(&raw)
                );
                *seen.entry(st).or_default() += 1;
            }
        }
    }
    eprintln!("answers by status: {seen:?}");
    assert!(seen.get(&400).is_some_and(|n| *n > 20), "{seen:?}");
    let panics: Vec<String> =
        s.kg.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("panicked"))
            .cloned()
            .collect();
    assert!(panics.is_empty(), "the server panicked: {panics:?}");
    s.assert_alive().await;
}
