//! 10,000 concurrent watchers, each on its own TLS connection, on one
//! keygate process, are all woken by one write; and watches over HTTP/2.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read, Client, Keygate, Pki};
use http_body_util::BodyExt;

const WATCHERS: usize = 10_000;

fn raise_nofile() {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if soft < hard {
        rlimit::Resource::NOFILE.set(hard, hard).unwrap();
    }
    let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
    assert!(
        soft >= (WATCHERS as u64) + 200,
        "this test needs {} open files, the limit is {soft}",
        WATCHERS + 200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watchers_woken_by_one_write() {
    raise_nofile();
    let pki = Arc::new(Pki::new());
    let cert = Arc::new(pki.client("watcher"));
    let kg = Keygate::start(pki.clone(), "max_connections = 12000");
    let addr = kg.addr();

    let mut admin = Client::h1(&addr, &pki.ca, &cert).await;
    let r = admin
        .req("PUT", "/v2/keys/fan/out", Some("value=before"))
        .await;
    assert_eq!(r.status, 201);

    // Arm the watchers: each has its 200 and headers before we go on, which
    // keygate sends only once the watch is registered.
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut armed = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (addr, ca, cert) = (addr.clone(), pki.ca.clone(), cert.clone());
        armed.push(tokio::spawn(async move {
            let mut c = Client::h1(&addr, &ca, &cert).await;
            let resp = c
                .send("GET", "/v2/keys/fan/out?wait=true", None, &[])
                .await
                .unwrap();
            drop(permit);
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-etcd-index"], "1");
            (c, resp)
        }));
    }
    let mut watches = Vec::with_capacity(WATCHERS);
    for h in armed {
        watches.push(h.await.unwrap());
    }
    eprintln!("armed {WATCHERS} watchers in {:?}", started.elapsed());

    let stats = admin.req("GET", "/v2/stats/store", None).await;
    assert_eq!(stats.json()["watchers"], WATCHERS as u64);

    let r = admin
        .req("PUT", "/v2/keys/fan/out", Some("value=after"))
        .await;
    assert_eq!(r.status, 200);
    let woken_at = Instant::now();
    let mut reads = Vec::with_capacity(WATCHERS);
    for (client, resp) in watches {
        reads.push(tokio::spawn(async move {
            let body = tokio::time::timeout(Duration::from_secs(120), resp.into_body().collect())
                .await
                .expect("watcher not woken within 120 s")
                .unwrap()
                .to_bytes();
            drop(client);
            body
        }));
    }
    let expected = "{\"action\":\"set\",\"node\":{\"key\":\"/fan/out\",\"value\":\"after\",\"modifiedIndex\":2,\"createdIndex\":2},\"prevNode\":{\"key\":\"/fan/out\",\"value\":\"before\",\"modifiedIndex\":1,\"createdIndex\":1}}\n";
    for h in reads {
        assert_eq!(h.await.unwrap(), expected.as_bytes());
    }
    eprintln!(
        "all {WATCHERS} watchers had their event {:?} after the write",
        woken_at.elapsed()
    );
    let stats = admin.req("GET", "/v2/stats/store", None).await;
    assert_eq!(stats.json()["watchers"], 0);
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
        ("GET", "/v2/keys/?wait=true&waitIndex=1", None),
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
