//! 10,000 concurrent watchers, each on its own TLS connection, on one
//! keygate process, are all woken by one write. (Its own test binary: it
//! loads both cores while it arms.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, Keygate, Pki};
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
