//! The audit trail (SPEC §6): one structured line per decision, target
//! `keygate::audit`, JSON lines with `log.format = "json"`, and no input
//! can start a line of its own.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, Keygate, Pki};

fn config(pki: &Pki, dir: &std::path::Path, format: &str) -> std::path::PathBuf {
    let path = dir.join("keygate.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\
             [backend]\ndata_dir = \"data\"\n\
             [log]\nformat = \"{format}\"\naudit = true\n\
             [roles.team-a]\nread = [\"/team-a\"]\nwrite = [\"/team-a\"]\n\
             [[bind]]\ncn = \"team-a-*\"\nroles = [\"team-a\"]\n\
             [roles.ops]\nadmin = true\n\
             [[bind]]\ncn = \"ops-*\"\nroles = [\"ops\"]\n",
            pki.server.cert, pki.server.key, pki.ca
        ),
    )
    .unwrap();
    path
}

/// A gateway with audit lines in `format`, and its PKI.
fn start(format: &str) -> (Arc<Pki>, Keygate) {
    let pki = Arc::new(Pki::new());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&pki, dir.path(), format);
    let kg = Keygate::start_with(pki.clone(), dir, cfg);
    (pki, kg)
}

async fn audit_lines(kg: &Keygate, n: usize) -> Vec<String> {
    for _ in 0..100 {
        let lines: Vec<String> = kg
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("keygate::audit"))
            .cloned()
            .collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {n} audit lines: {:?}", kg.log.lock().unwrap());
}

/// The first `n` audit lines (at least), each parsed as JSON.
async fn json_lines(kg: &Keygate, n: usize) -> Vec<serde_json::Value> {
    audit_lines(kg, n)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn json_audit_lines_name_the_decider() {
    let (pki, kg) = start("json");
    let cert = pki.client("team-a-app");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    assert_eq!(
        c.req("PUT", "/v2/keys/team-a/k", Some("value=1"))
            .await
            .status,
        201
    );
    assert_eq!(
        c.req("GET", "/v2/keys/team-b/k?recursive=true", None)
            .await
            .status,
        403
    );
    assert_eq!(c.req("GET", "/v2/keys/", None).await.status, 200);

    let parsed = json_lines(&kg, 3).await;
    let f = |v: &serde_json::Value, k: &str| v["fields"][k].clone();
    assert_eq!(parsed[0]["target"], "keygate::audit");
    assert_eq!(f(&parsed[0], "decision"), "allow");
    assert_eq!(f(&parsed[0], "method"), "PUT");
    assert_eq!(f(&parsed[0], "role"), "team-a");
    assert_eq!(f(&parsed[0], "bind"), 0);
    assert_eq!(f(&parsed[0], "status"), 201);
    assert!(f(&parsed[0], "prefix")
        .as_str()
        .unwrap()
        .contains("/team-a"));
    assert!(f(&parsed[0], "cn").as_str().unwrap().contains("team-a-app"));
    assert_eq!(f(&parsed[1], "decision"), "deny");
    assert_eq!(f(&parsed[1], "status"), 403);
    assert_eq!(f(&parsed[1], "recursive"), true);
    assert!(f(&parsed[1], "key").as_str().unwrap().contains("/team-b/k"));
    assert_eq!(f(&parsed[2], "prefix"), "traverse");
}

#[tokio::test]
async fn text_audit_lines_cannot_be_forged() {
    let (pki, kg) = start("text");
    let cert = pki.client("team-a-app");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    // A key holding a newline and a fake audit line.
    let r = c
        .req(
            "PUT",
            "/v2/keys/team-a/x%0A2026-01-01T00:00:00Z%20INFO%20keygate::audit:%20decision=allow",
            Some("value=1"),
        )
        .await;
    assert_eq!(r.status, 201);
    let lines = audit_lines(&kg, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("\\n2026-01-01"), "{}", lines[0]);
    assert!(
        !kg.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("2026-01-01")),
        "a key started a log line"
    );
}

#[tokio::test]
async fn json_lines_time_the_answer_and_end_watches() {
    let (pki, kg) = start("json");
    let cert = pki.client("team-a-app");
    let mut watcher = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    let mut writer = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    let watch = tokio::spawn(async move {
        watcher
            .req("GET", "/v2/keys/team-a/w?wait=true", None)
            .await
    });
    // The watch's line is written when its headers are: before its event.
    audit_lines(&kg, 1).await;
    assert_eq!(
        writer
            .req("PUT", "/v2/keys/team-a/w", Some("value=1"))
            .await
            .status,
        201
    );
    let r = watch.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"value\":\"1\""), "{}", r.body);

    let parsed = json_lines(&kg, 3).await;
    let f = |v: &serde_json::Value, k: &str| v["fields"][k].clone();
    let watch_line = parsed
        .iter()
        .find(|v| f(v, "wait") == true)
        .expect("the watch's line");
    assert_eq!(f(watch_line, "status"), 200);
    assert!(f(watch_line, "latency_us").is_u64(), "{watch_line}");
    let put = parsed
        .iter()
        .find(|v| f(v, "method") == "PUT")
        .expect("the write's line");
    assert!(f(put, "latency_us").is_u64(), "{put}");
    let end = parsed
        .iter()
        .find(|v| f(v, "event") == "watch_end")
        .expect("the watch_end line");
    assert_eq!(end["target"], "keygate::audit");
    // The strings themselves (not quoted twice over).
    assert_eq!(f(end, "cn"), "team-a-app");
    assert_eq!(f(end, "key"), "/team-a/w");
}

/// `/v2/stats/*` is decided too (by the admin grant): one line each, the
/// path as the key and "admin" as the prefix that decided.
#[tokio::test]
async fn stats_decisions_are_audited() {
    let (pki, kg) = start("json");
    let team = pki.client("team-a-app");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &team).await;
    assert_eq!(c.req("GET", "/v2/stats/self", None).await.status, 403);
    let ops = pki.client("ops-1");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &ops).await;
    assert_eq!(c.req("GET", "/v2/stats/store", None).await.status, 200);
    let parsed = json_lines(&kg, 2).await;
    let f = |v: &serde_json::Value, k: &str| v["fields"][k].clone();
    assert_eq!(f(&parsed[0], "decision"), "deny");
    assert_eq!(f(&parsed[0], "key"), "/v2/stats/self");
    assert_eq!(f(&parsed[0], "status"), 403);
    assert_eq!(f(&parsed[1], "decision"), "allow");
    assert_eq!(f(&parsed[1], "key"), "/v2/stats/store");
    assert_eq!(f(&parsed[1], "method"), "GET");
    assert_eq!(f(&parsed[1], "role"), "ops");
    assert_eq!(f(&parsed[1], "bind"), 1);
    assert_eq!(f(&parsed[1], "prefix"), "admin");
    assert_eq!(f(&parsed[1], "status"), 200);
    assert!(f(&parsed[1], "cn").as_str().unwrap().contains("ops-1"));
}

/// A write whose answer is given up (here the client resets its HTTP/2
/// streams at once) still writes its line: every write that committed has
/// one, with its status or 499 when no answer was written.
#[tokio::test]
async fn a_write_given_up_still_writes_its_line() {
    let (pki, kg) = start("json");
    let cert = pki.client("team-a-app");
    let mut c = Client::h2(&kg.addr(), &pki.ca, &cert).await;
    for i in 0..300u64 {
        let target = format!("/v2/keys/team-a/k{i}");
        // Given up after 0 to 3 ms (the stream reset): some before the
        // write reached the store, some while it committed, some after.
        let wait = Duration::from_micros(10 * i);
        let _ = tokio::time::timeout(wait, c.send("PUT", &target, Some("value=1"), &[])).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    let r = c.req("GET", "/v2/keys/team-a", None).await;
    let committed: Vec<String> = match r.status {
        200 => r.json()["node"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["key"].as_str().unwrap().to_string())
            .collect(),
        _ => Vec::new(),
    };
    assert!(!committed.is_empty(), "no write committed: {r:?}");
    let lines = json_lines(&kg, committed.len()).await;
    let logged: std::collections::HashMap<String, u64> = lines
        .iter()
        .filter(|l| l["fields"]["method"] == "PUT")
        .map(|l| {
            (
                l["fields"]["key"].as_str().unwrap().to_string(),
                l["fields"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for key in &committed {
        let status = logged.get(key);
        assert!(
            matches!(status, Some(201 | 499)),
            "{key} committed, logged with {status:?} ({} of {} committed writes logged)",
            committed.iter().filter(|k| logged.contains_key(*k)).count(),
            committed.len()
        );
    }
}

/// Audit lines are on whatever KEYGATE_LOG says (`log.audit = false` is
/// how to turn them off): a log level could drop them without a word.
#[tokio::test]
async fn a_log_level_does_not_silence_audit_lines() {
    let pki = Arc::new(Pki::new());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&pki, dir.path(), "json");
    let kg = Keygate::try_start_logging(pki.clone(), dir, cfg, "warn,keygate::cli=info")
        .unwrap_or_else(|r| panic!("{:?}", r.stderr));
    let cert = pki.client("team-a-app");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    assert_eq!(c.req("GET", "/v2/keys/team-b/x", None).await.status, 403);
    let parsed = json_lines(&kg, 1).await;
    assert_eq!(parsed[0]["fields"]["decision"], "deny");
    assert_eq!(parsed[0]["fields"]["key"], "/team-b/x");
}
