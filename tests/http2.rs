//! HTTP/2: watches multiplexed on one connection, and answers identical to
//! HTTP/1.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{read, Client, Keygate, Pki};
use http_body_util::BodyExt;

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
