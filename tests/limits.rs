//! Per-identity limits (SPEC §6): `max_connections_per_identity` and
//! `max_watches_per_identity`. An excess is answered 503 etcd-style at
//! once and counted; the share of one certificate is its own, and a slot
//! comes back when its connection or watch ends.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, metric, ops_request, quick, Client, Keygate, Pki, Resp};

/// The exact 503 a limit answers with.
#[track_caller]
fn assert_over_limit(r: &Resp, what: &str, field: &str, max: usize, index: u64) {
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.body,
        format!(
            "{{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"cause\":\
             \"too many {what} for this client certificate (server.{field} = {max})\",\
             \"index\":{index}}}\n"
        )
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-etcd-index"), Some(index.to_string().as_str()));
    assert!(r.header("x-etcd-cluster-id").is_some());
}

/// Retries `GET /v2/keys/` on new connections until one is served (a
/// slot given back is seen once the server noticed the close).
async fn connects_again(kg: &Keygate, cert: &common::CertFiles, h2: bool) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::try_connect(&kg.addr(), &kg.pki.ca, Some(cert), h2)
            .await
            .unwrap();
        let r = c.req("GET", "/v2/keys/", None).await;
        if r.status == 200 {
            return c;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connections_over_the_per_identity_limit_are_answered_503_and_closed() {
    let pki = Arc::new(Pki::new());
    let a = pki.client("team-a-1");
    let b = pki.client("team-b-1");
    let ops = free_port();
    let kg = Keygate::start(
        pki.clone(),
        &format!("ops_listen = \"127.0.0.1:{ops}\"\nmax_connections_per_identity = 2"),
    );
    let addr = kg.addr();

    // Two connections of team-a, one over HTTP/2: both served.
    let mut a1 = Client::h1(&addr, &pki.ca, &a).await;
    let mut a2 = Client::h2(&addr, &pki.ca, &a).await;
    assert_eq!(a1.req("GET", "/v2/keys/", None).await.status, 200);
    assert_eq!(a2.req("GET", "/v2/keys/", None).await.status, 200);
    // The store's index is 1 now: a refused connection is not told it
    // (index 0, as a 403: it comes before any decision).
    assert_eq!(
        a1.req("PUT", "/v2/keys/first", Some("value=1"))
            .await
            .status,
        201
    );

    // The third is answered 503 and closed.
    let mut a3 = Client::h1(&addr, &pki.ca, &a).await;
    let r = quick(a3.req("PUT", "/v2/keys/x", Some("value=1"))).await;
    assert_over_limit(&r, "connections", "max_connections_per_identity", 2, 0);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(a3.send("GET", "/v2/keys/", None, &[]).await.is_err());
    // Nothing it sent was acted on.
    assert_eq!(a1.req("GET", "/v2/keys/x", None).await.status, 404);

    // Over HTTP/2 too; then the connection ends (GOAWAY).
    let mut a4 = Client::h2(&addr, &pki.ca, &a).await;
    let r = quick(a4.req("GET", "/v2/keys/", None)).await;
    assert_over_limit(&r, "connections", "max_connections_per_identity", 2, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a4.send("GET", "/v2/keys/", None, &[]).await {
            Err(_) => break,
            Ok(resp) => assert_eq!(resp.status(), 503),
        }
        assert!(
            Instant::now() < deadline,
            "the refused HTTP/2 connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another certificate has its own share.
    let mut b1 = Client::h1(&addr, &pki.ca, &b).await;
    let mut b2 = Client::h1(&addr, &pki.ca, &b).await;
    assert_eq!(b1.req("GET", "/v2/keys/", None).await.status, 200);
    assert_eq!(b2.req("GET", "/v2/keys/", None).await.status, 200);

    // A closed connection gives its slot back.
    drop(a1);
    let mut a5 = connects_again(&kg, &a, false).await;
    assert_eq!(
        a5.req("PUT", "/v2/keys/x", Some("value=1")).await.status,
        201
    );
    assert_eq!(a2.req("GET", "/v2/keys/x", None).await.status, 200);

    let (_, m) = ops_request(ops, "GET", "/metrics");
    // a3, a4, and any attempt of connects_again that came too early.
    let refused = metric(
        &m,
        "keygate_identity_limit_refusals_total{limit=\"connections\"}",
    );
    assert!(refused >= 2.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "keygate_identity_limit_refusals_total{limit=\"watches\"}"
        ),
        0.0
    );
    // The global counter is for max_connections alone.
    assert_eq!(metric(&m, "keygate_connections_refused_total"), 0.0);
}

#[tokio::test]
async fn watches_over_the_per_identity_limit_are_answered_503() {
    let pki = Arc::new(Pki::new());
    let a = pki.client("team-a-1");
    // Another certificate of the same subject is another identity.
    let a_other = pki.issue("team-a-1-renewed", |p| {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "team-a-1");
        p.distinguished_name = dn;
    });
    let ops = free_port();
    let kg = Keygate::start(
        pki.clone(),
        &format!("ops_listen = \"127.0.0.1:{ops}\"\nmax_watches_per_identity = 2"),
    );
    let addr = kg.addr();
    let mut writer = Client::h1(&addr, &pki.ca, &a_other).await;
    assert_eq!(
        writer
            .req("PUT", "/v2/keys/w", Some("value=0"))
            .await
            .status,
        201
    );

    // Two waiting watches on one HTTP/2 connection.
    let mut h2 = Client::h2(&addr, &pki.ca, &a).await;
    let w1 = h2
        .send("GET", "/v2/keys/w?wait=true", None, &[])
        .await
        .unwrap();
    let w2 = h2
        .send("GET", "/v2/keys/?wait=true&recursive=true", None, &[])
        .await
        .unwrap();
    assert_eq!((w1.status().as_u16(), w2.status().as_u16()), (200, 200));

    // A third, on another connection of the same certificate: 503.
    let mut h1 = Client::h1(&addr, &pki.ca, &a).await;
    let r = quick(h1.req("GET", "/v2/keys/w?wait=true", None)).await;
    assert_over_limit(&r, "watches", "max_watches_per_identity", 2, 1);
    // Even one history would answer at once, and a stream.
    let r = quick(h1.req("GET", "/v2/keys/w?wait=true&waitIndex=1", None)).await;
    assert_over_limit(&r, "watches", "max_watches_per_identity", 2, 1);
    let r = quick(h1.req("GET", "/v2/keys/w?wait=true&stream=true", None)).await;
    assert_over_limit(&r, "watches", "max_watches_per_identity", 2, 1);
    // The connection stays, and reads are not watches.
    let r = quick(h1.req("GET", "/v2/keys/w", None)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The other certificate watches within its own share.
    let mut other = Client::h1(&addr, &pki.ca, &a_other).await;
    let w3 = other
        .send("GET", "/v2/keys/w?wait=true", None, &[])
        .await
        .unwrap();
    assert_eq!(w3.status(), 200);

    // An event ends the two watches and gives their slots back.
    assert_eq!(
        writer
            .req("PUT", "/v2/keys/w", Some("value=1"))
            .await
            .status,
        200
    );
    for w in [w1, w2, w3] {
        let r = quick(common::read(w)).await;
        assert_eq!(r.json()["node"]["value"], "1", "{}", r.body);
    }
    let w4 = h2
        .send("GET", "/v2/keys/w?wait=true", None, &[])
        .await
        .unwrap();
    assert_eq!(w4.status(), 200);
    let mut held = Client::h1(&addr, &pki.ca, &a).await;
    let w5 = held
        .send("GET", "/v2/keys/w?wait=true", None, &[])
        .await
        .unwrap();
    assert_eq!(w5.status(), 200);
    let r = quick(h1.req("GET", "/v2/keys/w?wait=true", None)).await;
    assert_over_limit(&r, "watches", "max_watches_per_identity", 2, 2);

    // A client that leaves gives its watch's slot back at once.
    drop(w5);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let w6 = loop {
        let w = h1
            .send("GET", "/v2/keys/w?wait=true", None, &[])
            .await
            .unwrap();
        if w.status() == 200 {
            break w;
        }
        assert_eq!(w.status(), 503);
        common::read(w).await;
        assert!(
            Instant::now() < deadline,
            "the watch's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop((w4, w6));

    let (_, m) = ops_request(ops, "GET", "/metrics");
    let refused = metric(
        &m,
        "keygate_identity_limit_refusals_total{limit=\"watches\"}",
    );
    assert!(refused >= 4.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "keygate_identity_limit_refusals_total{limit=\"connections\"}"
        ),
        0.0
    );
}
