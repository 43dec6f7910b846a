//! HTTP/2: watches multiplexed on one connection, answers identical to
//! HTTP/1.1, and the limits (request and idle timeouts, the stop) as
//! HTTP/1.1 has them.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{read, CertFiles, Client, Keygate, Pki};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::client::conn::http2::SendRequest;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type AnyBody = BoxBody<Bytes, BoxError>;

/// An HTTP/2 connection whose requests may carry any body, and the task
/// that runs it (finished once the server closed the connection).
async fn connect(kg: &Keygate, cert: &CertFiles) -> (SendRequest<AnyBody>, JoinHandle<()>) {
    connect_with(kg, cert, |_| {}).await
}

/// [`connect`], the client's HTTP/2 settings shaped by `settings`.
async fn connect_with(
    kg: &Keygate,
    cert: &CertFiles,
    settings: impl FnOnce(&mut hyper::client::conn::http2::Builder<TokioExecutor>),
) -> (SendRequest<AnyBody>, JoinHandle<()>) {
    let tls = common::tls_config(&kg.pki.ca, Some(cert), &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(kg.addr()).await.unwrap();
    let tls = TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    settings(&mut builder);
    let (send, conn) = builder.handshake(TokioIo::new(tls)).await.unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, conn)
}

fn request(kg: &Keygate, method: &str, target: &str, body: AnyBody) -> Request<AnyBody> {
    Request::builder()
        .method(method)
        .uri(format!("https://{}{target}", kg.addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .unwrap()
}

fn full(body: &str) -> AnyBody {
    Full::new(Bytes::from(body.to_string()))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body that sends its first bytes, then nothing more (`breaks`: then
/// fails, and the client resets the stream).
struct Stalled {
    sent: bool,
    breaks: bool,
}

impl Stalled {
    fn new(breaks: bool) -> Stalled {
        Stalled {
            sent: false,
            breaks,
        }
    }
}

impl Body for Stalled {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sent {
            if self.breaks {
                return Poll::Ready(Some(Err("broken off".into())));
            }
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"value=")))))
    }
}

#[tokio::test]
async fn watches_over_http2_streams() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let kg = Keygate::start(pki.clone(), "");
    let mut c = Client::h2(&kg.addr(), &pki.ca, &cert).await;
    let mut w1 = Client::h2(&kg.addr(), &pki.ca, &cert).await;

    // Two watches multiplexed on one HTTP/2 connection, one of them a stream.
    let once = w1
        .send("GET", "/v2/keys/h2/k?wait=true", None, &[])
        .await
        .unwrap();
    let stream = w1
        .send(
            "GET",
            "/v2/keys/h2?wait=true&recursive=true&stream=true",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(once.status(), 200);
    assert_eq!(stream.status(), 200);
    assert_eq!(once.version(), hyper::Version::HTTP_2);

    let r = c.req("PUT", "/v2/keys/h2/k", Some("value=one")).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        read(once).await.body,
        "{\"action\":\"set\",\"node\":{\"key\":\"/h2/k\",\"value\":\"one\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    let r = c.req("PUT", "/v2/keys/h2/j", Some("value=two")).await;
    assert_eq!(r.status, 201);
    let mut body = stream.into_body();
    let mut got = Vec::new();
    while got.iter().filter(|b| **b == b'\n').count() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("stream event")
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            got.extend_from_slice(&d);
        }
    }
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "{\"action\":\"set\",\"node\":{\"key\":\"/h2/k\",\"value\":\"one\",\"modifiedIndex\":1,\"createdIndex\":1}}\n\
         {\"action\":\"set\",\"node\":{\"key\":\"/h2/j\",\"value\":\"two\",\"modifiedIndex\":2,\"createdIndex\":2}}\n"
    );
}

/// The same requests answered identically, byte for byte, over HTTP/1.1
/// and HTTP/2 by two fresh servers (the differential test pins the
/// HTTP/1.1 answers to etcd's).
#[tokio::test]
async fn http2_answers_equal_http1() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let one = Keygate::start(pki.clone(), "");
    let two = Keygate::start(pki.clone(), "");
    let mut h1 = Client::h1(&one.addr(), &pki.ca, &cert).await;
    let mut h2 = Client::h2(&two.addr(), &pki.ca, &cert).await;
    let steps: &[(&str, &str, Option<&str>)] = &[
        ("PUT", "/v2/keys/a/b", Some("value=1")),
        ("GET", "/v2/keys/a?recursive=true", None),
        ("PUT", "/v2/keys/a/b?prevValue=1", Some("value=2")),
        ("PUT", "/v2/keys/a/b?prevValue=9", Some("value=3")),
        ("POST", "/v2/keys/q", Some("value=x")),
        ("GET", "/v2/keys/q?recursive=true", None),
        ("GET", "/v2/keys/a//b", None),
        ("GET", "/v2/keys/a?ttl=abc", None),
        ("PATCH", "/v2/keys/a", None),
        ("HEAD", "/v2/keys/a/b", None),
        ("OPTIONS", "/v2/keys/a", None),
        ("DELETE", "/v2/keys/a?recursive=true", None),
        ("GET", "/v2/keys/a", None),
        (
            "GET",
            "/v2/keys/?wait=true&waitIndex=1&recursive=true",
            None,
        ),
        ("GET", "/v2/keys/a?wait=true&waitIndex=2", None),
        ("GET", "/health", None),
        ("GET", "/nope", None),
    ];
    for (m, t, b) in steps {
        let r1 = h1.req(m, t, *b).await;
        let r2 = h2.req(m, t, *b).await;
        assert_eq!(r1.status, r2.status, "{m} {t}");
        for h in [
            "content-type",
            "allow",
            "location",
            "x-etcd-index",
            "x-raft-index",
            "x-raft-term",
        ] {
            assert_eq!(r1.header(h), r2.header(h), "{m} {t}: header {h}");
        }
        assert_eq!(r1.body, r2.body, "{m} {t}");
    }
}

/// request_timeout over HTTP/2: a stream whose body never ends is reset
/// at the deadline (its connection goes on), where it held its buffered
/// body, up to max_body_bytes a stream, as long as the connection lived.
#[tokio::test]
async fn a_stream_whose_body_stalls_is_reset_at_request_timeout() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let kg = Keygate::start(pki.clone(), "request_timeout = \"1s\"");
    let (mut send, _conn) = connect(&kg, &cert).await;
    let mut stalled = request(&kg, "PUT", "/v2/keys/stalled", Stalled::new(false).boxed());
    stalled
        .headers_mut()
        .insert("content-length", "100".parse().unwrap());
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), send.send_request(stalled))
        .await
        .expect("the stalled stream was not reset at request_timeout");
    assert!(answer.is_err(), "{:?}", answer.map(|r| r.status()));
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The connection serves its next stream; nothing was written.
    send.ready().await.unwrap();
    let r = read(
        send.send_request(request(&kg, "GET", "/v2/keys/stalled", full("")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

/// idle_timeout over HTTP/2: a connection with no open stream is shut
/// down (GOAWAY) once idle that long; one with a waiting watch is not, and
/// its watch still gets its event.
#[tokio::test]
async fn an_http2_connection_without_streams_closes_at_idle_timeout() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let kg = Keygate::start(pki.clone(), "idle_timeout = \"1s\"");
    let (mut idle, idle_conn) = connect(&kg, &cert).await;
    let r = idle
        .send_request(request(&kg, "GET", "/v2/keys/", full("")))
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 200);
    let (mut watching, watching_conn) = connect(&kg, &cert).await;
    let watch = watching
        .send_request(request(&kg, "GET", "/v2/keys/w?wait=true", full("")))
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    tokio::time::timeout(Duration::from_secs(5), idle_conn)
        .await
        .expect("the idle connection was not closed")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !watching_conn.is_finished(),
        "the watching connection was closed"
    );
    let (mut c, _) = connect(&kg, &cert).await;
    let r = c
        .send_request(request(&kg, "PUT", "/v2/keys/w", full("value=x")))
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 201);
    assert_eq!(
        read(watch).await.body,
        "{\"action\":\"set\",\"node\":{\"key\":\"/w\",\"value\":\"x\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
}

/// SPEC §6 over HTTP/2: SIGTERM ends waiting watches cleanly (their
/// streams end, not reset), and keygate exits 0 without waiting for
/// shutdown_timeout.
#[tokio::test]
async fn sigterm_ends_http2_watches_cleanly() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let mut kg = Keygate::start(pki.clone(), "shutdown_timeout = \"30s\"");
    let (mut send, _conn) = connect(&kg, &cert).await;
    let once = send
        .send_request(request(&kg, "GET", "/v2/keys/w?wait=true", full("")))
        .await
        .unwrap();
    let stream = send
        .send_request(request(
            &kg,
            "GET",
            "/v2/keys/?wait=true&recursive=true&stream=true",
            full(""),
        ))
        .await
        .unwrap();
    assert_eq!(
        (once.status().as_u16(), stream.status().as_u16()),
        (200, 200)
    );
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &kg.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for watch in [once, stream] {
        let body = tokio::time::timeout(Duration::from_secs(10), watch.into_body().collect())
            .await
            .expect("the watch was not ended at the stop")
            .expect("the watch's stream was reset, not ended");
        assert!(body.to_bytes().is_empty());
    }
    let code = kg.exited_within(started, Duration::from_secs(10)).await;
    assert!(code.success(), "{code:?}");
}

/// request_timeout bounds sending the answer too: a client that grants no
/// flow-control window (so the answer cannot be sent) loses the
/// connection, where its stream held it (and the answer) for ever.
#[tokio::test]
async fn an_answer_the_client_never_takes_ends_its_connection() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let kg = Keygate::start(
        pki.clone(),
        "request_timeout = \"1s\"\nidle_timeout = \"60s\"",
    );
    let (mut c, _) = connect(&kg, &cert).await;
    let r = c
        .send_request(request(&kg, "PUT", "/v2/keys/k", full("value=v")))
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 201);
    let (mut starving, conn) = connect_with(&kg, &cert, |b| {
        b.initial_stream_window_size(0);
    })
    .await;
    let started = Instant::now();
    let answer = starving
        .send_request(request(&kg, "GET", "/v2/keys/k", full("")))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the connection outlived its answer's deadline")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A request body the client breaks off (its stream reset) is no 413 in
/// the metrics: the client left, as an HTTP/1.1 client leaving mid-body.
/// One over max_body_bytes still is.
#[tokio::test]
async fn a_body_broken_off_is_not_counted_as_too_large() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("h2");
    let ops = common::free_port();
    let kg = Keygate::start(
        pki.clone(),
        &format!("ops_listen = \"127.0.0.1:{ops}\"\nmax_body_bytes = 64"),
    );
    let (mut send, _conn) = connect(&kg, &cert).await;
    let mut broken = request(&kg, "PUT", "/v2/keys/b", Stalled::new(true).boxed());
    broken
        .headers_mut()
        .insert("content-length", "100".parse().unwrap());
    assert!(send.send_request(broken).await.is_err());
    // The connection serves its next stream; nothing was written.
    send.ready().await.unwrap();
    let r = send
        .send_request(request(&kg, "GET", "/v2/keys/b", full("")))
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 404);
    let (_, metrics) = common::ops_request(ops, "GET", "/metrics");
    assert!(!metrics.contains("status=\"413\""), "{metrics}");
    assert!(metrics.contains("status=\"404\""), "{metrics}");
    // A body over max_body_bytes is still 413, and counted.
    let big = format!("value={}", "v".repeat(100));
    let r = send
        .send_request(request(&kg, "PUT", "/v2/keys/b", full(&big)))
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 413);
    let (_, metrics) = common::ops_request(ops, "GET", "/metrics");
    assert!(metrics.contains("status=\"413\""), "{metrics}");
}
