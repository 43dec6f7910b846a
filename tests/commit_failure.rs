//! SPEC §5, commit failure: on a small tmpfs that fills up, the write that
//! hits the full disk answers 500 with errorCode 300, later writes are
//! refused, reads still work; after a restart with space, the failed write
//! is absent and everything acknowledged is there.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::{Client, Keygate, Pki};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "this test mounts a small tmpfs and needs root (run .ci/run as root)"
        );
        Tmpfs(at)
    }

    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn full_disk_fails_the_write_and_keeps_everything_acknowledged() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("admin");
    let dir = tempfile::tempdir().unwrap();
    let mnt = Tmpfs::mount(dir.path().join("mnt"), "192k");
    let config = dir.path().join("keygate.toml");
    let ops = common::free_port();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:{ops}\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\
             [backend]\ndata_dir = {:?}\n\
             [roles.all]\nread = [\"/\"]\nwrite = [\"/\"]\nadmin = true\n\
             [[bind]]\nany = true\nroles = [\"all\"]\n",
            pki.server.cert,
            pki.server.key,
            pki.ca,
            mnt.0.join("data")
        ),
    )
    .unwrap();
    let kg = Keygate::start_with(pki.clone(), dir, config);
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    assert_eq!(
        common::ops_request(ops, "GET", "/readyz"),
        (200, "ready\n".into())
    );

    let value = "v".repeat(4000);
    let mut acknowledged = Vec::new();
    let mut failed = None;
    for i in 0..200 {
        let r = c
            .req(
                "PUT",
                &format!("/v2/keys/fill/{i}"),
                Some(&format!("value={value}")),
            )
            .await;
        match r.status {
            201 => acknowledged.push(i),
            500 => {
                let j = r.json();
                assert_eq!(j["errorCode"], 300, "{}", r.body);
                assert_eq!(j["message"], "Raft Internal Error");
                assert!(
                    j["cause"].as_str().unwrap().contains("No space left"),
                    "{}",
                    r.body
                );
                failed = Some(i);
                break;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let failed = failed.expect("the tmpfs never filled up");
    assert!(!acknowledged.is_empty());

    // Later writes are refused, even small ones; reads go on.
    let r = c.req("PUT", "/v2/keys/small", Some("value=1")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["errorCode"], 300);
    let r = c.req("DELETE", "/v2/keys/fill/0", None).await;
    assert_eq!(r.status, 500, "{}", r.body);
    let r = c.req("GET", "/v2/keys/fill/0", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.req("GET", &format!("/v2/keys/fill/{failed}"), None).await;
    assert_eq!(r.status, 404, "the failed write became visible: {}", r.body);
    let index_before: u64 = r.header("x-etcd-index").unwrap().parse().unwrap();
    // /readyz fails and says why; the process is still healthy.
    let (status, body) = common::ops_request(ops, "GET", "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("refuses writes") && body.contains("No space left"),
        "{body}"
    );
    assert_eq!(common::ops_request(ops, "GET", "/healthz").0, 200);
    let (_, metrics) = common::ops_request(ops, "GET", "/metrics");
    assert!(metrics.contains("\nkeygate_store_failed 1\n"), "{metrics}");

    // Restart with space: the failed write is absent, the rest is there.
    mnt.grow("8m");
    let kg = kg.restart();
    let mut c = Client::h1(&kg.addr(), &pki.ca, &cert).await;
    for i in &acknowledged {
        let r = c.req("GET", &format!("/v2/keys/fill/{i}"), None).await;
        assert_eq!(r.status, 200, "acknowledged write {i} lost: {}", r.body);
        assert_eq!(r.json()["node"]["value"], value.as_str());
    }
    let r = c.req("GET", &format!("/v2/keys/fill/{failed}"), None).await;
    assert_eq!(r.status, 404, "the failed write came back: {}", r.body);
    assert_eq!(r.header("x-etcd-index").unwrap(), index_before.to_string());
    let r = c.req("PUT", "/v2/keys/after", Some("value=ok")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(common::ops_request(ops, "GET", "/readyz").0, 200);
    drop(kg);
}
