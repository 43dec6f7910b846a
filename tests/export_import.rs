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

/// SPEC §5: "A recursive GET taken with curl from any etcd v2 imports too".
/// A real etcd 3.4 holds keys, empty and TTL'd directories, in-order keys,
/// an updated key, a deleted one and awkward values; its answer to
/// `GET /v2/keys/?recursive=true&sorted=true`, saved as is, is imported,
/// and keygate then answers the same listing with the same nodes, indexes
/// and absolute expirations (`ttl` counts down, so it is left out).
#[test]
fn a_recursive_get_from_etcd_3_4_imports_as_the_same_tree() {
    common::require("etcd");
    let pki = Arc::new(Pki::new());
    let cert = pki.client("admin");
    let etcd = common::start_etcd(&pki, &cert);
    let etcd_addr = etcd.url.trim_start_matches("https://").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("etcd-get.json");
    let etcd_listing = rt.block_on(async {
        let mut c = Client::h1(&etcd_addr, &pki.ca, &cert).await;
        for (m, t, b) in [
            (
                "PUT",
                "/v2/keys/app/config",
                Some("value=%22q%22+%5C+%0A+%C3%A9+%E2%9C%93+%25"),
            ),
            ("PUT", "/v2/keys/app/empty", Some("value=")),
            ("PUT", "/v2/keys/emptydir?dir=true", None),
            ("PUT", "/v2/keys/ttl?ttl=3600", Some("value=t")),
            ("PUT", "/v2/keys/tdir?dir=true&ttl=3600", None),
            ("PUT", "/v2/keys/tdir/inner", Some("value=i")),
            ("POST", "/v2/keys/queue", Some("value=first")),
            ("POST", "/v2/keys/queue", Some("value=second")),
            ("PUT", "/v2/keys/a/b/c/d", Some("value=deep")),
            ("PUT", "/v2/keys/gone", Some("value=x")),
            ("DELETE", "/v2/keys/gone", None),
            ("PUT", "/v2/keys/app/config?prevExist=true", Some("value=2")),
        ] {
            let r = c.req(m, t, b).await;
            assert!(r.status < 300, "etcd: {m} {t}: {} {}", r.status, r.body);
        }
        let r = c
            .req("GET", "/v2/keys/?recursive=true&sorted=true", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        std::fs::write(&dump, &r.body).unwrap();
        r.json()
    });
    drop(etcd);

    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n[backend]\ndata_dir = \"data\"\n[roles.all]\nread = [\"/\"]\nwrite = [\"/\"]\n[[bind]]\nany = true\nroles = [\"all\"]\n",
            pki.server.cert, pki.server.key, pki.ca
        ),
    )
    .unwrap();
    let out = keygate(&[
        "import",
        "--config",
        config.to_str().unwrap(),
        dump.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The largest modifiedIndex in etcd's answer is the store index.
    let mut max_modified = 0;
    let mut stack = vec![&etcd_listing["node"]];
    while let Some(n) = stack.pop() {
        max_modified = max_modified.max(n["modifiedIndex"].as_u64().unwrap_or(0));
        if let Some(c) = n["nodes"].as_array() {
            stack.extend(c);
        }
    }
    assert!(max_modified > 10, "etcd's answer: {etcd_listing}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("store index {max_modified}"))
            && stdout.contains("imported 14 nodes"),
        "{stdout}"
    );

    let kg = Keygate::start_with(pki.clone(), dir, config);
    rt.block_on(async {
        let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
        let r = c
            .req("GET", "/v2/keys/?recursive=true&sorted=true", None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(without_ttl(r.json()), without_ttl(etcd_listing.clone()));
        assert_eq!(
            r.header("x-etcd-index"),
            Some(max_modified.to_string().as_str())
        );
        // The index goes on from there: an in-order key sorts last.
        let r = c.req("POST", "/v2/keys/queue", Some("value=third")).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["node"]["createdIndex"], max_modified + 1);
        let r = c.req("GET", "/v2/keys/queue?sorted=true", None).await;
        let values: Vec<_> = r.json()["node"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["value"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(values, ["first", "second", "third"]);
    });
}
