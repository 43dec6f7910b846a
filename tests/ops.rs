//! The ops listener (SPEC §6): `/healthz`, `/readyz` and `/metrics` over
//! plain HTTP; metric labels never hold keys or certificate fields.

mod common;

use std::sync::Arc;

use common::{free_port, ops_request, Client, Keygate, Pki};

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
        .parse()
        .unwrap()
}

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
