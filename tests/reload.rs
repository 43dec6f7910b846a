//! Reload on SIGHUP (SPEC §6): new roles, binds, CAs and CRLs apply to new
//! handshakes and to the next request of every open connection; a chain
//! the new configuration no longer trusts loses its connections; every
//! waiting watch is decided again; a configuration that does not load is
//! refused whole while the one before it keeps serving.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, metric, ops_request, quick, CertFiles, Client, Keygate, Pki};
use rcgen::SerialNumber;

/// A config file for `pki` with the ops listener on `ops`; `tls_extra`
/// and `rest` (roles and binds) are appended to their sections.
fn write_config(path: &Path, pki: &Pki, ca: &Path, ops: u16, tls_extra: &str, rest: &str) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:{ops}\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {ca:?}\n{tls_extra}\n\
             [backend]\ndata_dir = \"data\"\n\
             [roles.admin]\nread = [\"/\"]\nwrite = [\"/\"]\n\
             [[bind]]\ncn = \"admin\"\nroles = [\"admin\"]\n\
             {rest}",
            pki.server.cert, pki.server.key
        ),
    )
    .unwrap();
}

const TEAM_A_OWNS_A: &str = "[roles.team]\nread = [\"/team-a\"]\nwrite = [\"/team-a\"]\n\
                             [[bind]]\ncn = \"team-a-*\"\nroles = [\"team\"]\n";
const TEAM_A_OWNS_B: &str = "[roles.team]\nread = [\"/team-b\"]\nwrite = [\"/team-b\"]\n\
                             [[bind]]\ncn = \"team-a-*\"\nroles = [\"team\"]\n";

struct Setup {
    pki: Arc<Pki>,
    kg: Keygate,
    config: PathBuf,
    ops: u16,
}

impl Setup {
    fn start(rest: &str) -> Setup {
        let pki = Arc::new(Pki::new());
        let ops = free_port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keygate.toml");
        write_config(&config, &pki, &pki.ca, ops, "", rest);
        let kg = Keygate::start_with(pki.clone(), dir, config.clone());
        Setup {
            pki,
            kg,
            config,
            ops,
        }
    }

    fn rewrite(&self, ca: &Path, tls_extra: &str, rest: &str) {
        write_config(&self.config, &self.pki, ca, self.ops, tls_extra, rest);
    }

    /// Sends SIGHUP and waits for the log line of its outcome: `true` when
    /// it was applied.
    fn sighup(&self) -> bool {
        let count = |kg: &Keygate| {
            let log = kg.log.lock().unwrap();
            let n = |s: &str| log.iter().filter(|l| l.contains(s)).count();
            (n("configuration reloaded"), n("reload refused"))
        };
        let before = count(&self.kg);
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.kg.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = count(&self.kg);
            if now.0 > before.0 {
                return true;
            }
            if now.1 > before.1 {
                return false;
            }
            assert!(Instant::now() < deadline, "no reload outcome in the log");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn connect(&self, cert: &CertFiles, h2: bool) -> Client {
        Client::try_connect(&self.kg.addr(), &self.pki.ca, Some(cert), h2)
            .await
            .unwrap()
    }

    fn metrics(&self) -> String {
        ops_request(self.ops, "GET", "/metrics").1
    }

    fn log_has(&self, needle: &str) -> bool {
        self.kg
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }
}

#[tokio::test]
async fn a_reload_applies_new_roles_to_open_connections_and_watches() {
    let s = Setup::start(TEAM_A_OWNS_A);
    let team = s.pki.client("team-a-1");
    let admin = s.pki.client("admin");
    let mut c = s.connect(&team, false).await;
    let mut root = s.connect(&admin, false).await;
    assert_eq!(
        c.req("PUT", "/v2/keys/team-a/x", Some("value=1"))
            .await
            .status,
        201
    );
    assert_eq!(c.req("GET", "/v2/keys/team-b/x", None).await.status, 403);
    assert_eq!(
        root.req("PUT", "/v2/keys/team-b/x", Some("value=1"))
            .await
            .status,
        201
    );

    // Two watches on one HTTP/2 connection: one on a key the reload takes
    // away, one recursive from the root (filtered to the client's view).
    let mut h2 = s.connect(&team, true).await;
    let lost = h2
        .send("GET", "/v2/keys/team-a/x?wait=true", None, &[])
        .await
        .unwrap();
    let filtered = h2
        .send("GET", "/v2/keys/?wait=true&recursive=true", None, &[])
        .await
        .unwrap();
    assert_eq!(lost.status(), 200);
    assert_eq!(filtered.status(), 200);
    // The same two over HTTP/1.1, each on its own connection (their
    // answers are written by the store's fan-out).
    let mut lost_h1 = s.connect(&team, false).await;
    let lost1 = lost_h1
        .send("GET", "/v2/keys/team-a/x?wait=true", None, &[])
        .await
        .unwrap();
    let mut filtered_h1 = s.connect(&team, false).await;
    let filtered1 = filtered_h1
        .send("GET", "/v2/keys/?wait=true&recursive=true", None, &[])
        .await
        .unwrap();
    assert_eq!(lost1.status(), 200);
    assert_eq!(filtered1.status(), 200);
    // An admin watch, unfiltered, that the reload leaves alone.
    let mut admin_h2 = s.connect(&admin, true).await;
    let kept = admin_h2
        .send("GET", "/v2/keys/team-b/x?wait=true", None, &[])
        .await
        .unwrap();

    s.rewrite(&s.pki.ca, "", TEAM_A_OWNS_B);
    assert!(s.sighup());

    // The watch on /team-a/x ended: its body ends without an event.
    let r = quick(common::read(lost)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = quick(common::read(lost1)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    // Its connection goes on, under the new roles.
    let r = lost_h1.req("GET", "/v2/keys/team-b/x", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The same connection's next requests are decided under the new roles.
    let r = c.req("GET", "/v2/keys/team-a/x", None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.req("PUT", "/v2/keys/team-b/x", Some("value=2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The recursive watch goes on, with the new view: it sees /team-b.
    let r = quick(common::read(filtered)).await;
    assert_eq!(r.json()["node"]["key"], "/team-b/x", "{}", r.body);
    assert_eq!(r.json()["node"]["value"], "2", "{}", r.body);
    let r = quick(common::read(filtered1)).await;
    assert_eq!(r.json()["node"]["key"], "/team-b/x", "{}", r.body);
    assert_eq!(r.json()["node"]["value"], "2", "{}", r.body);
    let r = quick(common::read(kept)).await;
    assert_eq!(r.json()["node"]["value"], "2", "{}", r.body);
    // New connections too.
    let mut fresh = s.connect(&team, false).await;
    assert_eq!(
        fresh.req("GET", "/v2/keys/team-a/x", None).await.status,
        403
    );
    assert_eq!(
        fresh.req("GET", "/v2/keys/team-b/x", None).await.status,
        200
    );

    let m = s.metrics();
    assert_eq!(metric(&m, "keygate_reloads_total{result=\"ok\"}"), 1.0);
    assert_eq!(metric(&m, "keygate_reloads_total{result=\"failed\"}"), 0.0);
    assert_eq!(metric(&m, "keygate_last_reload_failed"), 0.0);
    assert_eq!(
        ops_request(s.ops, "GET", "/readyz"),
        (200, "ready\n".into())
    );
}

#[tokio::test]
async fn a_refused_reload_keeps_the_configuration_before_it() {
    let s = Setup::start(TEAM_A_OWNS_A);
    let team = s.pki.client("team-a-1");
    let mut c = s.connect(&team, false).await;
    assert_eq!(
        c.req("PUT", "/v2/keys/team-a/x", Some("value=1"))
            .await
            .status,
        201
    );

    // A bind naming an undefined role: the whole file is refused.
    s.rewrite(
        &s.pki.ca,
        "",
        "[roles.team]\nread = [\"/team-b\"]\n[[bind]]\ncn = \"team-a-*\"\nroles = [\"nope\"]\n",
    );
    assert!(!s.sighup());
    assert_eq!(c.req("GET", "/v2/keys/team-a/x", None).await.status, 200);
    let mut fresh = s.connect(&team, false).await;
    assert_eq!(
        fresh.req("GET", "/v2/keys/team-a/x", None).await.status,
        200
    );
    assert_eq!(
        fresh.req("GET", "/v2/keys/team-b/x", None).await.status,
        403
    );
    let (status, body) = ops_request(s.ops, "GET", "/readyz");
    assert_eq!(status, 200);
    assert!(body.starts_with("ready\nlast reload failed: "), "{body}");
    assert!(
        body.contains("nope") && body.contains(s.config.to_str().unwrap()),
        "{body}"
    );
    let m = s.metrics();
    assert_eq!(metric(&m, "keygate_reloads_total{result=\"failed\"}"), 1.0);
    assert_eq!(metric(&m, "keygate_last_reload_failed"), 1.0);

    // A certificate file that is not there: refused too.
    s.rewrite(&s.pki.path("missing-ca.pem"), "", TEAM_A_OWNS_B);
    assert!(!s.sighup());
    assert_eq!(c.req("GET", "/v2/keys/team-a/x", None).await.status, 200);
    let (_, body) = ops_request(s.ops, "GET", "/readyz");
    assert!(body.contains("tls.client_ca"), "{body}");

    // A good file with a field that needs a restart: the roles apply, the
    // field does not, and the log says so.
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.rewrite(&s.pki.ca, "", TEAM_A_OWNS_B);
    let text_b = std::fs::read_to_string(&s.config).unwrap();
    assert_ne!(text, text_b);
    std::fs::write(
        &s.config,
        text_b.replace("[server]\n", "[server]\nidle_timeout = \"5s\"\n"),
    )
    .unwrap();
    assert!(s.sighup());
    let restart = "server.idle_timeout changed and needs a restart";
    assert!(s.log_has(restart));
    assert!(!s.log_has("backend changed"));
    // Still not applied at the next reload, so still said.
    let said = |s: &Setup| {
        s.kg.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(restart))
            .count()
    };
    assert_eq!(said(&s), 1);
    assert!(s.sighup());
    assert_eq!(said(&s), 2);
    assert_eq!(c.req("GET", "/v2/keys/team-a/x", None).await.status, 403);
    assert_eq!(
        ops_request(s.ops, "GET", "/readyz"),
        (200, "ready\n".into())
    );
    let m = s.metrics();
    assert_eq!(metric(&m, "keygate_reloads_total{result=\"ok\"}"), 2.0);
    assert_eq!(metric(&m, "keygate_reloads_total{result=\"failed\"}"), 2.0);
    assert_eq!(metric(&m, "keygate_last_reload_failed"), 0.0);
}

#[tokio::test]
async fn a_reload_closes_the_connections_of_chains_it_no_longer_trusts() {
    let s = Setup::start(TEAM_A_OWNS_A);
    let revoked = s.pki.issue("team-a-revoked", |p| {
        p.serial_number = Some(SerialNumber::from(0x5001u64));
    });
    let kept = s.pki.issue("team-a-kept", |p| {
        p.serial_number = Some(SerialNumber::from(0x5002u64));
    });
    let mut r1 = s.connect(&revoked, false).await;
    let mut k1 = s.connect(&kept, false).await;
    assert_eq!(
        r1.req("PUT", "/v2/keys/team-a/x", Some("value=1"))
            .await
            .status,
        201
    );
    assert_eq!(k1.req("GET", "/v2/keys/team-a/x", None).await.status, 200);
    let mut r2 = s.connect(&revoked, true).await;
    let watch = r2
        .send("GET", "/v2/keys/team-a/x?wait=true", None, &[])
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);

    // A CRL revoking one of the two.
    let crl = s.pki.path("reload.crl");
    s.pki.root.crl(&crl, &[0x5001]);
    s.rewrite(&s.pki.ca, &format!("crl = [{crl:?}]"), TEAM_A_OWNS_A);
    assert!(s.sighup());
    // Its connections are closed: the waiting watch ends without an event,
    // the idle connection cannot be used again.
    let ended = quick(async {
        use http_body_util::BodyExt;
        let mut body = watch.into_body();
        let mut got = Vec::new();
        while let Some(f) = body.frame().await {
            match f {
                Ok(f) => got.extend_from_slice(f.data_ref().map_or(&[][..], |d| d.as_ref())),
                Err(_) => break,
            }
        }
        got
    })
    .await;
    assert!(ended.is_empty(), "{:?}", String::from_utf8_lossy(&ended));
    let deadline = Instant::now() + Duration::from_secs(5);
    while r1.send("GET", "/v2/keys/team-a/x", None, &[]).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the revoked client's connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new handshake with it fails; the other client goes on.
    let again = Client::try_connect(&s.kg.addr(), &s.pki.ca, Some(&revoked), false).await;
    if let Ok(mut c) = again {
        // TLS 1.3: the refusal comes with the first read.
        assert!(c.send("GET", "/v2/keys/", None, &[]).await.is_err());
    }
    assert_eq!(k1.req("GET", "/v2/keys/team-a/x", None).await.status, 200);

    // A new client CA: every chain of the old one loses its connections,
    // and the new CA's clients come in.
    let other = common::Ca::root("another test CA");
    let other_ca = s.pki.path("other-ca.pem");
    other.write_pem(&other_ca);
    let newcomer = other.issue(s.pki.dir.path(), "team-a-new", |_| {});
    s.rewrite(&other_ca, "", TEAM_A_OWNS_A);
    assert!(s.sighup());
    let deadline = Instant::now() + Duration::from_secs(5);
    while k1.send("GET", "/v2/keys/team-a/x", None, &[]).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "a connection of the old CA stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut n = s.connect(&newcomer, false).await;
    let r = n.req("GET", "/v2/keys/team-a/x", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The development CA's key is public: keygate refuses to trust it off
/// loopback without --allow-dev-certs, and a reload may not bring it in
/// where the start would have been refused.
#[tokio::test]
async fn a_reload_to_the_development_ca_is_refused_off_loopback() {
    let pki = Arc::new(Pki::new());
    let ops = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    let off_loopback = |config: &Path| {
        let text = std::fs::read_to_string(config).unwrap().replace(
            "listen = \"127.0.0.1:0\"",
            "listen = \"0.0.0.0:0\"\nadvertise_url = \"https://127.0.0.1:2379\"",
        );
        std::fs::write(config, text).unwrap();
    };
    write_config(&config, &pki, &pki.ca, ops, "", "");
    off_loopback(&config);
    let kg = Keygate::start_with(pki.clone(), dir, config.clone());
    let s = Setup {
        pki,
        kg,
        config,
        ops,
    };
    let admin = s.pki.client("admin");
    let mut c = s.connect(&admin, false).await;
    assert_eq!(
        c.req("PUT", "/v2/keys/x", Some("value=1")).await.status,
        201
    );

    // The development CA beside the one in use.
    let dev = common::Ca::root("keygate development CA (a test's own)");
    let dev_pem = s.pki.path("dev-ca.pem");
    dev.write_pem(&dev_pem);
    let bundle = s.pki.path("bundle.pem");
    let mut both = std::fs::read(&s.pki.ca).unwrap();
    both.extend(std::fs::read(&dev_pem).unwrap());
    std::fs::write(&bundle, both).unwrap();
    s.rewrite(&bundle, "", "");
    off_loopback(&s.config);
    assert!(!s.sighup());
    let (status, body) = ops_request(s.ops, "GET", "/readyz");
    assert_eq!(status, 200);
    assert!(
        body.contains("development CA") && body.contains("--allow-dev-certs"),
        "{body}"
    );
    assert_eq!(c.req("GET", "/v2/keys/x", None).await.status, 200);
}

/// SPEC §6: only certificates, CAs, CRLs, roles and binds reload.
/// `tls.min_version` is logged as needing a restart and not applied: a
/// TLS 1.2 client still connects.
#[tokio::test]
async fn a_reload_does_not_change_the_tls_versions() {
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Setup::start("");
    s.rewrite(&s.pki.ca, "min_version = \"1.3\"", "");
    assert!(s.sighup());
    assert!(s.log_has("tls.min_version changed and needs a restart"));
    let admin = s.pki.client("admin");
    let tcp = tokio::net::TcpStream::connect(s.kg.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(common::tls12_config(&s.pki.ca, Some(&admin)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS 1.2 handshake after the reload");
    tls.write_all(b"GET /v2/keys/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    quick(tls.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}
