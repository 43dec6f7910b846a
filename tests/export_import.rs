//! `keygate export` / `keygate import` (SPEC §5): a round trip keeps every
//! node, hidden ones and indexes included; import refuses a malformed file
//! or a non-empty store with one line and changes nothing.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{keygate_bin, seeds, Client, Keygate, Pki, Rng};

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

#[tokio::test]
async fn a_store_in_use_is_not_opened_by_export_or_import() {
    // A running keygate writes its journal: another process reading it
    // would take a record being written for a torn tail and cut it off.
    let pki = Arc::new(Pki::new());
    let cert = pki.client("admin");
    let mut kg = Keygate::start(pki.clone(), "");
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    assert_eq!(
        c.req("PUT", "/v2/keys/a", Some("value=1")).await.status,
        201
    );
    let config = kg.config.to_str().unwrap().to_string();
    let dump = kg.dir.path().join("dump.json");
    std::fs::write(&dump, sample_dump().to_string()).unwrap();
    let import = ["import", "--config", &config, dump.to_str().unwrap()];
    for args in [&["export", "--config", &config][..], &import[..]] {
        let out = keygate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("in use by another keygate"), "{args:?}: {err}");
    }
    let r = c.req("PUT", "/v2/keys/a", Some("value=2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The lock goes with the process, however it ends.
    kg.kill();
    let out = keygate(&["export", "--config", &config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node"]["nodes"][0]["value"], "2", "{v}");
}

/// A config in `dir` for the store commands: the test PKI, `data_dir` = `dir/data`.
fn store_config(pki: &Pki, dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n[backend]\ndata_dir = \"data\"\n",
            pki.server.cert, pki.server.key, pki.ca
        ),
    )
    .unwrap();
    config
}

#[test]
fn malformed_import_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config = store_config(&pki, dir.path());
    for (name, text) in [
        ("garbage.json", "not json"),
        ("nonode.json", "{\"action\":\"get\"}"),
        ("nokey.json", "{\"node\":{\"dir\":true,\"nodes\":[{\"value\":\"x\",\"createdIndex\":1,\"modifiedIndex\":1}]}}"),
        ("foreign.json", "{\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/a/b\",\"value\":\"x\",\"createdIndex\":1,\"modifiedIndex\":1}]}}"),
        // Listed without its index, it would not import again.
        ("zeroindex.json", "{\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/a\",\"value\":\"x\",\"createdIndex\":1,\"modifiedIndex\":0}]}}"),
        // A node changed before it was created.
        ("createdlater.json", "{\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/a\",\"value\":\"x\",\"createdIndex\":5,\"modifiedIndex\":4}]}}"),
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

/// A dump with every kind of node: nested and empty directories, hidden
/// keys, a TTL'd key and directory, in-order keys.
fn sample_dump() -> serde_json::Value {
    serde_json::json!({
        "action": "get",
        "etcdIndex": 9,
        "node": {"dir": true, "nodes": [
            {"key": "/a", "dir": true, "createdIndex": 2, "modifiedIndex": 2, "nodes": [
                {"key": "/a/_h", "value": "h", "createdIndex": 4, "modifiedIndex": 4},
                {"key": "/a/b", "value": "x\n\"é", "createdIndex": 2, "modifiedIndex": 3},
                {"key": "/a/c", "dir": true, "createdIndex": 5, "modifiedIndex": 5, "nodes": [
                    {"key": "/a/c/d", "value": "", "createdIndex": 5, "modifiedIndex": 5}
                ]}
            ]},
            {"key": "/d", "dir": true, "expiration": "2099-01-01T00:00:00Z", "ttl": 100, "createdIndex": 6, "modifiedIndex": 6},
            {"key": "/q", "dir": true, "createdIndex": 7, "modifiedIndex": 7, "nodes": [
                {"key": "/q/00000000000000000008", "value": "1", "createdIndex": 8, "modifiedIndex": 8}
            ]},
            {"key": "/t", "value": "v", "expiration": "2099-01-01T00:00:00.5Z", "ttl": 100, "createdIndex": 9, "modifiedIndex": 9}
        ]}
    })
}

/// One step into a JSON value.
#[derive(Clone)]
enum Step {
    Field(String),
    Item(usize),
}

/// The paths of every object in `v`.
fn object_paths(v: &serde_json::Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        serde_json::Value::Object(m) => {
            out.push(here.clone());
            for (k, child) in m {
                here.push(Step::Field(k.clone()));
                object_paths(child, here, out);
                here.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Step::Item(i));
                object_paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(mut v: &'a mut serde_json::Value, path: &[Step]) -> &'a mut serde_json::Value {
    for step in path {
        v = match step {
            Step::Field(k) => &mut v[k.as_str()],
            Step::Item(i) => &mut v[*i],
        };
    }
    v
}

/// Odd JSON a field might hold.
fn odd_value(pick: usize) -> serde_json::Value {
    use serde_json::json;
    [
        json!(null),
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(u64::MAX),
        json!(18446744073709551615u64),
        json!(""),
        json!("x"),
        json!("/"),
        json!("//a"),
        json!("/a/../b"),
        json!("/a/b/"),
        json!("/zz"),
        json!("2000-01-01T00:00:00Z"),
        json!("not a time"),
        json!([]),
        json!([{}]),
        json!({}),
        json!({"key": "/a"}),
    ][pick % 20]
        .clone()
}

/// Random edits of a valid dump (fields removed, replaced by odd values,
/// nodes repeated or moved, keys renamed): `import` either loads it —
/// and then what `export` writes imports again to the same export — or
/// refuses it in one line naming the file, with no store written; never a
/// panic. `KEYGATE_IMPORT_SEEDS=6,7` runs other seeds (150 dumps each).
#[test]
fn random_edits_of_a_dump_import_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let config_in = |name: &str| {
        let d = dir.path().join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        store_config(&pki, &d)
    };
    let (mut loaded, mut refused) = (0, 0);
    for seed in seeds("KEYGATE_IMPORT_SEEDS", "1,2,3,4,5") {
        let mut rng = Rng::new(seed);
        let mut below = |n: usize| rng.below(n);
        for i in 0..150 {
            let mut dump = sample_dump();
            for _ in 0..1 + below(3) {
                // A random object of the dump (the root's node included).
                let mut paths = Vec::new();
                object_paths(&dump, &mut Vec::new(), &mut paths);
                let path = &paths[below(paths.len())];
                let m = at_mut(&mut dump, path).as_object_mut().unwrap();
                let fields = [
                    "key",
                    "value",
                    "dir",
                    "nodes",
                    "createdIndex",
                    "modifiedIndex",
                    "expiration",
                    "ttl",
                    "node",
                    "etcdIndex",
                ];
                let field = fields[below(fields.len())];
                match below(4) {
                    0 => {
                        m.remove(field);
                    }
                    1 => {
                        m.insert(field.to_string(), odd_value(below(20)));
                    }
                    2 => {
                        // Repeat or move a child.
                        if let Some(serde_json::Value::Array(nodes)) = m.get_mut("nodes") {
                            if !nodes.is_empty() {
                                let n = nodes[below(nodes.len())].clone();
                                nodes.push(n);
                            }
                        }
                    }
                    _ => {
                        if m.contains_key("key") {
                            let keys = [
                                "/a",
                                "/a/b",
                                "/a/b/x",
                                "/q/00000000000000000008",
                                "/_x",
                                "/a/c/d/e",
                                "/new",
                            ];
                            m.insert("key".into(), serde_json::json!(keys[below(keys.len())]));
                        }
                    }
                }
            }
            let text = serde_json::to_string(&dump).unwrap();
            let file = dir.path().join(format!("dump-{seed}-{i}.json"));
            std::fs::write(&file, &text).unwrap();
            let config = config_in("one");
            let data = config.parent().unwrap().join("data");
            let out = keygate(&[
                "import",
                "--config",
                config.to_str().unwrap(),
                file.to_str().unwrap(),
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            let what = format!("seed {seed} dump {i}: {text}\nstderr: {err}");
            assert!(!err.contains("panicked"), "{what}");
            match out.status.code() {
                Some(0) => {
                    loaded += 1;
                    // What export writes imports again, to the same export.
                    let first = dir.path().join("first.json");
                    let second = dir.path().join("second.json");
                    let again = config_in("two");
                    let (c1, c2) = (config.to_str().unwrap(), again.to_str().unwrap());
                    let (f1, f2) = (first.to_str().unwrap(), second.to_str().unwrap());
                    for (step, args) in [
                        ("export", vec!["export", "--config", c1, "--out", f1]),
                        ("re-import", vec!["import", "--config", c2, f1]),
                        ("export", vec!["export", "--config", c2, "--out", f2]),
                    ] {
                        let out = keygate(&args);
                        assert!(
                            out.status.success(),
                            "{step}: {what}\n{}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    let read = |f: &std::path::Path| -> serde_json::Value {
                        serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()
                    };
                    assert_eq!(
                        without_ttl(read(&first)),
                        without_ttl(read(&second)),
                        "{what}"
                    );
                }
                Some(2) => {
                    refused += 1;
                    assert_eq!(err.lines().count(), 1, "{what}");
                    assert!(
                        err.contains(&format!("dump-{seed}-{i}.json")),
                        "names the file: {what}"
                    );
                    assert!(!data.exists(), "a refused import wrote a store: {what}");
                }
                other => panic!("exit status {other:?}: {what}"),
            }
        }
    }
    eprintln!("{loaded} dumps loaded, {refused} refused");
    assert!(
        loaded > 10 && refused > 30,
        "{loaded} loaded, {refused} refused"
    );
}
