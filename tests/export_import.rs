//! `keygate export` / `keygate import` (SPEC §5): a round trip keeps every
//! node, hidden ones and indexes included; import refuses a malformed file
//! or a non-empty store with one line and changes nothing.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{keygate_bin, Client, Keygate, Pki};

fn keygate(args: &[&str]) -> std::process::Output {
    Command::new(keygate_bin()).args(args).output().unwrap()
}

fn without_ttl(mut v: serde_json::Value) -> serde_json::Value {
    let mut stack = vec![&mut v];
    while let Some(x) = stack.pop() {
        match x {
            serde_json::Value::Object(m) => {
                m.remove("ttl");
                stack.extend(m.values_mut());
            }
            serde_json::Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
    v
}

#[tokio::test]
async fn round_trip_keeps_everything() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("admin");
    let mut kg = Keygate::start(pki.clone(), "");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    for (m, t, b) in [
        ("PUT", "/v2/keys/a/b", Some("value=1")),
        ("PUT", "/v2/keys/a/_hidden", Some("value=h")),
        ("PUT", "/v2/keys/_sys/x", Some("value=s")),
        ("PUT", "/v2/keys/t?ttl=600", Some("value=ttl")),
        ("PUT", "/v2/keys/d?dir=true&ttl=600", None),
        ("POST", "/v2/keys/q", Some("value=first")),
        ("PUT", "/v2/keys/a/b?prevValue=1", Some("value=2")),
        ("PUT", "/v2/keys/gone", Some("value=x")),
        ("DELETE", "/v2/keys/gone", None),
    ] {
        let r = c.req(m, t, b).await;
        assert!(r.status < 300, "{m} {t}: {}", r.body);
    }
    let deep = "/k".repeat(8000);
    let r = c
        .req("PUT", &format!("/v2/keys{deep}"), Some("value=deep"))
        .await;
    assert_eq!(r.status, 201);
    kg.kill();

    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.json");
    let out = keygate(&[
        "export",
        "--config",
        kg.config.to_str().unwrap(),
        "--out",
        first.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&first).unwrap();
    assert!(
        text.contains("\"key\":\"/a/_hidden\""),
        "hidden nodes exported"
    );
    assert!(text.contains("\"key\":\"/_sys\""), "hidden dirs exported");
    assert!(
        text.contains("\"etcdIndex\":10"),
        "index exported: {}",
        &text[text.len() - 40..]
    );

    // Import into a fresh store, then export again: identical.
    let other = tempfile::tempdir().unwrap();
    let config = other.path().join("keygate.toml");
    let original = std::fs::read_to_string(&kg.config).unwrap();
    std::fs::write(&config, &original).unwrap();
    let out = keygate(&[
        "import",
        "--config",
        config.to_str().unwrap(),
        first.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("store index 10"));
    let second = other.path().join("second.json");
    let out = keygate(&[
        "export",
        "--config",
        config.to_str().unwrap(),
        "--out",
        second.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parse = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap();
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(move || {
                let mut de = serde_json::Deserializer::from_slice(&bytes);
                de.disable_recursion_limit();
                let v: serde_json::Value = serde::Deserialize::deserialize(&mut de).unwrap();
                without_ttl(v).to_string()
            })
            .unwrap()
            .join()
            .unwrap()
    };
    assert_eq!(parse(&first), parse(&second));

    // The imported store serves it, at the same index.
    let pki2 = pki.clone();
    let kg2 = Keygate::start_with(pki2, other, config.clone());
    let mut c = Client::h1(&kg2.addr(), &pki.ca, &cert).await;
    let r = c.req("GET", "/v2/keys/a/b", None).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"action":"get","node":{"key":"/a/b","value":"2","modifiedIndex":7,"createdIndex":1}})
    );
    assert_eq!(r.header("x-etcd-index"), Some("10"));
    drop(kg2);

    // A second import into the now non-empty store is refused, unchanged.
    let log = std::fs::read(kg.dir.path().join("data/keygate.log")).unwrap();
    let out = keygate(&[
        "import",
        "--config",
        kg.config.to_str().unwrap(),
        first.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(kg.dir.path().join("data/keygate.log")).unwrap(),
        log
    );
}

#[test]
fn malformed_import_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n[backend]\ndata_dir = \"data\"\n",
            pki.server.cert, pki.server.key, pki.ca
        ),
    )
    .unwrap();
    for (name, text) in [
        ("garbage.json", "not json"),
        ("nonode.json", "{\"action\":\"get\"}"),
        ("nokey.json", "{\"node\":{\"dir\":true,\"nodes\":[{\"value\":\"x\",\"createdIndex\":1,\"modifiedIndex\":1}]}}"),
        ("foreign.json", "{\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/a/b\",\"value\":\"x\",\"createdIndex\":1,\"modifiedIndex\":1}]}}"),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let out = keygate(&["import", "--config", config.to_str().unwrap(), f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(name), "{name}: names the file: {err}");
        assert!(!dir.path().join("data").exists(), "{name}: wrote a store");
    }
}
