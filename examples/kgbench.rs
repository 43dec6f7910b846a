//! Load tools for the benchmark (`bench/run.py`), for what `oha` does not
//! measure. Every client presents a certificate and speaks TLS like a real
//! client would.
//!
//! - `load`: HTTP/1.1 keep-alive load on C connections from one thread,
//!   with a minimal client (pre-encoded requests, a small response
//!   parser), so that the load generator costs less than the server.
//! - `handshakes`: full mTLS handshakes per second (no session resumption:
//!   a new connection, one GET, close).
//! - `watchers`: N long-poll watchers, each on its own connection; one
//!   write; the time until the last has its event; the server's RSS before
//!   and after arming.
//! - `decide`: a micro-benchmark of one access decision.
//! - `bare-server`: hyper + rustls with keygate's TLS configuration,
//!   answering a fixed 200: the ceiling for a gateway on this machine.
//! - `bare-watch-server`: the least a server must do to wake long-poll
//!   watchers over mTLS (the ceiling for the `watchers` scenario).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The allocator keygate uses: the bare servers are ceilings for keygate,
/// and the load generator must cost less than the servers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Tls {
    /// CA bundle that signed the server certificate.
    #[arg(long)]
    cacert: PathBuf,
    /// Client certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Client key (PEM).
    #[arg(long)]
    key: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Keep-alive load: requests per second and latency percentiles.
    Load {
        #[command(flatten)]
        tls: Tls,
        #[arg(long)]
        addr: String,
        /// Request path; `{rand}` is replaced by 16 random hex digits per
        /// request.
        #[arg(long, default_value = "/v2/keys/bench/one")]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Form body (PUT/POST).
        #[arg(long, default_value = "")]
        body: String,
        /// Connections.
        #[arg(short, default_value_t = 64)]
        c: usize,
        /// Seconds.
        #[arg(short, default_value_t = 10.0)]
        d: f64,
        /// Stop after this many requests in all (0: run for -d seconds).
        #[arg(short, default_value_t = 0)]
        n: u64,
    },
    /// New connection (full handshake) per request.
    /// Several servers loaded in turn, in short slices (A B, B A, ...),
    /// each with its own `c` keep-alive connections: a paired comparison
    /// in which every server sees the same machine.
    Paired {
        #[command(flatten)]
        tls: Tls,
        #[arg(long, required = true)]
        addr: Vec<String>,
        #[arg(long, default_value = "/v2/keys/bench/one")]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long, default_value = "")]
        body: String,
        #[arg(short, default_value_t = 64)]
        c: usize,
        /// Seconds of load per server.
        #[arg(short, default_value_t = 10.0)]
        d: f64,
        /// Seconds per slice.
        #[arg(long, default_value_t = 0.5)]
        slice: f64,
    },
    Handshakes {
        #[command(flatten)]
        tls: Tls,
        /// host:port
        #[arg(long)]
        addr: String,
        #[arg(long, default_value = "/v2/keys/bench/one")]
        path: String,
        /// Concurrent clients.
        #[arg(short, default_value_t = 16)]
        c: usize,
        /// Seconds.
        #[arg(short, default_value_t = 10.0)]
        d: f64,
    },
    /// Long-poll watchers on their own connections, woken by one write.
    Watchers {
        #[command(flatten)]
        tls: Tls,
        #[arg(long)]
        addr: String,
        /// The server's pid (for its RSS).
        #[arg(long)]
        pid: u32,
        #[arg(short, default_value_t = 10_000)]
        n: usize,
        /// The watched key.
        #[arg(long, default_value = "/bench/watched")]
        watch_key: String,
        /// Writes, each waking every watcher (which then watches again on
        /// its connection).
        #[arg(long, default_value_t = 1)]
        wakes: usize,
    },
    /// One access decision, timed call by call.
    Decide {
        /// keygate configuration (roles and binds).
        #[arg(long)]
        config: PathBuf,
        /// The client's certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The key asked for.
        #[arg(long)]
        key: String,
        #[arg(short, default_value_t = 2_000_000)]
        n: usize,
    },
    /// Writes a snapshot of a store of `n` keys (one directory, 100-byte
    /// values, as the PUT scenario leaves it), `rounds` times; CPU time.
    Snapshot {
        /// Where the snapshot files go.
        #[arg(long)]
        dir: PathBuf,
        #[arg(short, default_value_t = 1_000_000)]
        n: u64,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// hyper + rustls, keygate's TLS settings, a fixed 200.
    BareServer {
        /// keygate configuration ([server] listen and [tls]).
        #[arg(long)]
        config: PathBuf,
    },
    /// The least work a server can do for the `watchers` scenario: rustls
    /// and tokio as keygate uses them, hand-written HTTP/1.1, every watch
    /// answered by the next PUT (after an fdatasync) with an event of the
    /// size keygate's is, the chunk and the end of the answer in one write.
    BareWatchServer {
        /// keygate configuration ([server] listen, [tls], [backend]
        /// data_dir for the file each PUT syncs).
        #[arg(long)]
        config: PathBuf,
        /// The PUT writes every waiting watch's event itself, one
        /// connection after another, without waking their tasks first.
        #[arg(long)]
        direct: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let _ = rlimit::increase_nofile_limit(1 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = match cli.cmd {
        Cmd::Load {
            tls,
            addr,
            path,
            method,
            body,
            c,
            d,
            n,
        } => {
            // One thread: the generator must cost less than the server.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &rt,
                load(Load {
                    tls,
                    addr,
                    path,
                    method,
                    body,
                    c,
                    d: Duration::from_secs_f64(d),
                    n,
                }),
            )
        }
        Cmd::Paired {
            tls,
            addr,
            path,
            method,
            body,
            c,
            d,
            slice,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &rt,
                paired(
                    Load {
                        tls,
                        addr: String::new(),
                        path,
                        method,
                        body,
                        c,
                        d: Duration::from_secs_f64(d),
                        n: 0,
                    },
                    addr,
                    Duration::from_secs_f64(slice),
                ),
            )
        }
        Cmd::Handshakes {
            tls,
            addr,
            path,
            c,
            d,
        } => {
            // One thread, as for `load`: the generator's own handshake
            // work (it verifies the server and signs too) must cost less
            // than the server's.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(handshakes(tls, addr, path, c, Duration::from_secs_f64(d)))
        }
        Cmd::Watchers {
            tls,
            addr,
            pid,
            n,
            watch_key,
            wakes,
        } => rt.block_on(watchers(tls, addr, pid, n, watch_key, wakes)),
        Cmd::Decide {
            config,
            cert,
            key,
            n,
        } => decide(&config, &cert, &key, n),
        Cmd::Snapshot { dir, n, rounds } => snapshot(&dir, n, rounds),
        Cmd::BareServer { config } => rt.block_on(bare_server(&config)),
        Cmd::BareWatchServer { config, direct } => rt.block_on(bare_watch_server(&config, direct)),
    };
    println!("{out}");
}

fn client_config(tls: &Tls) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&tls.cacert).expect("cacert") {
        roots.add(c.expect("cacert")).expect("cacert");
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(&tls.cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&tls.key).expect("key");
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RememberingVerifier {
            inner: webpki,
            verified: Default::default(),
        }))
        .with_client_auth_cert(chain, key)
        .expect("client cert");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection is a full handshake.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

/// The server's chain is verified in full once, then remembered (the
/// server's proof of its key is still checked at every handshake): the
/// load generator's handshakes must cost less than the server's.
#[derive(Debug)]
struct RememberingVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    verified: std::sync::Mutex<std::collections::HashSet<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for RememberingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .verified
            .lock()
            .expect("lock")
            .contains(end_entity.as_ref())
        {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        let ok =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        self.verified
            .lock()
            .expect("lock")
            .insert(end_entity.as_ref().to_vec());
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str, tls: &TlsConnector) -> std::io::Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let stream = tls.connect(name, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(method: &str, path: &str, body: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn handshakes(tls: Tls, addr: String, path: String, c: usize, d: Duration) -> String {
    let connector = TlsConnector::from(client_config(&tls));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let connector = connector.clone();
        let addr = addr.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while start.elapsed() < d {
                let t0 = Instant::now();
                let ok = async {
                    let mut s = connect(&addr, &connector).await?;
                    let r = s
                        .send_request(request("GET", &path, ""))
                        .await
                        .map_err(std::io::Error::other)?;
                    let ok = r.status().is_success();
                    r.into_body()
                        .collect()
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok::<bool, std::io::Error>(ok)
                }
                .await;
                match ok {
                    Ok(true) => lat.push(t0.elapsed().as_secs_f64() * 1e3),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    serde_json::json!({
        "handshakes_per_sec": lat.len() as f64 / secs,
        "ok": lat.len(),
        "errors": errors,
        "p50_ms": percentile(&lat, 0.5),
        "p99_ms": percentile(&lat, 0.99),
    })
    .to_string()
}

struct Load {
    tls: Tls,
    addr: String,
    path: String,
    method: String,
    body: String,
    c: usize,
    d: Duration,
    n: u64,
}

/// Latency histogram: microseconds, 1 µs buckets up to 100 ms.
struct Histogram(Vec<u64>);

impl Histogram {
    fn new() -> Histogram {
        Histogram(vec![0; 100_001])
    }
    fn add(&mut self, us: u64) {
        let i = us.min(100_000) as usize;
        self.0[i] += 1;
    }
    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a += b;
        }
    }
    fn count(&self) -> u64 {
        self.0.iter().sum()
    }
    fn pct(&self, p: f64) -> f64 {
        let total = self.count();
        let want = ((total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return i as f64 / 1e3;
            }
        }
        f64::NAN
    }
}

/// Reads one HTTP/1.1 response (Content-Length or chunked); returns its
/// status. `buf` keeps bytes read past the response.
async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    use tokio::io::AsyncReadExt;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head"))?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status"))?;
    let mut length = None;
    let mut chunked = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    buf.drain(..head_end);
    if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                let n = r.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad("closed in a chunk"));
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&buf[..line_end])
                    .map_err(|_| bad("chunk"))?
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| bad("chunk size"))?;
            let need = line_end + 2 + size + 2;
            while buf.len() < need {
                let n = r.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad("closed in a chunk"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..need);
            if size == 0 {
                return Ok(status);
            }
        }
    }
    let len = length.unwrap_or(0);
    while buf.len() < len {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("closed in the body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..len);
    Ok(status)
}

/// Sends one request and reads its answer, recording its latency and
/// status; `false` when the connection failed (counted as status 0).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
    buf: &mut Vec<u8>,
    hist: &mut Histogram,
    status: &mut std::collections::BTreeMap<u16, u64>,
) -> bool {
    use tokio::io::AsyncWriteExt;
    let t0 = Instant::now();
    if s.write_all(request).await.is_err() {
        *status.entry(0).or_default() += 1;
        return false;
    }
    match read_response(s, buf).await {
        Ok(code) => {
            hist.add(t0.elapsed().as_micros() as u64);
            *status.entry(code).or_default() += 1;
            true
        }
        Err(_) => {
            *status.entry(0).or_default() += 1;
            false
        }
    }
}

/// One HTTP/1.1 request, with a form body when `body` is not empty.
fn encode_request(method: &str, path: &str, body: &str) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if !body.is_empty() {
        req.push_str(&format!(
            "content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// `path` with `{rand}` replaced by the next value of `rng` (xorshift).
fn random_path(path: &str, rng: &mut u64) -> String {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    path.replace("{rand}", &format!("{:016x}", *rng))
}

/// The `paired` run: every server gets `l.c` connections, all made before
/// the load starts; the servers take turns for `slice` each, the order
/// reversed every other turn, until each had `l.d` of load.
async fn paired(l: Load, addrs: Vec<String>, slice: Duration) -> String {
    const DONE: usize = usize::MAX;
    let connector = TlsConnector::from(client_config(&l.tls));
    let (active_tx, active_rx) = tokio::sync::watch::channel(DONE - 1);
    let mut tasks = Vec::new();
    for (server, addr) in addrs.iter().enumerate() {
        for conn in 0..l.c {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let name = ServerName::try_from("127.0.0.1").expect("name");
            let mut s = connector.connect(name, tcp).await.expect("handshake");
            let mut rx = active_rx.clone();
            let (path, method, body) = (l.path.clone(), l.method.clone(), l.body.clone());
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (((server * l.c + conn) as u64 + 1) << 32);
            tasks.push(tokio::task::spawn_local(async move {
                let mut hist = Histogram::new();
                let mut status = std::collections::BTreeMap::<u16, u64>::new();
                let fixed = !path.contains("{rand}");
                let fixed_req = encode_request(&method, &path, &body);
                let mut buf = Vec::with_capacity(16384);
                loop {
                    let active = *rx.borrow_and_update();
                    if active == DONE {
                        break;
                    }
                    if active != server {
                        if rx.changed().await.is_err() {
                            break;
                        }
                        continue;
                    }
                    let req;
                    let bytes = if fixed {
                        &fixed_req
                    } else {
                        req = encode_request(&method, &random_path(&path, &mut rng), &body);
                        &req
                    };
                    if !exchange(&mut s, bytes, &mut buf, &mut hist, &mut status).await {
                        break;
                    }
                }
                (server, hist, status)
            }));
        }
    }
    let mut active_secs = vec![0.0f64; addrs.len()];
    let turns = (l.d.as_secs_f64() / slice.as_secs_f64()).ceil().max(1.0) as usize;
    for turn in 0..turns {
        let order: Vec<usize> = if turn % 2 == 0 {
            (0..addrs.len()).collect()
        } else {
            (0..addrs.len()).rev().collect()
        };
        for server in order {
            let t = Instant::now();
            let _ = active_tx.send(server);
            tokio::time::sleep(slice).await;
            active_secs[server] += t.elapsed().as_secs_f64();
        }
    }
    let _ = active_tx.send(DONE);
    let mut hists: Vec<Histogram> = addrs.iter().map(|_| Histogram::new()).collect();
    let mut statuses = vec![std::collections::BTreeMap::<u16, u64>::new(); addrs.len()];
    for t in tasks {
        let (server, h, s) = t.await.expect("task");
        hists[server].merge(&h);
        for (k, v) in s {
            *statuses[server].entry(k).or_default() += v;
        }
    }
    let servers: Vec<serde_json::Value> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let h = &hists[i];
            serde_json::json!({
                "addr": addr,
                "requests_per_sec": h.count() as f64 / active_secs[i],
                "requests": h.count(),
                "secs": active_secs[i],
                "status": statuses[i],
                "p50_ms": h.pct(0.5),
                "p99_ms": h.pct(0.99),
                "p999_ms": h.pct(0.999),
            })
        })
        .collect();
    serde_json::json!({ "servers": servers }).to_string()
}

async fn load(l: Load) -> String {
    let connector = TlsConnector::from(client_config(&l.tls));
    let start = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for conn in 0..l.c {
        let connector = connector.clone();
        let addr = l.addr.clone();
        let path = l.path.clone();
        let method = l.method.clone();
        let body = l.body.clone();
        let done = done.clone();
        let (d, n) = (l.d, l.n);
        tasks.push(tokio::task::spawn_local(async move {
            let mut hist = Histogram::new();
            let mut status = std::collections::BTreeMap::<u16, u64>::new();
            let tcp = TcpStream::connect(&addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let name = ServerName::try_from("127.0.0.1").expect("name");
            let mut s = connector.connect(name, tcp).await.expect("handshake");
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((conn as u64 + 1) << 32);
            let fixed = !path.contains("{rand}");
            let encode = |path: &str| encode_request(&method, path, &body);
            let fixed_req = encode(&path);
            let mut buf = Vec::with_capacity(16384);
            loop {
                if n > 0 {
                    if done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= n {
                        break;
                    }
                } else if start.elapsed() >= d {
                    break;
                }
                let req;
                let bytes = if fixed {
                    &fixed_req
                } else {
                    req = encode(&random_path(&path, &mut rng));
                    &req
                };
                if !exchange(&mut s, bytes, &mut buf, &mut hist, &mut status).await {
                    break;
                }
            }
            (hist, status)
        }));
    }
    let mut hist = Histogram::new();
    let mut status = std::collections::BTreeMap::<u16, u64>::new();
    for t in tasks {
        let (h, s) = t.await.expect("task");
        hist.merge(&h);
        for (k, v) in s {
            *status.entry(k).or_default() += v;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    serde_json::json!({
        "requests_per_sec": hist.count() as f64 / secs,
        "requests": hist.count(),
        "secs": secs,
        "status": status,
        "p50_ms": hist.pct(0.5),
        "p99_ms": hist.pct(0.99),
        "p999_ms": hist.pct(0.999),
    })
    .to_string()
}

/// CPU time of a process, ms: the sum of its threads' time on a CPU as the
/// scheduler accounts it (nanoseconds; `/proc/PID/stat` counts 10 ms ticks,
/// too coarse for a wake of 100 ms). Threads that ended are not counted:
/// both servers keep theirs for the whole run.
fn cpu_ms(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e6
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Where a watcher's connection stands.
struct WatchConn {
    s: tokio_rustls::client::TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl WatchConn {
    async fn read_more(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 2048];
        match self.s.read(&mut chunk).await {
            Ok(n) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }
}

/// One long-poll watcher on its own keep-alive connection, watching once
/// per wake. No HTTP client: requests are written by hand and answers read
/// as bytes, so that the load generator's cost per event stays well below
/// either server's. A watch is armed when its answer's head has arrived
/// (both servers send it when the watch is registered), and woken by the
/// first bytes after the head; the next watch is sent once the answer has
/// ended and `go` reaches its wake. Returns the connection (kept open
/// until all are measured: the servers' teardown is not part of a wake).
#[allow(clippy::too_many_arguments)]
async fn watcher(
    addr: String,
    connector: TlsConnector,
    target: impl Fn(usize) -> String,
    wakes: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
    armed: tokio::sync::mpsc::UnboundedSender<()>,
    woken: tokio::sync::mpsc::UnboundedSender<(usize, Instant)>,
    mut go: tokio::sync::watch::Receiver<usize>,
) -> Option<WatchConn> {
    use tokio::io::AsyncWriteExt;
    let tcp = TcpStream::connect(&addr).await.expect("watcher connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let s = connector.connect(name, tcp).await.expect("watcher TLS");
    let mut c = WatchConn { s, buf: Vec::new() };
    let mut permit = Some(permit);
    for wake in 0..wakes {
        if wake > 0 && go.wait_for(|g| *g >= wake).await.is_err() {
            return Some(c);
        }
        let req = format!("GET {} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n", target(wake));
        c.s.write_all(req.as_bytes()).await.expect("watch");
        c.buf.clear();
        let head_end = loop {
            if let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !c.read_more().await {
                drop(permit.take());
                let _ = armed.send(());
                return None;
            }
        };
        drop(permit.take());
        let _ = armed.send(());
        if c.buf.len() == head_end && !c.read_more().await {
            return None;
        }
        let _ = woken.send((wake, Instant::now()));
        if wake + 1 < wakes {
            // Keep-alive: the answer (chunked) must end before the next.
            let head = String::from_utf8_lossy(&c.buf[..head_end]).to_ascii_lowercase();
            assert!(
                head.contains("chunked"),
                "a watch answer that is not chunked: {head}"
            );
            while !c.buf.ends_with(b"0\r\n\r\n") {
                if !c.read_more().await {
                    return None;
                }
            }
        }
    }
    Some(c)
}

async fn watchers(tls: Tls, addr: String, pid: u32, n: usize, key: String, wakes: usize) -> String {
    let connector = TlsConnector::from(client_config(&tls));
    let mut writer = connect(&addr, &connector).await.expect("connect");
    let r = writer
        .send_request(request("PUT", &format!("/v2/keys{key}"), "value=0"))
        .await
        .expect("put");
    let index: u64 = r
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("X-Etcd-Index");
    r.into_body().collect().await.expect("body");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);
    // Arm: connect 64 at a time.
    // KEYGATE_BENCH_IDLE=1: a plain GET instead of a watch (the cost of an
    // idle connection alone, for comparison; one wake).
    let idle = std::env::var("KEYGATE_BENCH_IDLE").is_ok_and(|v| v == "1");
    let wakes = if idle { 1 } else { wakes.max(1) };
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let (armed_tx, mut armed_rx) = tokio::sync::mpsc::unbounded_channel();
    let (woken_tx, mut woken_rx) = tokio::sync::mpsc::unbounded_channel();
    let (go_tx, go_rx) = tokio::sync::watch::channel(0usize);
    let mut conns = Vec::new();
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("sem");
        let key = key.clone();
        // Wake k is the k-th write after the first.
        let target = move |wake: usize| {
            if idle {
                format!("/v2/keys{key}")
            } else {
                format!(
                    "/v2/keys{key}?wait=true&waitIndex={}",
                    index + 1 + wake as u64
                )
            }
        };
        conns.push(tokio::spawn(watcher(
            addr.clone(),
            connector.clone(),
            target,
            wakes,
            permit,
            armed_tx.clone(),
            woken_tx.clone(),
            go_rx.clone(),
        )));
    }
    drop((armed_tx, woken_tx));
    let mut arm_secs = 0.0;
    let mut rss_armed = 0;
    let mut armed = 0;
    let mut results = Vec::new();
    for wake in 0..wakes {
        let _ = go_tx.send(wake);
        let arm_started = Instant::now();
        armed = 0;
        while armed < n {
            match tokio::time::timeout(Duration::from_secs(60), armed_rx.recv()).await {
                Ok(Some(())) => armed += 1,
                _ => break,
            }
        }
        if wake == 0 {
            arm_secs = arm_started.elapsed().as_secs_f64();
            eprintln!("armed {armed}; writing in 2 s");
            tokio::time::sleep(Duration::from_secs(2)).await;
            rss_armed = rss_kib(pid);
        } else {
            eprintln!("armed {armed} again; writing in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (server0, client0) = (cpu_ms(&pid.to_string()), cpu_ms("self"));
        let t0 = Instant::now();
        let r = writer
            .send_request(request(
                "PUT",
                &format!("/v2/keys{key}"),
                &format!("value={}", wake + 1),
            ))
            .await
            .expect("put");
        r.into_body().collect().await.expect("body");
        let mut wake_ms: Vec<f64> = Vec::new();
        while wake_ms.len() < armed {
            match tokio::time::timeout(Duration::from_secs(60), woken_rx.recv()).await {
                Ok(Some((w, at))) if w == wake => {
                    wake_ms.push(at.saturating_duration_since(t0).as_secs_f64() * 1e3)
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let (server1, client1) = (cpu_ms(&pid.to_string()), cpu_ms("self"));
        eprintln!("wake {wake}: woken {}", wake_ms.len());
        wake_ms.sort_by(f64::total_cmp);
        results.push(serde_json::json!({
            "woken": wake_ms.len(),
            "last_ms": wake_ms.last().copied().unwrap_or(f64::NAN),
            "p50_ms": percentile(&wake_ms, 0.5),
            "server_cpu_ms": server1 - server0,
            "client_cpu_ms": client1 - client0,
        }));
        if wake_ms.len() < armed {
            break;
        }
    }
    let mut open = Vec::new();
    for c in conns {
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(10), c).await {
            open.push(c);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(open);
    let first = &results[0];
    serde_json::json!({
        "watchers": n,
        "wake_server_cpu_ms": first["server_cpu_ms"],
        "wake_client_cpu_ms": first["client_cpu_ms"],
        "armed": armed,
        "arm_secs": arm_secs,
        "woken": first["woken"],
        "wake_last_ms": first["last_ms"],
        "wake_p50_ms": first["p50_ms"],
        "wakes": results,
        "rss_before_kib": rss_before,
        "rss_armed_kib": rss_armed,
        "bytes_per_watcher": (rss_armed.saturating_sub(rss_before) * 1024) as f64 / n as f64,
    })
    .to_string()
}

fn snapshot(dir: &Path, n: u64, rounds: usize) -> String {
    use keygate::store::tree::Node;
    use keygate::store::{apply_mutation, persist, Mutation};
    let mut root = std::sync::Arc::new(Node::dir(0, None));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let value: std::sync::Arc<str> = "v".repeat(100).into();
    for i in 1..=n {
        let m = Mutation::Put {
            key: random_path("/bench/{rand}", &mut rng),
            created: i,
            modified: i,
            expiration: None,
            value: Some(value.clone()),
        };
        apply_mutation(&mut root, &m);
    }
    let mut secs = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let cpu = thread_cpu_secs();
        bytes = persist::write_snapshot(dir, &root, n).expect("snapshot");
        secs.push(thread_cpu_secs() - cpu);
    }
    secs.sort_by(f64::total_cmp);
    serde_json::json!({
        "keys": n,
        "bytes": bytes,
        "cpu_secs_median": secs[secs.len() / 2],
        "cpu_secs_min": secs[0],
        "cpu_secs_max": secs[secs.len() - 1],
    })
    .to_string()
}

/// CPU time of the calling thread, from /proc (user + system ticks, in
/// USER_HZ: 100 a second on Linux).
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn decide(config: &Path, cert: &Path, key: &str, n: usize) -> String {
    let config = keygate::config::Config::load(config).expect("config");
    let policy = keygate::policy::Policy::new(&config);
    let der = CertificateDer::from_pem_file(cert).expect("cert");
    let id = keygate::identity::Identity::from_leaf(&der, &[]);
    let t = Instant::now();
    let grants = policy.grants(&id);
    let grants_us = t.elapsed().as_secs_f64() * 1e6;
    let req = keygate::v2::request::KeysRequest {
        method: Some(keygate::v2::request::KeysMethod::Get),
        key: key.to_string(),
        ..Default::default()
    };
    assert!(
        keygate::policy::decide_basis(&grants, &req).is_some(),
        "the client may not read {key}"
    );
    // The clock's own cost, to subtract.
    let mut clock = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        clock.push(t.elapsed().as_nanos() as f64);
    }
    clock.sort_by(f64::total_cmp);
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let b = keygate::policy::decide_basis(&grants, std::hint::black_box(&req));
        std::hint::black_box(&b);
        drop(b);
        ns.push(t.elapsed().as_nanos() as f64);
    }
    ns.sort_by(f64::total_cmp);
    let clock50 = percentile(&clock, 0.5);
    serde_json::json!({
        "decisions": n,
        "grants_us": grants_us,
        "read_prefixes": grants.read.iter().count(),
        "clock_ns_p50": clock50,
        "p50_ns": percentile(&ns, 0.5) - clock50,
        "p99_ns": percentile(&ns, 0.99) - clock50,
        "p999_ns": percentile(&ns, 0.999) - clock50,
    })
    .to_string()
}

/// A bare server's configuration, TLS acceptor and listener, from a
/// keygate configuration file.
async fn bare_listen(
    path: &Path,
) -> (
    keygate::config::Config,
    tokio_rustls::TlsAcceptor,
    tokio::net::TcpListener,
) {
    let config = keygate::config::Config::load(path).expect("config");
    let tls = keygate::tls::server_config(&config.tls).expect("tls");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .expect("listen");
    eprintln!("bare server on {}", listener.local_addr().expect("addr"));
    (config, acceptor, listener)
}

async fn bare_server(path: &Path) -> String {
    let (_, acceptor, listener) = bare_listen(path).await;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(b"{}")))
                        .expect("response"),
                )
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A waiting watch of `bare_watch_server`.
enum Waiter {
    /// Woken with the PUT's index; its task writes the event.
    Task(tokio::sync::oneshot::Sender<u64>),
    /// `--direct`: its connection, written by the PUT itself, then handed
    /// back to its task.
    Parked(
        Box<BareStream>,
        tokio::sync::oneshot::Sender<Box<BareStream>>,
    ),
}

type BareStream = tokio::io::BufReader<tokio_rustls::server::TlsStream<TcpStream>>;
type Waiters = Arc<std::sync::Mutex<Vec<Waiter>>>;

async fn bare_watch_server(path: &Path, direct: bool) -> String {
    let (config, acceptor, listener) = bare_listen(path).await;
    let keygate::config::Backend::Embedded { data_dir: dir, .. } = &config.backend else {
        panic!("bare-watch-server: an embedded backend's data_dir is needed");
    };
    std::fs::create_dir_all(dir).expect("data_dir");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("bare.log"))
        .expect("data file");
    let file = Arc::new(std::sync::Mutex::new(file));
    let index = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let waiters: Waiters = Default::default();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let (file, index, waiters) = (file.clone(), index.clone(), waiters.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let io = tokio::io::BufReader::new(stream);
            // Unconstrained: a PUT writes to every watch in one poll,
            // past tokio's budget of I/O operations per poll.
            let conn = bare_watch_conn(io, &file, &index, &waiters, direct);
            let _ = tokio::task::unconstrained(conn).await;
        });
    }
}

/// Writes all of `out` to a connection that can take it now (a watcher's
/// socket buffer is empty), without waiting.
fn write_now(io: &mut Box<BareStream>, out: &[u8]) -> bool {
    use tokio::io::AsyncWrite;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut done = 0;
    while done < out.len() {
        match std::pin::Pin::new(&mut *io).poll_write(&mut cx, &out[done..]) {
            std::task::Poll::Ready(Ok(n)) if n > 0 => done += n,
            _ => return false,
        }
    }
    matches!(
        std::pin::Pin::new(&mut *io).poll_flush(&mut cx),
        std::task::Poll::Ready(Ok(()))
    )
}

/// The chunk of one event and the end of the answer.
fn bare_chunk(index: u64) -> Vec<u8> {
    use std::io::Write as _;
    let event = bare_event(index);
    let mut out = Vec::with_capacity(event.len() + 16);
    let _ = write!(out, "{:x}\r\n{event}\r\n0\r\n\r\n", event.len());
    out
}

/// One connection of `bare_watch_server`: GET with `wait=true` waits for
/// the next PUT; a PUT syncs a line to the file, then wakes every watch.
async fn bare_watch_conn(
    mut io: BareStream,
    file: &std::sync::Mutex<std::fs::File>,
    index: &std::sync::atomic::AtomicU64,
    waiters: &Waiters,
    direct: bool,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    loop {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if io.read_until(b'\n', &mut head).await? == 0 {
                return Ok(());
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        io.read_exact(&mut body).await?;
        let now = index.load(Ordering::Relaxed);
        if head.starts_with("put ") {
            let next = now + 1;
            {
                let mut f = file.lock().expect("file");
                f.write_all(&body)?;
                f.sync_data()?;
            }
            index.store(next, Ordering::Relaxed);
            let woken = std::mem::take(&mut *waiters.lock().expect("waiters"));
            let chunk = bare_chunk(next);
            for w in woken {
                match w {
                    Waiter::Task(tx) => {
                        let _ = tx.send(next);
                    }
                    Waiter::Parked(mut conn, back) => {
                        if write_now(&mut conn, &chunk) {
                            let _ = back.send(conn);
                        }
                    }
                }
            }
            let event = bare_event(next);
            let out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-etcd-index: {next}\r\ncontent-length: {}\r\n\r\n{event}",
                event.len()
            );
            io.write_all(out.as_bytes()).await?;
            io.flush().await?;
            continue;
        }
        if !head.contains("wait=true") {
            let out = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nx-etcd-index: {now}\r\ncontent-length: 2\r\n\r\n{{}}"
            );
            io.write_all(out.as_bytes()).await?;
            io.flush().await?;
            continue;
        }
        let out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-etcd-index: {now}\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        io.write_all(out.as_bytes()).await?;
        io.flush().await?;
        if direct {
            // The PUT writes the event; the connection comes back after.
            let (tx, rx) = tokio::sync::oneshot::channel();
            waiters
                .lock()
                .expect("waiters")
                .push(Waiter::Parked(Box::new(io), tx));
            let Ok(back) = rx.await else {
                return Ok(());
            };
            io = *back;
            continue;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        waiters.lock().expect("waiters").push(Waiter::Task(tx));
        let Ok(at) = rx.await else {
            return Ok(());
        };
        io.write_all(&bare_chunk(at)).await?;
        io.flush().await?;
    }
}

/// The event keygate sends for the benchmark's write to its watched key.
fn bare_event(index: u64) -> String {
    format!(
        "{{\"action\":\"set\",\"node\":{{\"key\":\"{k}\",\"value\":\"{v}\",\"modifiedIndex\":{index},\"createdIndex\":{index}}},\"prevNode\":{{\"key\":\"{k}\",\"value\":\"{p}\",\"modifiedIndex\":{prev},\"createdIndex\":{prev}}}}}",
        k = "/bench/watched",
        v = index % 10,
        p = index.saturating_sub(1) % 10,
        prev = index.saturating_sub(1),
    )
}
