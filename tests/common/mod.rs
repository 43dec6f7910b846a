//! Shared test helpers: a PKI made with rcgen, a keygate process on a free
//! port with its own data directory, and an HTTPS client that presents a
//! client certificate (HTTP/1.1 keep-alive or HTTP/2).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority made with rcgen: a root, or an intermediate
/// below another `Ca`.
pub struct Ca {
    /// The CA certificate.
    pub cert: rcgen::Certificate,
    /// Its key.
    pub key: KeyPair,
    /// PEM of the intermediates from this CA up to (not including) the
    /// root; empty for a root. Appended to the leaves it issues so that
    /// clients send the chain.
    pub chain_pem: String,
}

impl Ca {
    /// A self-signed root CA with CN `name`.
    pub fn root(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let cert = ca_params(name).self_signed(&key).unwrap();
        Ca {
            cert,
            key,
            chain_pem: String::new(),
        }
    }

    /// An intermediate CA with CN `name` signed by this CA; `edit` shapes it.
    pub fn intermediate(&self, name: &str, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = ca_params(name);
        edit(&mut p);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let chain_pem = format!("{}{}", cert.pem(), self.chain_pem);
        Ca {
            cert,
            key,
            chain_pem,
        }
    }

    /// The CA certificate's DER.
    pub fn der(&self) -> &[u8] {
        self.cert.der()
    }

    /// Writes the CA certificate as PEM to `path`.
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }

    /// Issues a leaf with CN `name` (clientAuth), written to
    /// `dir/{name}.pem` (leaf, then this CA's intermediates) and
    /// `dir/{name}-key.pem`; `edit` shapes it.
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        edit(&mut p);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let files = CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, format!("{}{}", cert.pem(), self.chain_pem)).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// Writes a CRL signed by this CA that revokes `serials` to `path`
    /// (thisUpdate an hour ago, nextUpdate in a day).
    pub fn crl(&self, path: &Path, serials: &[u64]) {
        let now = time::OffsetDateTime::now_utc();
        self.crl_dated(
            path,
            serials,
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        );
    }

    /// Like [`Ca::crl`] with the given thisUpdate and nextUpdate.
    pub fn crl_dated(
        &self,
        path: &Path,
        serials: &[u64],
        this_update: time::OffsetDateTime,
        next_update: time::OffsetDateTime,
    ) {
        let crl = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: this_update,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.cert, &self.key)
        .unwrap();
        std::fs::write(path, crl.pem().unwrap()).unwrap();
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// A test PKI: a CA, a server certificate and named client certificates.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server: CertFiles,
    /// The root CA (its certificate is the file `ca`).
    pub root: Ca,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = Ca::root("keygate test CA");
        let ca = dir.path().join("ca.pem");
        root.write_pem(&ca);
        let mut pki = Pki {
            server: CertFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
            dir,
            ca,
            root,
        };
        pki.server = pki.issue("server", |p| {
            p.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        });
        pki
    }

    /// Issues a leaf named `name`; `edit` shapes it.
    pub fn issue(&self, name: &str, edit: impl FnOnce(&mut CertificateParams)) -> CertFiles {
        self.root.issue(self.dir.path(), name, edit)
    }

    /// An intermediate CA below the root; `edit` shapes it.
    pub fn intermediate(&self, name: &str, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        self.root.intermediate(name, edit)
    }

    /// Issues a leaf named `name` from `ca` (a CA of this PKI), written in
    /// this PKI's directory with `ca`'s intermediates after it.
    pub fn issue_from(
        &self,
        ca: &Ca,
        name: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> CertFiles {
        ca.issue(self.dir.path(), name, edit)
    }

    /// A file in this PKI's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client certificate with CN `name`.
    pub fn client(&self, name: &str) -> CertFiles {
        self.issue(name, |_| {})
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The keygate binary under test.
pub fn keygate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keygate")
}

/// A running `keygate serve`.
pub struct Keygate {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub pki: Arc<Pki>,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Keygate {
    /// Starts keygate with the test PKI and `extra` appended to `[server]`.
    pub fn start(pki: Arc<Pki>, server_extra: &str) -> Keygate {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keygate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n\
                 [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\
                 [backend]\ndata_dir = \"data\"\n\
                 [roles.all]\nread = [\"/\"]\nwrite = [\"/\"]\nadmin = true\n\
                 [[bind]]\nany = true\nroles = [\"all\"]\n",
                pki.server.cert, pki.server.key, pki.ca
            ),
        )
        .unwrap();
        Keygate::start_with(pki, dir, config)
    }

    /// Starts keygate on a prepared config file; the port is the one
    /// keygate reports it listens on (the config may say port 0).
    pub fn start_with(pki: Arc<Pki>, dir: tempfile::TempDir, config: PathBuf) -> Keygate {
        match Keygate::try_start_with(pki, dir, config) {
            Ok(kg) => kg,
            Err(refused) => panic!(
                "keygate exited early with {}: {}",
                refused.status,
                refused.stderr.join("\n")
            ),
        }
    }

    /// Like [`Keygate::start_with`], but a keygate that exits before it
    /// listens is an answer, not a panic: its status, its whole stderr and
    /// the directory are returned.
    pub fn try_start_with(
        pki: Arc<Pki>,
        dir: tempfile::TempDir,
        config: PathBuf,
    ) -> Result<Keygate, Refused> {
        Keygate::try_start_logging(pki, dir, config, "info")
    }

    /// [`Keygate::try_start_with`], with `KEYGATE_LOG` set to `log` (which
    /// must leave `keygate::cli`'s info lines on: the port is read there).
    pub fn try_start_logging(
        pki: Arc<Pki>,
        dir: tempfile::TempDir,
        config: PathBuf,
        log: &str,
    ) -> Result<Keygate, Refused> {
        let mut child = Command::new(keygate_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("KEYGATE_LOG", log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let eof_w = eof.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            eof_w.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        match wait_for_listening(&log, &mut child) {
            Ok(port) => Ok(Keygate {
                child,
                port,
                dir,
                config,
                pki,
                log,
            }),
            Err(status) => {
                // Read stderr to its end before answering.
                let deadline = Instant::now() + Duration::from_secs(5);
                while !eof.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let stderr = log.lock().unwrap().clone();
                Err(Refused {
                    status,
                    stderr,
                    dir,
                })
            }
        }
    }

    /// The store's data directory (`backend.data_dir = "data"`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Waits for the process to exit, at most until `started + within`
    /// (a test's clock); its status.
    pub async fn exited_within(
        &mut self,
        started: Instant,
        within: Duration,
    ) -> std::process::ExitStatus {
        loop {
            if let Some(code) = self.child.try_wait().unwrap() {
                return code;
            }
            assert!(started.elapsed() < within, "keygate did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILLs the process (no chance to flush or clean up) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILLs the process, then starts keygate again on the same
    /// directory and config.
    pub fn restart(self) -> Keygate {
        match self.try_restart() {
            Ok(kg) => kg,
            Err(refused) => panic!(
                "keygate exited early with {}: {}",
                refused.status,
                refused.stderr.join("\n")
            ),
        }
    }

    /// Like [`Keygate::restart`]; a refusal to start is returned.
    pub fn try_restart(mut self) -> Result<Keygate, Refused> {
        self.kill();
        let placeholder = tempfile::tempdir().unwrap();
        let dir = std::mem::replace(&mut self.dir, placeholder);
        Keygate::try_start_with(self.pki.clone(), dir, self.config.clone())
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Keygate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `keygate serve` that exited before it listened.
pub struct Refused {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: Vec<String>,
    /// The directory it was started in.
    pub dir: tempfile::TempDir,
}

/// Waits for keygate's "keygate listening" log line and returns its port;
/// `Err` is the exit status of a keygate that exited first.
fn wait_for_listening(
    log: &std::sync::Mutex<Vec<String>>,
    child: &mut Child,
) -> Result<u16, std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for line in log.lock().unwrap().iter() {
            if line.contains("keygate listening") {
                // Text (`listen=ADDR`) or JSON (`"listen":"ADDR"`) logs.
                let addr = line
                    .split("listen=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .or_else(|| {
                        line.split("\"listen\":\"")
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                    })
                    .unwrap_or_else(|| panic!("no listen address in {line:?}"));
                return Ok(addr.rsplit(':').next().unwrap().parse().unwrap());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "keygate did not report listening: {}",
        log.lock().unwrap().join("\n")
    );
}

/// Waits until something listens on `port` (or the child died).
pub fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server did not listen on {port}");
}

/// A TLS client configuration presenting `client` and trusting `ca`.
pub fn tls_config(
    ca: &Path,
    client: Option<&CertFiles>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(c) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(&c.cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(&c.key).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// Like [`tls_config`], TLS 1.2 only: there the server's refusal of the
/// client certificate fails the handshake itself.
pub fn tls12_config(ca: &std::path::Path, cert: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match cert {
        Some(c) => {
            let chain = CertificateDer::pem_file_iter(&c.cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(&c.key).unwrap())
                .unwrap()
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One keep-alive connection to a server.
pub struct Client {
    sender: Sender,
    host: String,
}

impl Client {
    /// Opens an HTTP/1.1 connection presenting `cert`.
    pub async fn h1(addr: &str, ca: &Path, cert: &CertFiles) -> Client {
        Client::try_connect(addr, ca, Some(cert), false)
            .await
            .unwrap()
    }

    /// Opens an HTTP/2 connection presenting `cert`.
    pub async fn h2(addr: &str, ca: &Path, cert: &CertFiles) -> Client {
        Client::try_connect(addr, ca, Some(cert), true)
            .await
            .unwrap()
    }

    /// Connects; the error is the TLS or I/O failure.
    pub async fn try_connect(
        addr: &str,
        ca: &Path,
        cert: Option<&CertFiles>,
        h2: bool,
    ) -> Result<Client, String> {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let connector = TlsConnector::from(tls_config(ca, cert, alpn));
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let io = TokioIo::new(tls);
        let sender = if h2 {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H1(s)
        };
        Ok(Client {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends a request; a body is sent as a form unless `headers` say otherwise.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let uri = match &self.sender {
            Sender::H2(_) => format!("https://{}{target}", self.host),
            Sender::H1(_) => target.to_string(),
        };
        let mut b = Request::builder().method(method).uri(uri);
        if matches!(self.sender, Sender::H1(_)) {
            b = b.header("host", &self.host);
        }
        let has_ct = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if body.is_some() && !has_ct {
            b = b.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
            .map_err(|e| e.to_string())?;
        match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await.map_err(|e| e.to_string())
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Sends a request and reads the whole answer.
    pub async fn req(&mut self, method: &str, target: &str, body: Option<&str>) -> Resp {
        self.req_h(method, target, body, &[]).await
    }

    /// Like [`Client::req`], with extra headers.
    pub async fn req_h(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let resp = self
            .send(method, target, body, headers)
            .await
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        read(resp).await
    }
}

/// Reads a response to the end.
pub async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Replaces `"expiration":"..."` values with a fixed marker.
pub fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "expiration" {
                    *x = serde_json::Value::String("<time>".into());
                } else {
                    strip_times(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Fails with a clear message when a tool the test needs is missing.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not installed: run .ci/run (it installs Debian's etcd-server and python3)"
    );
}

/// A real etcd 3.4 (Debian's etcd-server) on free ports, with `--enable-v2`,
/// TLS and `--client-cert-auth`, killed on drop.
pub struct Etcd {
    pub child: std::process::Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts etcd and waits until its v2 index is stable.
pub fn start_etcd(pki: &Pki, client: &CertFiles) -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let peer = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut child = Command::new("etcd")
        .arg("--enable-v2")
        .arg("--name=default")
        .arg(format!("--data-dir={}", dir.path().join("etcd").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=default={peer_url}"))
        .arg(format!("--cert-file={}", pki.server.cert.display()))
        .arg(format!("--key-file={}", pki.server.key.display()))
        .arg(format!("--trusted-ca-file={}", pki.ca.display()))
        .arg("--client-cert-auth")
        .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd (run .ci/run to install etcd-server)");
    wait_for_port(port, &mut child);
    // Wait until the member has published itself and the v2 index is stable.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let addr = format!("127.0.0.1:{port}");
        let mut last = String::new();
        for _ in 0..100 {
            if let Ok(mut c) = Client::try_connect(&addr, &pki.ca, Some(client), false).await {
                let r = c.req("GET", "/v2/keys/", None).await;
                let idx = r.header("x-etcd-index").unwrap_or("").to_string();
                if r.status == 200 && idx == last {
                    return;
                }
                last = idx;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        panic!("etcd did not become ready");
    });
    Etcd {
        child,
        _dir: dir,
        url,
    }
}

/// The value of one series in Prometheus text (`name{labels}`, whole).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// `f`, which must finish at once: an answer that does not come (a watch
/// left waiting, say) fails the test in 10 s instead of hanging it.
pub async fn quick<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("no answer within 10 s")
}

/// A plain HTTP/1.1 GET (or other method) to the ops listener: (status, body).
pub fn ops_request(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("ops listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head[9..12].parse().unwrap();
    (status, body.to_string())
}

/// A small seeded generator for the randomized tests (xorshift64*): a
/// failure names its seed, and the seed replays it.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The seeds a randomized test runs: `$var` (a comma-separated list) or
/// `default`.
pub fn seeds(var: &str, default: &str) -> Vec<u64> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{var}: not a list of seeds"))
        })
        .collect()
}
