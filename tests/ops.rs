//! The ops listener (SPEC §6): `/healthz`, `/readyz` and `/metrics` over
//! plain HTTP; metric labels never hold keys or certificate fields.

mod common;

use std::sync::Arc;

use common::{free_port, metric, ops_request, Client, Keygate, Pki};

#[tokio::test]
async fn ops_endpoints_report_health_readiness_and_counters() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("ops-reader");
    let ops = free_port();
    let kg = Keygate::start(pki.clone(), &format!("ops_listen = \"127.0.0.1:{ops}\""));

    assert_eq!(ops_request(ops, "GET", "/healthz"), (200, "ok\n".into()));
    assert_eq!(ops_request(ops, "GET", "/readyz"), (200, "ready\n".into()));
    assert_eq!(ops_request(ops, "GET", "/nothing").0, 404);
    assert_eq!(ops_request(ops, "POST", "/readyz").0, 405);
    let (status, before) = ops_request(ops, "GET", "/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&before, "keygate_commits_total"), 0.0);
    assert_eq!(metric(&before, "keygate_store_failed"), 0.0);

    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    for i in 0..3 {
        let r = c
            .req("PUT", &format!("/v2/keys/secret-name/{i}"), Some("value=v"))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = c.req("GET", "/v2/keys/secret-name/0", None).await;
    assert_eq!(r.status, 200);
    // A handshake without a client certificate fails and is counted.
    let mut plain = Client::try_connect(&kg.addr(), &pki.ca, None, false).await;
    if let Ok(c) = plain.as_mut() {
        // TLS 1.3: the refusal arrives with the first read.
        let _ = c.send("GET", "/v2/keys/", None, &[]).await;
    }
    drop(plain);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (_, m) = ops_request(ops, "GET", "/metrics");
    assert_eq!(metric(&m, "keygate_store_index"), 3.0);
    assert_eq!(metric(&m, "keygate_commits_total"), 3.0);
    assert_eq!(metric(&m, "keygate_committed_mutations_total"), 3.0);
    assert!(metric(&m, "keygate_commit_duration_seconds_sum") > 0.0);
    assert_eq!(metric(&m, "keygate_connections_open"), 1.0, "{m}");
    assert_eq!(
        metric(&m, "keygate_store_operations_total{op=\"setsSuccess\"}"),
        3.0
    );
    assert_eq!(
        metric(&m, "keygate_store_operations_total{op=\"getsSuccess\"}"),
        1.0
    );
    assert!(
        metric(
            &m,
            "keygate_handshake_failures_total{reason=\"no_certificate\"}"
        ) >= 1.0,
        "{m}"
    );
    // No key and no certificate field in any label.
    assert!(
        !m.contains("secret-name") && !m.contains("ops-reader"),
        "{m}"
    );
}

/// Requests are counted by method, access decision and status, with a
/// latency histogram by method; the certificates' expiry is a gauge.
#[tokio::test]
async fn requests_are_counted_by_method_decision_and_status() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("team-a-1");
    let ops = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:{ops}\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\
             [backend]\ndata_dir = \"data\"\n\
             [roles.team-a]\nread = [\"/team-a\"]\nwrite = [\"/team-a\"]\n\
             [[bind]]\ncn = \"team-a-*\"\nroles = [\"team-a\"]\n",
            pki.server.cert, pki.server.key, pki.ca
        ),
    )
    .unwrap();
    let kg = Keygate::start_with(pki.clone(), dir, config);
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    let expect = |status: u16, r: common::Resp| assert_eq!(r.status, status, "{}", r.body);
    expect(
        201,
        c.req("PUT", "/v2/keys/team-a/x", Some("value=1")).await,
    );
    expect(200, c.req("GET", "/v2/keys/team-a/x", None).await);
    expect(200, c.req("GET", "/v2/keys/team-a/x", None).await);
    expect(403, c.req("GET", "/v2/keys/team-b/x", None).await);
    expect(
        400,
        c.req("PUT", "/v2/keys/team-a/y?ttl=abc", Some("value=1"))
            .await,
    );
    expect(200, c.req("GET", "/version", None).await);
    // /v2/stats is for admin roles: a decision too.
    expect(403, c.req("GET", "/v2/stats/self", None).await);
    expect(200, c.req("HEAD", "/v2/keys/team-a/x", None).await);
    expect(200, c.req("DELETE", "/v2/keys/team-a/x", None).await);

    let (_, m) = ops_request(ops, "GET", "/metrics");
    let requests = |labels: &str| metric(&m, &format!("keygate_requests_total{{{labels}}}"));
    assert_eq!(
        requests("method=\"PUT\",decision=\"allow\",status=\"201\""),
        1.0
    );
    assert_eq!(
        requests("method=\"GET\",decision=\"allow\",status=\"200\""),
        2.0
    );
    assert_eq!(
        requests("method=\"GET\",decision=\"deny\",status=\"403\""),
        2.0
    );
    assert_eq!(
        requests("method=\"PUT\",decision=\"none\",status=\"400\""),
        1.0
    );
    assert_eq!(
        requests("method=\"GET\",decision=\"none\",status=\"200\""),
        1.0
    );
    assert_eq!(
        requests("method=\"HEAD\",decision=\"allow\",status=\"200\""),
        1.0
    );
    assert_eq!(
        requests("method=\"DELETE\",decision=\"allow\",status=\"200\""),
        1.0
    );
    assert_eq!(m.matches("keygate_requests_total{").count(), 7, "{m}");
    let latency = |what: &str, method: &str| {
        metric(
            &m,
            &format!("keygate_request_duration_seconds_{what}{{method=\"{method}\"}}"),
        )
    };
    assert_eq!(latency("count", "GET"), 5.0);
    assert_eq!(latency("count", "PUT"), 2.0);
    assert!(latency("sum", "PUT") > 0.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "keygate_request_duration_seconds_bucket{method=\"PUT\",le=\"+Inf\"}"
        ),
        2.0
    );
    // The test PKI's certificates are valid until 4096-01-01.
    let left = 67_090_118_400.0
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
    for series in [
        "keygate_certificate_expiry_seconds{cert=\"server\"}",
        "keygate_certificate_expiry_seconds{cert=\"client_ca\",index=\"1\"}",
    ] {
        let v = metric(&m, series);
        assert!(
            (v - left).abs() < 120.0,
            "{series} {v}, expected about {left}"
        );
    }
    assert!(!m.contains("team-a") && !m.contains("team-b"), "{m}");
    // Keys in the store: directories not counted, hidden keys counted.
    expect(
        201,
        c.req("PUT", "/v2/keys/team-a/d/k", Some("value=1")).await,
    );
    expect(
        201,
        c.req("PUT", "/v2/keys/team-a/_hidden", Some("value=1"))
            .await,
    );
    expect(201, c.req("PUT", "/v2/keys/team-a/e?dir=true", None).await);
    let (_, m) = ops_request(ops, "GET", "/metrics");
    assert_eq!(metric(&m, "keygate_store_keys"), 2.0, "{m}");
    expect(
        200,
        c.req("DELETE", "/v2/keys/team-a/d?recursive=true", None)
            .await,
    );
    let (_, after) = ops_request(ops, "GET", "/metrics");
    assert_eq!(metric(&after, "keygate_store_keys"), 1.0, "{after}");
}
