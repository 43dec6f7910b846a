//! Who may connect and who the client is (SPEC §3.1, §6 "Identity ends
//! with its certificate", §7): the handshake accepts exactly the client
//! certificates SPEC allows, identity comes from the verified leaf only,
//! `keygate explain` and `keygate check` say so, and a connection ends when
//! its certificate's notAfter passes.
//!
//! Every certificate here is made with rcgen (tests/common). "Refused" means
//! the TLS handshake fails, or — TLS 1.3 lets the client finish its side
//! before the server has checked the certificate — the connection closes
//! before any HTTP answer to the first request. After each refusal the same
//! server must still serve a valid client.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read, Ca, CertFiles, Client, Keygate, Pki};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose, SanType,
};
use rcgen::{ExtendedKeyUsagePurpose, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long any single network step may take before the test fails.
const STEP: Duration = Duration::from_secs(10);

/// The roles and binds most tests use.
const POLICY: &str = r#"
[roles.team-a]
read = ["/team-a"]
write = ["/team-a"]

[roles.team-b]
read = ["/team-b"]
write = ["/team-b"]

[roles.platform]
read = ["/platform"]
write = ["/platform"]

[[bind]]
cn = "team-a-*"
roles = ["team-a"]

[[bind]]
uri = "spiffe://example.org/ns/team-b/*"
roles = ["team-b"]

[[bind]]
ou = "platform"
roles = ["platform"]
"#;

/// Writes a config (listen on port 0) into a fresh directory.
fn write_config(
    pki: &Pki,
    client_ca: &Path,
    crl: &[PathBuf],
    policy: &str,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n\
             [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\ncrl = {:?}\n\n\
             [backend]\ndata_dir = \"data\"\n{policy}",
            pki.server.cert, pki.server.key, client_ca, crl
        ),
    )
    .unwrap();
    (dir, config)
}

/// Starts keygate trusting `client_ca` (default: the PKI's root) with
/// `crl` and `policy`.
fn start(pki: &Arc<Pki>, client_ca: Option<&Path>, crl: &[PathBuf], policy: &str) -> Keygate {
    let ca = client_ca.map_or_else(|| pki.ca.clone(), Path::to_path_buf);
    let (dir, config) = write_config(pki, &ca, crl, policy);
    Keygate::start_with(pki.clone(), dir, config)
}

/// Connects with HTTP/1.1 presenting `cert`; panics if refused.
async fn connect(kg: &Keygate, cert: &CertFiles) -> Client {
    match tokio::time::timeout(
        STEP,
        Client::try_connect(&kg.addr(), &kg.pki.ca, Some(cert), false),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("{}: handshake refused: {e}", cert.cert.display()),
        Err(_) => panic!(
            "{}: handshake did not finish in {STEP:?}",
            cert.cert.display()
        ),
    }
}

/// Asserts that `cert` completes the handshake and gets an HTTP answer
/// (`GET /version` is answered to every verified client).
async fn assert_accepted(kg: &Keygate, cert: &CertFiles) {
    let mut c = connect(kg, cert).await;
    let r = tokio::time::timeout(STEP, c.req("GET", "/version", None))
        .await
        .unwrap_or_else(|_| panic!("{}: no answer to GET /version", cert.cert.display()));
    assert_eq!(
        r.status,
        200,
        "{}: GET /version: {r:?}",
        cert.cert.display()
    );
}

/// Asserts that `cert` is refused: a failed handshake, or a connection
/// closed before any HTTP answer to a first request. Returns why, as the
/// client saw it (e.g. "received fatal alert: CertificateExpired").
async fn assert_refused(kg: &Keygate, cert: &CertFiles) -> String {
    refusal(kg, Some(cert)).await
}

/// [`assert_refused`] for a client that may present no certificate.
async fn refusal(kg: &Keygate, cert: Option<&CertFiles>) -> String {
    let what = cert.map_or_else(
        || "no client certificate".to_string(),
        |c| c.cert.display().to_string(),
    );
    let connector = TlsConnector::from(common::tls_config(&kg.pki.ca, cert, &[b"http/1.1"]));
    let attempt = async {
        let tcp = TcpStream::connect(kg.addr()).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // TLS 1.3: the server's verdict arrives as an alert on the
        // client's first read.
        tls.write_all(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 512];
        match tls.read(&mut buf).await {
            Err(e) => Err(format!("read: {e}")),
            Ok(0) => Err("closed without an answer".to_string()),
            Ok(n) => Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
        }
    };
    match tokio::time::timeout(STEP, attempt).await {
        Err(_) => panic!(
            "{what}: expected the connection to be refused; it stayed open with no answer for {STEP:?}"
        ),
        Ok(Ok(answer)) => {
            panic!("{what}: expected a refused handshake; got an HTTP answer {answer:?}")
        }
        Ok(Err(reason)) => reason,
    }
}

/// [`assert_refused`], and the reason names `alert`.
async fn assert_refused_with(kg: &Keygate, cert: &CertFiles, alert: &str) {
    let reason = assert_refused(kg, cert).await;
    assert!(
        reason.contains(alert),
        "{}: refused, but expected alert {alert}; got {reason:?}",
        cert.cert.display()
    );
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// SHA-256 of the first certificate in a PEM file, as upper-case hex
/// pairs joined by colons (the way `openssl x509 -fingerprint` prints it).
fn colon_sha256_of_pem(path: &Path) -> String {
    let der = CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    colon_sha256(der.as_ref())
}

fn colon_sha256(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The subject attributes of the first certificate of a PEM file with OID
/// `oid` (e.g. "2.5.4.3"), as strings.
fn subject_attrs(path: &Path, oid: &str) -> Vec<String> {
    let der = CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.subject()
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == oid)
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// A copy of `files` whose certificate file holds only the leaf.
fn leaf_only(files: &CertFiles) -> CertFiles {
    const END: &str = "-----END CERTIFICATE-----";
    let pem = std::fs::read_to_string(&files.cert).unwrap();
    let end = pem.find(END).expect("a PEM certificate") + END.len();
    let cert = files.cert.with_extension("leaf-only.pem");
    std::fs::write(&cert, format!("{}\n", &pem[..end])).unwrap();
    CertFiles {
        cert,
        key: files.key.clone(),
    }
}

// ---------------------------------------------------------------------
// 1. Handshake: accept or refuse as SPEC §7 says.
// ---------------------------------------------------------------------

#[tokio::test]
async fn valid_certificate_is_accepted_and_gets_its_roles() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let cert = pki.client("team-a-1");
    assert_accepted(&kg, &cert).await;
    let mut c = connect(&kg, &cert).await;
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.req("GET", "/v2/keys/team-b/k", None).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    refusal(&kg, None).await;
    assert_accepted(&kg, &pki.client("team-a-ok")).await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let expired = pki.issue("team-a-expired", |p| {
        p.not_before = now() - time::Duration::days(2);
        p.not_after = now() - time::Duration::days(1);
    });
    assert_refused_with(&kg, &expired, "CertificateExpired").await;
    assert_accepted(&kg, &pki.client("team-a-ok")).await;
}

#[tokio::test]
async fn not_yet_valid_certificate_is_refused() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let early = pki.issue("team-a-early", |p| {
        p.not_before = now() + time::Duration::days(1);
        p.not_after = now() + time::Duration::days(2);
    });
    assert_refused_with(&kg, &early, "CertificateExpired").await;
    assert_accepted(&kg, &pki.client("team-a-ok")).await;
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_is_refused() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    // Same CA name, same client name: only the keys differ.
    let impostor = Pki::new();
    assert_refused(&kg, &impostor.client("team-a-1")).await;
    assert_accepted(&kg, &pki.client("team-a-1")).await;
    // A CA with a name client_ca does not hold.
    let stranger = Ca::root("stranger CA");
    let cert = stranger.issue(pki.dir.path(), "team-a-stranger", |_| {});
    assert_refused_with(&kg, &cert, "UnknownCA").await;
    assert_accepted(&kg, &pki.client("team-a-2")).await;
}

#[tokio::test]
async fn revoked_certificate_is_refused_and_its_sibling_accepted() {
    let pki = Arc::new(Pki::new());
    let revoked = pki.issue("team-a-revoked", |p| {
        p.serial_number = Some(SerialNumber::from(0x1001u64));
    });
    let sibling = pki.issue("team-a-sibling", |p| {
        p.serial_number = Some(SerialNumber::from(0x1002u64));
    });
    let crl = pki.path("root.crl.pem");
    pki.root.crl(&crl, &[0x1001]);
    let kg = start(&pki, None, &[crl], POLICY);
    assert_refused_with(&kg, &revoked, "CertificateRevoked").await;
    assert_accepted(&kg, &sibling).await;
    assert_refused_with(&kg, &revoked, "CertificateRevoked").await;
    assert_accepted(&kg, &pki.client("team-a-other")).await;
}

/// The root's CRL revoking `serials`, issued ten days ago and past its
/// nextUpdate for three: `stale.crl.pem`.
fn stale_crl(pki: &Pki, serials: &[u64]) -> PathBuf {
    let path = pki.path("stale.crl.pem");
    pki.root.crl_dated(
        &path,
        serials,
        now() - time::Duration::days(10),
        now() - time::Duration::days(3),
    );
    path
}

#[tokio::test]
async fn crl_past_its_next_update_is_still_used() {
    let pki = Arc::new(Pki::new());
    let revoked = pki.issue("team-a-revoked", |p| {
        p.serial_number = Some(SerialNumber::from(0x3001u64));
    });
    let sibling = pki.issue("team-a-sibling", |p| {
        p.serial_number = Some(SerialNumber::from(0x3002u64));
    });
    let crl = stale_crl(&pki, &[0x3001]);
    let kg = start(&pki, None, &[crl], POLICY);
    assert_refused_with(&kg, &revoked, "CertificateRevoked").await;
    assert_accepted(&kg, &sibling).await;
}

/// SPEC §7: a CRL past its nextUpdate is still used, and a metric shows
/// its age.
#[tokio::test]
async fn a_crl_age_is_a_metric() {
    let pki = Arc::new(Pki::new());
    let stale = stale_crl(&pki, &[]);
    let (dir, config) = write_config(&pki, &pki.ca, &[stale], POLICY);
    let ops = common::free_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"\n",
        &format!("listen = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:{ops}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let _kg = Keygate::start_with(pki.clone(), dir, config);
    let (_, m) = common::ops_request(ops, "GET", "/metrics");
    let age = common::metric(&m, "keygate_crl_age_seconds{index=\"1\"}");
    assert!((age - 10.0 * 86_400.0).abs() < 600.0, "{age}: {m}");
    let next = common::metric(&m, "keygate_crl_next_update_seconds{index=\"1\"}");
    assert!((next + 3.0 * 86_400.0).abs() < 600.0, "{next}: {m}");
}

#[tokio::test]
async fn with_crls_an_issuer_without_a_crl_is_refused() {
    let pki = Arc::new(Pki::new());
    let inter = pki.intermediate("team issuing CA", |_| {});
    let via_inter = pki.issue_from(&inter, "team-a-via-inter", |_| {});
    let direct = pki.client("team-a-direct");
    let root_crl = pki.path("root.crl.pem");
    pki.root.crl(&root_crl, &[]);

    // Only the root has a CRL: the leaf below the intermediate is not
    // covered, so it is refused; a leaf the root issued is covered.
    let kg = start(&pki, None, std::slice::from_ref(&root_crl), POLICY);
    assert_refused_with(&kg, &via_inter, "UnknownCA").await;
    assert_accepted(&kg, &direct).await;
    drop(kg);

    // With the intermediate's CRL too, the same chain is accepted.
    let inter_crl = pki.path("inter.crl.pem");
    inter.crl(&inter_crl, &[]);
    let kg = start(&pki, None, &[root_crl, inter_crl], POLICY);
    assert_accepted(&kg, &via_inter).await;
    assert_accepted(&kg, &direct).await;
}

#[tokio::test]
async fn server_auth_only_eku_is_refused() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let server_only = pki.issue("team-a-serverauth", |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    assert_refused_with(&kg, &server_only, "UnsupportedCertificate").await;
    assert_accepted(&kg, &pki.client("team-a-ok")).await;
}

#[tokio::test]
async fn no_eku_extension_is_accepted() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let no_eku = pki.issue("team-a-no-eku", |p| p.extended_key_usages = vec![]);
    // Precondition: the certificate really has no EKU extension.
    let der = CertificateDer::pem_file_iter(&no_eku.cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    assert!(parsed.extended_key_usage().unwrap().is_none());

    assert_accepted(&kg, &no_eku).await;
    let mut c = connect(&kg, &no_eku).await;
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn ca_certificate_as_leaf_is_refused() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    // A CA certificate (basicConstraints cA=TRUE) issued by the trusted
    // root, with clientAuth.
    let ca_leaf = pki.issue("team-a-ca-leaf", |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    });
    assert_refused(&kg, &ca_leaf).await;
    assert_accepted(&kg, &pki.client("team-a-ok")).await;

    // The trusted root itself, presented with its key.
    let root = CertFiles {
        cert: pki.ca.clone(),
        key: pki.path("root-key.pem"),
    };
    std::fs::write(&root.key, pki.root.key.serialize_pem()).unwrap();
    assert_refused(&kg, &root).await;
    assert_accepted(&kg, &pki.client("team-a-ok")).await;
}

#[tokio::test]
async fn chain_through_an_intermediate_the_client_sends_is_accepted() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let inter = pki.intermediate("issuing CA 1", |_| {});
    let leaf = pki.issue_from(&inter, "team-a-chained", |_| {});
    assert_eq!(
        CertificateDer::pem_file_iter(&leaf.cert).unwrap().count(),
        2,
        "the client sends leaf + intermediate"
    );
    assert_accepted(&kg, &leaf).await;
    let mut c = connect(&kg, &leaf).await;
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");

    // Without the intermediate, the leaf does not chain to client_ca.
    assert_refused_with(&kg, &leaf_only(&leaf), "UnknownCA").await;
    assert_accepted(&kg, &leaf).await;
}

#[tokio::test]
async fn spiffe_only_certificate_is_accepted_and_matched_by_uri() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let spiffe = pki.issue("spiffe-web", |p| {
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![SanType::URI(
            "spiffe://example.org/ns/team-b/web".try_into().unwrap(),
        )];
    });
    assert!(subject_attrs(&spiffe.cert, "2.5.4.3").is_empty(), "no CN");
    assert_accepted(&kg, &spiffe).await;
    let mut c = connect(&kg, &spiffe).await;
    let r = c.req("PUT", "/v2/keys/team-b/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "uri bind should grant team-b: {r:?}");
    let r = c.req("GET", "/v2/keys/team-b/k", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 403, "{r:?}");

    // `*` does not cross `/`: a deeper SPIFFE path does not match.
    let deeper = pki.issue("spiffe-deeper", |p| {
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![SanType::URI(
            "spiffe://example.org/ns/team-b/web/extra"
                .try_into()
                .unwrap(),
        )];
    });
    let mut c = connect(&kg, &deeper).await;
    let r = c.req("PUT", "/v2/keys/team-b/k", Some("value=2")).await;
    assert_eq!(r.status, 403, "{r:?}");
}

/// SPEC §3.1: an attribute that does not decode to UTF-8 without NUL never
/// matches; SAN values too (a `*` matched the NUL).
#[tokio::test]
async fn a_san_with_a_nul_matches_no_bind() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let nul = pki.issue("spiffe-nul", |p| {
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![SanType::URI(
            "spiffe://example.org/ns/team-b/web\0".try_into().unwrap(),
        )];
    });
    assert_accepted(&kg, &nul).await;
    let mut c = connect(&kg, &nul).await;
    let r = c.req("PUT", "/v2/keys/team-b/k", Some("value=1")).await;
    assert_eq!(r.status, 403, "a URI with a NUL matched a bind: {r:?}");
}

#[tokio::test]
async fn a_bind_on_the_second_ou_matches() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let cert = pki.issue("worker-1", |p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "engineering");
        // rcgen keeps one value per DnType: the second OU goes in under
        // the same OID as a custom type.
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 11]), "platform");
    });
    assert_eq!(
        subject_attrs(&cert.cert, "2.5.4.11"),
        ["engineering", "platform"],
        "precondition: two OUs, platform second"
    );
    assert_accepted(&kg, &cert).await;
    let mut c = connect(&kg, &cert).await;
    let r = c.req("PUT", "/v2/keys/platform/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "ou bind on the second OU: {r:?}");
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 403, "{r:?}");
}

// ---------------------------------------------------------------------
// 2. Identity comes from the verified leaf only.
// ---------------------------------------------------------------------

#[tokio::test]
async fn intermediate_cn_gives_the_leaf_nothing() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let inter = pki.intermediate("team-a-ca", |_| {});
    let nobody = pki.issue_from(&inter, "nobody", |_| {});
    assert_accepted(&kg, &nobody).await;
    let mut c = connect(&kg, &nobody).await;
    for (m, body) in [("PUT", Some("value=1")), ("GET", None), ("DELETE", None)] {
        let r = c.req(m, "/v2/keys/team-a/k", body).await;
        assert_eq!(
            r.status, 403,
            "{m} /team-a/k by leaf CN nobody under intermediate CN team-a-ca: {r:?}"
        );
        assert_eq!(r.json()["errorCode"], 110, "{r:?}");
    }

    // Control: a team-a leaf under the same intermediate is allowed.
    let member = pki.issue_from(&inter, "team-a-member", |_| {});
    let mut c = connect(&kg, &member).await;
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");

    // Extra certificates the client sends count for nothing either: a
    // leaf CN nobody (from the root) followed by an unrelated CA
    // certificate whose CN is team-a-extra.
    let extra = Ca::root("team-a-extra");
    let direct = pki.client("nobody-direct");
    let with_extra = CertFiles {
        cert: pki.path("nobody-with-extra.pem"),
        key: direct.key.clone(),
    };
    std::fs::write(
        &with_extra.cert,
        format!(
            "{}{}",
            std::fs::read_to_string(&direct.cert).unwrap(),
            extra.cert.pem()
        ),
    )
    .unwrap();
    if let Ok(mut c) = Client::try_connect(&kg.addr(), &pki.ca, Some(&with_extra), false).await {
        if let Ok(Ok(resp)) =
            tokio::time::timeout(STEP, c.send("GET", "/v2/keys/team-a/k", None, &[])).await
        {
            let r = read(resp).await;
            assert_eq!(r.status, 403, "extra certificate gave a role: {r:?}");
        }
    }
    assert_accepted(&kg, &pki.client("team-a-ok")).await;
}

#[tokio::test]
async fn two_cn_attributes_never_match_a_cn_bind() {
    let pki = Arc::new(Pki::new());
    let kg = start(&pki, None, &[], POLICY);
    let two = pki.issue("team-a-1", |p| {
        // The second CN under the same OID, as a custom type.
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "team-a-2");
    });
    assert_eq!(
        subject_attrs(&two.cert, "2.5.4.3"),
        ["team-a-1", "team-a-2"],
        "precondition: two CN attributes"
    );
    assert_accepted(&kg, &two).await;
    let mut c = connect(&kg, &two).await;
    let r = c.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(
        r.status, 403,
        "a certificate with two CNs must never match cn = \"team-a-*\": {r:?}"
    );
    let r = c.req("GET", "/v2/keys/team-a/k", None).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn fingerprint_bind_matches_exactly_that_certificate() {
    let pki = Arc::new(Pki::new());
    let pinned = pki.client("pinned-1");
    // Same subject, another key: another certificate.
    let twin = pki.issue("pinned-1-twin", |p| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "pinned-1");
        p.distinguished_name = dn;
    });
    let fp = colon_sha256_of_pem(&pinned.cert);
    assert_eq!(fp.len(), 95, "64 hex digits with colons: {fp}");
    let policy = format!(
        "{POLICY}\n[roles.pinned]\nread = [\"/pinned\"]\nwrite = [\"/pinned\"]\n\n\
         [[bind]]\nfingerprint = \"{fp}\"\nroles = [\"pinned\"]\n"
    );
    let kg = start(&pki, None, &[], &policy);

    let mut c = connect(&kg, &pinned).await;
    let r = c.req("PUT", "/v2/keys/pinned/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "fingerprint {fp} should match: {r:?}");

    let mut c = connect(&kg, &twin).await;
    let r = c.req("PUT", "/v2/keys/pinned/k", Some("value=2")).await;
    assert_eq!(r.status, 403, "another certificate with the same CN: {r:?}");
    let r = c.req("GET", "/v2/keys/pinned/k", None).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn issuer_bind_pins_to_one_ca() {
    let pki = Arc::new(Pki::new());
    let other = Pki::new();
    let inter = pki.intermediate("ops issuing CA", |_| {});
    let bundle = pki.path("bundle.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(&pki.ca).unwrap(),
            std::fs::read_to_string(&other.ca).unwrap()
        ),
    )
    .unwrap();
    let issuer_a = colon_sha256(pki.root.der()).to_ascii_uppercase();
    let issuer_inter = colon_sha256(inter.der())
        .replace(':', "")
        .to_ascii_lowercase();
    let policy = format!(
        "{POLICY}\n[roles.ops]\nread = [\"/ops\"]\nwrite = [\"/ops\"]\n\n\
         [roles.ops-inter]\nread = [\"/ops-inter\"]\nwrite = [\"/ops-inter\"]\n\n\
         [[bind]]\ncn = \"ops-*\"\nissuer = \"{issuer_a}\"\nroles = [\"ops\"]\n\n\
         [[bind]]\ncn = \"ops-*\"\nissuer = \"{issuer_inter}\"\nroles = [\"ops-inter\"]\n"
    );
    let kg = start(&pki, Some(&bundle), &[], &policy);

    // From CA A: matches the bind pinned to A.
    let from_a = pki.client("ops-1");
    let mut c = connect(&kg, &from_a).await;
    let r = c.req("PUT", "/v2/keys/ops/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.req("PUT", "/v2/keys/ops-inter/k", Some("value=1")).await;
    assert_eq!(r.status, 403, "{r:?}");

    // From CA B (trusted too), same CN: verified, but not A's.
    let from_b = other.client("ops-1");
    assert_accepted(&kg, &from_b).await;
    let mut c = connect(&kg, &from_b).await;
    let r = c.req("PUT", "/v2/keys/ops/k", Some("value=2")).await;
    assert_eq!(r.status, 403, "same CN from another trusted CA: {r:?}");
    let r = c.req("GET", "/v2/keys/ops/k", None).await;
    assert_eq!(r.status, 403, "{r:?}");

    // From the intermediate below A: the issuer is the intermediate, not A.
    let from_inter = pki.issue_from(&inter, "ops-2", |_| {});
    let mut c = connect(&kg, &from_inter).await;
    let r = c.req("PUT", "/v2/keys/ops/k", Some("value=3")).await;
    assert_eq!(r.status, 403, "issuer is the intermediate: {r:?}");
    let r = c.req("PUT", "/v2/keys/ops-inter/k", Some("value=3")).await;
    assert_eq!(r.status, 201, "{r:?}");
}

/// SPEC §3.1: `issuer` is the CA certificate that issued the leaf, as
/// configured. An older certificate of the same CA (its subject and key),
/// sent along by the client, does not stand in for it.
#[tokio::test]
async fn an_older_certificate_of_the_ca_sent_along_is_not_the_issuer() {
    let pki = Arc::new(Pki::new());
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "keygate test CA");
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = time::macros::datetime!(2020-01-01 00:00 UTC);
    p.not_after = time::macros::datetime!(2040-01-01 00:00 UTC);
    let old = p.self_signed(&pki.root.key).unwrap();
    let policy = format!(
        "{POLICY}\n[roles.old]\nwrite = [\"/old\"]\n\n[roles.current]\nwrite = [\"/current\"]\n\n\
         [[bind]]\ncn = \"ops-*\"\nissuer = \"{}\"\nroles = [\"old\"]\n\n\
         [[bind]]\ncn = \"ops-*\"\nissuer = \"{}\"\nroles = [\"current\"]\n",
        colon_sha256(old.der()),
        colon_sha256(pki.root.der())
    );
    let kg = start(&pki, None, &[], &policy);
    let leaf = pki.client("ops-1");
    let with_old = CertFiles {
        cert: pki.path("ops-1-with-old-ca.pem"),
        key: leaf.key.clone(),
    };
    std::fs::write(
        &with_old.cert,
        format!(
            "{}{}",
            std::fs::read_to_string(&leaf.cert).unwrap(),
            old.pem()
        ),
    )
    .unwrap();
    let mut c = connect(&kg, &with_old).await;
    let r = c.req("PUT", "/v2/keys/current/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.req("PUT", "/v2/keys/old/k", Some("value=1")).await;
    assert_eq!(
        r.status, 403,
        "the old CA certificate named the issuer: {r:?}"
    );
}

// ---------------------------------------------------------------------
// 3 and 4. `keygate explain` and `keygate check`: no server, no network.
// ---------------------------------------------------------------------

/// Runs keygate with `args` (at most 20 s).
fn keygate(args: &[&str]) -> Output {
    let mut child = Command::new(common::keygate_bin())
        .args(args)
        .env_remove("KEYGATE_LOG")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keygate {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ran(out: Output) -> Ran {
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn explain(config: &Path, cert: &CertFiles, args: &[&str]) -> Ran {
    let mut all = vec![
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--cert",
        cert.cert.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    ran(keygate(&all))
}

fn check(config: &Path) -> Ran {
    ran(keygate(&["check", "--config", config.to_str().unwrap()]))
}

#[test]
fn explain_allow_names_bind_role_and_prefix() {
    let pki = Pki::new();
    let (_dir, config) = write_config(&pki, &pki.ca, &[], POLICY);
    let cert = pki.client("team-a-1");
    let out = explain(&config, &cert, &["PUT", "/team-a/k"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("cn: team-a-1"), "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ALLOW"))
        .unwrap_or_else(|| panic!("no ALLOW line: {}", out.stdout));
    assert!(line.contains("PUT"), "{line}");
    assert!(line.contains("/team-a/k"), "{line}");
    assert!(line.contains("bind[0]"), "{line}");
    assert!(line.contains("role team-a"), "{line}");
    assert!(line.contains("prefix /team-a"), "{line}");

    // The bind index is the one that matched: the OU bind is bind[2].
    let platform = pki.issue("worker-9", |p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "platform");
    });
    let out = explain(&config, &platform, &["GET", "/platform/x", "--recursive"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("bind[2]") && out.stdout.contains("role platform"),
        "{}",
        out.stdout
    );
}

#[test]
fn explain_deny_exits_1() {
    let pki = Pki::new();
    let (_dir, config) = write_config(&pki, &pki.ca, &[], POLICY);
    let cert = pki.client("team-a-1");
    let out = explain(&config, &cert, &["PUT", "/team-b/k"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("DENY")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("ALLOW"), "{}", out.stdout);
    // Read-only request on another team's key, and a watch, too.
    let out = explain(&config, &cert, &["GET", "/team-b/k", "--wait"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
}

#[test]
fn explain_traverse() {
    let pki = Pki::new();
    let (_dir, config) = write_config(&pki, &pki.ca, &[], POLICY);
    let cert = pki.client("team-a-1");
    let out = explain(&config, &cert, &["GET", "/"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ALLOW"))
        .unwrap_or_else(|| panic!("no ALLOW line: {}", out.stdout));
    assert!(line.contains("traverse"), "{line}");
    // Writing / is not a traversal.
    let out = explain(&config, &cert, &["PUT", "/"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
}

#[test]
fn explain_refused_certificates_exit_1_saying_handshake() {
    let pki = Pki::new();
    let revoked = pki.issue("team-a-revoked", |p| {
        p.serial_number = Some(SerialNumber::from(0x2001u64));
    });
    let expired = pki.issue("team-a-expired", |p| {
        p.not_before = now() - time::Duration::days(2);
        p.not_after = now() - time::Duration::days(1);
    });
    let fine = pki.issue("team-a-fine", |p| {
        p.serial_number = Some(SerialNumber::from(0x2002u64));
    });
    let crl = pki.path("root.crl.pem");
    pki.root.crl(&crl, &[0x2001]);
    let (_dir, config) = write_config(&pki, &pki.ca, &[crl], POLICY);

    let ca_leaf = pki.issue("team-a-ca-leaf", |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    });
    let server_only = pki.issue("team-a-serverauth", |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    for (what, cert) in [
        ("revoked", &revoked),
        ("expired", &expired),
        ("CA as leaf", &ca_leaf),
        ("serverAuth only", &server_only),
    ] {
        let out = explain(&config, cert, &["GET", "/team-a/k"]);
        assert_eq!(out.code, Some(1), "{what}: {}{}", out.stdout, out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr).to_lowercase();
        assert!(
            all.contains("refused") && all.contains("handshake"),
            "{what}: should say it is refused at the handshake: {all}"
        );
        assert!(!out.stdout.contains("ALLOW"), "{what}: {}", out.stdout);
    }
    let stranger = Pki::new();
    let out = explain(&config, &stranger.client("team-a-1"), &["GET", "/team-a/k"]);
    assert_eq!(out.code, Some(1), "untrusted: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("handshake"), "{}", out.stdout);

    // Control: the non-revoked sibling is allowed under the same config.
    let out = explain(&config, &fine, &["GET", "/team-a/k"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

#[test]
fn explain_bad_method_exits_2() {
    let pki = Pki::new();
    let (_dir, config) = write_config(&pki, &pki.ca, &[], POLICY);
    let cert = pki.client("team-a-1");
    let out = explain(&config, &cert, &["PATCH", "/team-a/k"]);
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
    assert!(out.stderr.contains("METHOD"), "{:?}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{:?}", out.stderr);
    assert!(!out.stdout.contains("ALLOW"), "{}", out.stdout);
}

#[test]
fn explain_notes_a_certificate_without_eku() {
    let pki = Pki::new();
    let (_dir, config) = write_config(&pki, &pki.ca, &[], POLICY);
    let no_eku = pki.issue("team-a-no-eku", |p| p.extended_key_usages = vec![]);
    let out = explain(&config, &no_eku, &["GET", "/team-a/k"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.to_lowercase().contains("no extended key usage"),
        "{}",
        out.stdout
    );
    let out = explain(&config, &pki.client("team-a-1"), &["GET", "/team-a/k"]);
    assert!(
        !out.stdout.to_lowercase().contains("no extended key usage"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_valid_config_exits_0_without_warnings() {
    let pki = Pki::new();
    let (_dir, config) = write_config(&pki, &pki.ca, &[], POLICY);
    let out = check(&config);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        !out.stdout.to_lowercase().contains("warning"),
        "{}",
        out.stdout
    );
    // SPEC §7: "a leaf with no EKU extension is accepted (RFC 5280), and
    // `check`/`explain` say so".
    assert!(
        out.stdout.contains(
            "a client certificate without an extended key usage extension is accepted (RFC 5280)"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn check_warns_on_nested_write_grants() {
    let pki = Pki::new();
    let policy = "\n[roles.x]\nwrite = [\"/a\"]\n\n[roles.y]\nwrite = [\"/a/b\"]\n\n\
                  [[bind]]\ncn = \"x-*\"\nroles = [\"x\"]\n\n\
                  [[bind]]\ncn = \"y-*\"\nroles = [\"y\"]\n";
    let (_dir, config) = write_config(&pki, &pki.ca, &[], policy);
    let out = check(&config);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let warning = out
        .stdout
        .lines()
        .find(|l| l.to_lowercase().contains("warning"))
        .unwrap_or_else(|| panic!("no warning on nested write grants: {}", out.stdout));
    assert!(
        warning.contains("/a") && warning.contains("/a/b"),
        "{warning}"
    );

    // Siblings are not nested: no warning.
    let policy = policy.replace("/a/b", "/ab");
    let (_dir2, config) = write_config(&pki, &pki.ca, &[], &policy);
    let out = check(&config);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        !out.stdout.to_lowercase().contains("warning"),
        "/a and /ab are not nested: {}",
        out.stdout
    );
}

/// SPEC §7: "`check` lists each CA without a CRL and each CRL past its
/// nextUpdate (still used)".
#[test]
fn check_lists_cas_without_a_crl_and_stale_crls() {
    let pki = Pki::new();
    let uncovered = Ca::root("uncovered client CA");
    let bundle = pki.path("bundle.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(&pki.ca).unwrap(),
            uncovered.cert.pem()
        ),
    )
    .unwrap();
    let fresh = pki.path("fresh.crl.pem");
    pki.root.crl(&fresh, &[]);
    let (_dir, config) = write_config(&pki, &bundle, &[fresh], POLICY);
    let out = check(&config);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("uncovered client CA") && !l.contains("keygate test CA")),
        "check should name the CA without a CRL: {}",
        out.stdout
    );

    let stale = stale_crl(&pki, &[]);
    let (_dir2, config) = write_config(&pki, &pki.ca, &[stale], POLICY);
    let out = check(&config);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("stale.crl.pem") && l.to_lowercase().contains("nextupdate")),
        "check should name the CRL past its nextUpdate: {}",
        out.stdout
    );
}

#[test]
fn check_rejects_a_bind_naming_an_undefined_role() {
    let pki = Pki::new();
    let policy = format!("{POLICY}\n[[bind]]\ncn = \"ghost-*\"\nroles = [\"ghost\"]\n");
    let (_dir, config) = write_config(&pki, &pki.ca, &[], &policy);
    let out = check(&config);
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    assert!(lines[0].contains("ghost"), "{:?}", lines[0]);
    assert!(!out.stderr.contains("panicked"), "{:?}", out.stderr);
}

// ---------------------------------------------------------------------
// 5. A connection ends when its certificate's notAfter passes.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closes_when_the_certificate_expires() {
    let pki = Arc::new(Pki::new());
    let policy = format!(
        "{POLICY}\n[roles.admin]\nread = [\"/\"]\nadmin = true\n\n\
         [[bind]]\ncn = \"admin-*\"\nroles = [\"admin\"]\n"
    );
    let kg = start(&pki, None, &[], &policy);
    let long_lived = pki.client("team-a-long");
    let mut admin = connect(&kg, &pki.client("admin-1")).await;
    // Issued after keygate is up, so the whole window is usable.
    let short = pki.issue("team-a-short", |p| {
        p.not_before = now() - time::Duration::minutes(1);
        p.not_after = now() + time::Duration::seconds(3);
    });
    let issued = Instant::now();

    let mut h1 = connect(&kg, &short).await;
    let r = h1.req("PUT", "/v2/keys/team-a/k", Some("value=1")).await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut h2 = Client::try_connect(&kg.addr(), &pki.ca, Some(&short), true)
        .await
        .expect("h2 connection");
    let r = h2.req("GET", "/v2/keys/team-a/k", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    // A watch on the HTTP/2 connection (nothing will write /team-a/w).
    let watch = tokio::spawn(async move {
        let resp = h2
            .send("GET", "/v2/keys/team-a/w?wait=true", None, &[])
            .await?;
        let status = resp.status().as_u16();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body.to_bytes(), h2))
    });
    // The server holds the watch.
    let deadline = Instant::now() + STEP;
    loop {
        let r = admin.req("GET", "/v2/stats/store", None).await;
        assert_eq!(r.status, 200, "{r:?}");
        if r.json()["watchers"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watch never registered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        issued.elapsed() < Duration::from_secs(2),
        "setup too slow for a 3 s certificate: {:?}",
        issued.elapsed()
    );

    tokio::time::sleep(Duration::from_secs(5).saturating_sub(issued.elapsed())).await;

    // The keep-alive HTTP/1.1 connection is closed.
    match tokio::time::timeout(STEP, h1.send("GET", "/v2/keys/team-a/k", None, &[])).await {
        Err(_) => panic!("request on the expired connection: no answer and no close"),
        Ok(Err(_)) => {}
        Ok(Ok(resp)) => {
            let r = read(resp).await;
            panic!("expired certificate's connection still served: {r:?}");
        }
    }
    // The watch has ended, without an event.
    let ended = tokio::time::timeout(Duration::from_secs(2), watch)
        .await
        .expect("the watch is still open after the certificate expired")
        .unwrap();
    match ended {
        Err(_) => {}
        Ok((status, body, mut h2)) => {
            assert!(
                body.is_empty() || status != 200,
                "watch delivered something: {status} {body:?}"
            );
            // And the HTTP/2 connection takes no new request.
            let next =
                tokio::time::timeout(STEP, h2.send("GET", "/v2/keys/team-a/k", None, &[])).await;
            assert!(
                matches!(next, Ok(Err(_))),
                "HTTP/2 connection still usable after expiry"
            );
        }
    }
    // The server let go of the watch too.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = admin.req("GET", "/v2/stats/store", None).await;
        if r.json()["watchers"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired connection's watch is still registered on the server: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new connection with the expired certificate is refused; the server
    // still serves others.
    assert_refused_with(&kg, &short, "CertificateExpired").await;
    assert_accepted(&kg, &long_lived).await;
}
