//! The command line. Every error a user can cause ends in one line naming
//! the file or field, and exit status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::api::App;
use crate::config::{io_reason, Backend, Config};
use crate::policy::Policy;
use crate::store::{now_nanos, Store};
use crate::v2::request::{key_path, KeyPath, KeysMethod, KeysRequest};

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "An etcd v2 gateway with mTLS and per-prefix access control"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "config/keygate.toml")]
        config: PathBuf,
        /// Allow the development CA on a non-loopback listener.
        #[arg(long)]
        allow_dev_certs: bool,
    },
    /// Validate the configuration, its files and certificates; print a summary.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "config/keygate.toml")]
        config: PathBuf,
    },
    /// Say ALLOW or DENY for a request by the holder of a certificate, and why.
    Explain {
        /// Configuration file.
        #[arg(long, default_value = "config/keygate.toml")]
        config: PathBuf,
        /// The client certificate (PEM; intermediates may follow the leaf).
        #[arg(long)]
        cert: PathBuf,
        /// GET, HEAD, PUT, POST or DELETE.
        method: String,
        /// The key, as in /v2/keys/KEY.
        key: String,
        /// A recursive request.
        #[arg(long)]
        recursive: bool,
        /// A watch (`wait=true`).
        #[arg(long)]
        wait: bool,
    },
    /// Dump the embedded store as JSON (keygate stopped).
    Export {
        /// Configuration file.
        #[arg(long, default_value = "config/keygate.toml")]
        config: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Load a dump (or a recursive GET of / from any etcd v2) into an empty store.
    Import {
        /// Configuration file.
        #[arg(long, default_value = "config/keygate.toml")]
        config: PathBuf,
        /// The file to import.
        file: PathBuf,
    },
    /// Make a development CA, a server certificate and sample client certificates.
    DevCerts {
        /// Output directory.
        #[arg(long, default_value = "certs-dev")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the command line; returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let res = match cli.command {
        Command::Serve {
            config,
            allow_dev_certs,
        } => serve(&config, allow_dev_certs),
        Command::Check { config } => check(&config),
        Command::Export { config, out } => export(&config, out.as_deref()),
        Command::Import { config, file } => import(&config, &file),
        Command::Explain {
            config,
            cert,
            method,
            key,
            recursive,
            wait,
        } => match explain(&config, &cert, &method, &key, recursive, wait) {
            Ok(true) => Ok(()),
            Ok(false) => return 1,
            Err(e) => Err(e),
        },
        Command::DevCerts { out, force } => crate::devcerts::generate(&out, force).map(|()| {
            println!(
                "wrote development certificates to {} (never use them in production)",
                out.display()
            );
        }),
    };
    crate::logwriter::flush();
    match res {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("keygate: {}", one_line(&msg));
            2
        }
    }
}

/// `msg` on one line, as the error contract promises: a control character
/// (a newline or a terminal escape in a path from the config, say) is
/// written escaped (`\n`, `\u{1b}`).
fn one_line(msg: &str) -> String {
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn check(path: &Path) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    crate::tls::server_config(&config.tls).map_err(|e| e.to_string())?;
    // What `serve` would refuse before it starts.
    embedded_dir(path, &config, NO_UPSTREAM)?;
    raise_nofile(config.server.max_connections, true)?;
    println!("{}: OK", path.display());
    println!(
        "listen {} (advertised as {})",
        config.server.listen,
        config
            .server
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", config.server.listen))
    );
    for (name, role) in &config.roles {
        println!(
            "role {name}: read {:?} write {:?}{}",
            role.read,
            role.write,
            if role.admin { " admin" } else { "" }
        );
    }
    for (i, b) in config.binds.iter().enumerate() {
        println!("bind[{i}] -> roles {:?}", b.roles);
    }
    // Nested write grants: one role's write prefix strictly above another's.
    for (a, ra) in &config.roles {
        for (b, rb) in &config.roles {
            for pa in &ra.write {
                for pb in &rb.write {
                    if pa != pb && crate::policy::covers(pa, pb) {
                        println!("warning: role {a} may write {pa}, above role {b}'s write prefix {pb}: it can block or remove {b}'s data");
                    }
                }
            }
        }
    }
    if let Some(ops) = &config.server.ops_listen {
        if ops
            .parse::<SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback())
        {
            println!("warning: server.ops_listen {ops} is not loopback: its endpoints are unauthenticated");
        }
    }
    for (field, file) in [("tls.cert", &config.tls.cert)] {
        if let Ok(pem) = std::fs::read(file) {
            if let Some(Ok(der)) = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                .next()
                .map(|r: Result<rustls::pki_types::CertificateDer<'static>, _>| r)
            {
                if let Ok((_, c)) = x509_parser::parse_x509_certificate(&der) {
                    let left = c.validity().not_after.timestamp() - now_nanos() / 1_000_000_000;
                    if left < 30 * 86_400 {
                        println!(
                            "warning: {field} {} expires in {} days",
                            file.display(),
                            left / 86_400
                        );
                    }
                }
            }
        }
    }
    if uses_dev_ca(&config)? {
        println!("warning: tls.client_ca contains the development CA, whose private key is public");
    }
    check_pki(&config)?;
    check_rules(&config);
    // SPEC §7: said, so that nobody counts on the EKU to keep out
    // certificates made for other uses.
    println!("note: a client certificate without an extended key usage extension is accepted (RFC 5280); one with it must list clientAuth");
    Ok(())
}

/// Warnings about the client CAs and CRLs.
fn check_pki(config: &Config) -> Result<(), String> {
    let now = now_nanos() / 1_000_000_000;
    let roots = crate::tls::client_roots(&config.tls).map_err(|e| e.to_string())?;
    let mut crl_issuers: Vec<Vec<u8>> = Vec::new();
    for path in &config.tls.crl {
        let pem = std::fs::read(path)
            .map_err(|e| format!("tls.crl: {}: {}", path.display(), io_reason(&e)))?;
        for der in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let der: rustls::pki_types::CertificateRevocationListDer<'static> =
                der.map_err(|e| format!("tls.crl: {}: {e}", path.display()))?;
            if let Ok((_, crl)) = x509_parser::parse_x509_crl(&der) {
                crl_issuers.push(crl.issuer().as_raw().to_vec());
                if let Some(next) = crl.next_update() {
                    if next.timestamp() < now {
                        println!(
                            "warning: tls.crl {} (issuer {}) is past its nextUpdate: still used, renew it",
                            path.display(),
                            crl.issuer()
                        );
                    }
                }
            }
        }
    }
    for der in &roots {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(der) else {
            continue;
        };
        let left = ca.validity().not_after.timestamp() - now;
        if left < 30 * 86_400 {
            println!(
                "warning: client CA {} expires in {} days",
                ca.subject(),
                left / 86_400
            );
        }
        if !config.tls.crl.is_empty() && !crl_issuers.iter().any(|i| i == ca.subject().as_raw()) {
            println!(
                "warning: client CA {} has no CRL in tls.crl: certificates it signs are refused (every certificate below the anchor needs a CRL when CRLs are configured)",
                ca.subject()
            );
        }
    }
    Ok(())
}

/// Warnings about rules that overlap or can never decide anything.
fn check_rules(config: &Config) {
    for (name, role) in &config.roles {
        for (verb, list) in [("read", &role.read), ("write", &role.write)] {
            for p in list {
                if let Some(q) = list.iter().find(|q| *q != p && crate::policy::covers(q, p)) {
                    println!("warning: role {name}: {verb} prefix {p} is unreachable: {q} already covers it");
                }
            }
        }
        let used = config.binds.iter().any(|b| b.roles.contains(name));
        if !used {
            println!("warning: role {name} is granted by no bind");
        }
    }
    for (i, a) in config.binds.iter().enumerate() {
        for (j, b) in config.binds.iter().enumerate().skip(i + 1) {
            let key = |x: &crate::config::Bind| {
                (
                    x.cn.clone(),
                    x.ou.clone(),
                    x.o.clone(),
                    x.dns.clone(),
                    x.uri.clone(),
                    x.email.clone(),
                    x.fingerprint.clone(),
                    x.issuer.clone(),
                    x.any,
                )
            };
            if key(a) == key(b) {
                println!("warning: bind[{i}] and bind[{j}] match the same certificates: merge their roles");
            }
        }
        if a.any
            && a.roles
                .iter()
                .any(|r| config.roles.get(r).is_some_and(|r| !r.write.is_empty()))
        {
            println!("warning: bind[{i}] (any = true) gives every verified client write access");
        }
    }
}

/// Prints the decision; `Ok(true)` on ALLOW.
fn explain(
    path: &Path,
    cert: &Path,
    method: &str,
    key: &str,
    recursive: bool,
    wait: bool,
) -> Result<bool, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, UnixTime};

    let config = Config::load(path).map_err(|e| e.to_string())?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--cert: {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--cert: {}: not a PEM certificate: {e}", cert.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("--cert: {}: holds no certificate", cert.display()));
    };
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => KeysMethod::Get,
        "HEAD" => KeysMethod::Head,
        "PUT" => KeysMethod::Put,
        "POST" => KeysMethod::Post,
        "DELETE" => KeysMethod::Delete,
        other => {
            return Err(format!(
                "METHOD: {other:?}: write GET, HEAD, PUT, POST or DELETE"
            ))
        }
    };
    let key = match key_path(&format!("/{}", key.trim_start_matches('/'))) {
        KeyPath::Key(k) => k,
        KeyPath::Redirect(loc) => {
            let clean = loc.trim_start_matches("/v2/keys");
            return Err(format!(
                "KEY: not clean: keygate answers 301 to {}",
                if clean.is_empty() { "/" } else { clean }
            ));
        }
        KeyPath::BadEscape => return Err("KEY: bad percent-encoding".into()),
        KeyPath::NotUtf8 => return Err("KEY: not valid UTF-8".into()),
    };
    let roots = crate::tls::client_roots(&config.tls).map_err(|e| e.to_string())?;
    let crls = crate::tls::client_crls(&config.tls).map_err(|e| e.to_string())?;
    let verifier =
        crate::tls::client_verifier(&config.tls, &roots, &crls).map_err(|e| e.to_string())?;
    if let Err(e) = verifier.verify_client_cert(leaf, &chain[1..], UnixTime::now()) {
        println!("DENY: the certificate is refused at the TLS handshake: {e}");
        return Ok(false);
    }
    // As `Live::identity`: the configured CAs first.
    let issuers: Vec<&[u8]> = roots
        .iter()
        .map(|c| c.as_ref())
        .chain(chain[1..].iter().map(|c| c.as_ref()))
        .collect();
    let id = crate::identity::Identity::from_leaf(leaf, &issuers);
    println!("identity:");
    println!("  cn: {}", id.cn.as_deref().unwrap_or("(none)"));
    for (name, values) in [
        ("ou", &id.ou),
        ("o", &id.o),
        ("dns", &id.dns),
        ("uri", &id.uris),
        ("email", &id.emails),
    ] {
        for v in values {
            println!("  {name}: {v}");
        }
    }
    println!("  fingerprint: {}", id.fingerprint);
    println!("  issuer: {}", id.issuer.as_deref().unwrap_or("(unknown)"));
    if let Ok((_, c)) = x509_parser::parse_x509_certificate(leaf) {
        if c.extended_key_usage().ok().flatten().is_none() {
            println!("  note: the certificate has no extended key usage (accepted, RFC 5280)");
        }
    }
    let policy = Policy::new(&config);
    let grants = policy.grants(&id);
    for b in &grants.binds {
        println!("matches bind[{b}] -> roles {:?}", config.binds[*b].roles);
    }
    let req = KeysRequest {
        method: Some(method),
        key: key.clone(),
        recursive,
        wait,
        ..KeysRequest::default()
    };
    let flags = format!(
        "{}{}",
        if recursive { " --recursive" } else { "" },
        if wait { " --wait" } else { "" }
    );
    match crate::policy::decide_basis(&grants, &req) {
        Some(crate::policy::Basis::Prefix { prefix, origin }) => {
            println!(
                "ALLOW {} {key}{flags}: bind[{}] role {} prefix {prefix}",
                method.as_str(),
                origin.bind,
                origin.role
            );
            Ok(true)
        }
        Some(_) => {
            println!(
                "ALLOW {} {key}{flags}: traverse (answered with the client's view only)",
                method.as_str()
            );
            Ok(true)
        }
        None => {
            println!(
                "DENY {} {key}{flags}: no role of this client allows it",
                method.as_str()
            );
            Ok(false)
        }
    }
}

fn uses_dev_ca(config: &Config) -> Result<bool, String> {
    let roots = crate::tls::client_roots(&config.tls).map_err(|e| e.to_string())?;
    Ok(crate::tls::has_dev_ca(&roots))
}

/// Creates `data_dir` (and what is missing above it) durably: each new
/// directory's entry is synced in its parent, so that a power loss soon
/// after the first start cannot take the directory, and the writes
/// acknowledged in it, away.
fn create_data_dir(data_dir: &Path) -> Result<(), String> {
    let missing: Vec<&Path> = data_dir.ancestors().take_while(|d| !d.exists()).collect();
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "{}: cannot {what}: {} (backend.data_dir)",
            data_dir.display(),
            io_reason(&e)
        )
    };
    std::fs::create_dir_all(data_dir).map_err(|e| fail("create", e))?;
    for dir in missing {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        crate::store::persist::sync_dir(parent)
            .map_err(|e| fail("sync its parent directory", e))?;
    }
    Ok(())
}

/// The embedded store's directory and compaction size; `otherwise` says
/// why another backend is refused.
fn embedded_dir(path: &Path, config: &Config, otherwise: &str) -> Result<(PathBuf, u64), String> {
    match &config.backend {
        Backend::Embedded {
            data_dir,
            compact_bytes,
        } => Ok((data_dir.clone(), *compact_bytes)),
        Backend::Upstream { .. } => Err(format!("{}: backend.kind: {otherwise}", path.display())),
    }
}

/// Why `serve` (and `check`) refuse the upstream backend.
const NO_UPSTREAM: &str = "\"upstream\" is not available in this version: use \"embedded\"";
/// Why `export` and `import` refuse it.
const EMBEDDED_ONLY: &str = "export and import work on the embedded store only";

fn export(path: &Path, out: Option<&Path>) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let (data_dir, compact_bytes) = embedded_dir(path, &config, EMBEDDED_ONLY)?;
    if !data_dir.join(crate::store::persist::FILE).exists() {
        return Err(format!(
            "{}: no store here (backend.data_dir)",
            data_dir.join(crate::store::persist::FILE).display()
        ));
    }
    let (recovered, _journal) = crate::store::persist::open(&data_dir, compact_bytes)?;
    let mut buf = Vec::new();
    crate::store::event::render_export(&mut buf, &recovered.root, recovered.index, now_nanos());
    match out {
        Some(p) => std::fs::write(p, &buf)
            .map_err(|e| format!("--out: {}: cannot write: {}", p.display(), io_reason(&e)))?,
        None => std::io::Write::write_all(&mut std::io::stdout(), &buf)
            .map_err(|e| format!("cannot write the export: {e}"))?,
    }
    Ok(())
}

fn import(path: &Path, file: &Path) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let (data_dir, compact_bytes) = embedded_dir(path, &config, EMBEDDED_ONLY)?;
    let bytes = std::fs::read(file)
        .map_err(|e| format!("{}: cannot read: {}", file.display(), io_reason(&e)))?;
    let plan = crate::store::persist::read_import(bytes, now_nanos())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    create_data_dir(&data_dir)?;
    let (recovered, mut journal) = crate::store::persist::open(&data_dir, compact_bytes)?;
    let empty = recovered.index == 0 && recovered.root.children().is_none_or(|c| c.is_empty());
    if !empty {
        return Err(format!(
            "{}: the store is not empty (index {}): import only into a new data_dir",
            data_dir.join(crate::store::persist::FILE).display(),
            recovered.index
        ));
    }
    crate::store::Journal::commit(&mut journal, &plan.mutations, plan.index).map_err(|e| {
        format!(
            "{}: cannot write: {e}",
            data_dir.join(crate::store::persist::FILE).display()
        )
    })?;
    // Start from a snapshot, not from one record holding the whole import.
    let mut root = recovered.root;
    for m in &plan.mutations {
        crate::store::apply_mutation(&mut root, m);
    }
    if let Err(e) = journal.compact_now(&root, plan.index) {
        // The import is durable in the journal already: say so, and let the
        // first start replay it.
        eprintln!(
            "warning: {}: cannot write the snapshot ({e}); the import is in {} and the first start replays it",
            data_dir.join(crate::store::persist::SNAP_FILE).display(),
            crate::store::persist::FILE
        );
    }
    println!(
        "imported {} nodes ({} already expired, skipped), store index {}",
        plan.nodes, plan.expired, plan.index
    );
    Ok(())
}

/// Writes `bytes` to a new file at `path` that a power loss cannot leave
/// empty or half written: a temporary file, synced, renamed, and the
/// directory synced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    crate::store::persist::sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads the cluster id from `data_dir`, making one at first start.
fn cluster_id(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("cluster-id");
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim().to_string();
            if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(id)
            } else {
                Err(format!(
                    "{}: not a 16-hex-digit cluster id: restore it or remove the data directory",
                    path.display()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = [0u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                .map_err(|_| "no system randomness for the cluster id".to_string())?;
            let id = crate::identity::hex(&b);
            write_durably(&path, format!("{id}\n").as_bytes()).map_err(|e| {
                format!(
                    "{}: cannot write: {} (backend.data_dir)",
                    path.display(),
                    io_reason(&e)
                )
            })?;
            Ok(id)
        }
        Err(e) => Err(format!(
            "{}: cannot read: {} (backend.data_dir)",
            path.display(),
            io_reason(&e)
        )),
    }
}

/// Logs to stderr in `format`, at the levels `KEYGATE_LOG` sets; audit
/// lines, when on, whatever it sets (`log.audit = false` turns them off,
/// not a log level: SPEC §6 never drops them silently).
fn init_logging(format: &str, audit: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("KEYGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if audit {
        if let Ok(on) = "keygate::audit=info".parse() {
            filter = filter.add_directive(on);
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::logwriter::Batched);
    let json = format == "json";
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if installed.is_ok() && !ansi {
        crate::audit::write_directly(if json {
            crate::audit::Format::Json
        } else {
            crate::audit::Format::Text
        });
    }
}

/// Raises the open-files limit to its hard limit, and checks that it
/// allows `max_connections`; `check_only` (for `check`) checks what it
/// could be raised to, changing nothing.
fn raise_nofile(max_connections: usize, check_only: bool) -> Result<(), String> {
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .map_err(|e| format!("cannot read the open-files limit: {e}"))?;
    let limit = if check_only {
        hard
    } else {
        if soft < hard {
            let _ = rlimit::Resource::NOFILE.set(hard, hard);
        }
        rlimit::Resource::NOFILE.get().unwrap_or((soft, hard)).0
    };
    let needed = max_connections as u64 + 64;
    if limit < needed {
        return Err(format!(
            "server.max_connections: {max_connections} connections need {needed} open files but the limit is {limit}: lower it or raise the limit (ulimit -n)"
        ));
    }
    Ok(())
}

fn serve(path: &Path, allow_dev_certs: bool) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    init_logging(&config.log.format, config.log.audit);
    let live =
        crate::reload::Live::new(config.clone(), 0, Arc::new(config.clone()), allow_dev_certs)?;
    let addr: SocketAddr = config
        .server
        .listen
        .parse()
        .map_err(|_| format!("{}: server.listen: invalid address", path.display()))?;
    raise_nofile(config.server.max_connections, false)?;
    let (data_dir, compact_bytes) = embedded_dir(path, &config, NO_UPSTREAM)?;
    // Take the port first: a port in use fails before the store is touched.
    let std_listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| {
            format!(
                "{}: server.listen: cannot listen on {addr}: {}",
                path.display(),
                io_reason(&e)
            )
        })?;
    let ops_listener = match &config.server.ops_listen {
        None => None,
        Some(ops) => Some(
            std::net::TcpListener::bind(ops.as_str())
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    format!(
                        "{}: server.ops_listen: cannot listen on {ops}: {}",
                        path.display(),
                        io_reason(&e)
                    )
                })?,
        ),
    };
    create_data_dir(&data_dir)?;
    // The journal is checked before anything is written to data_dir.
    let (recovered, journal) = crate::store::persist::open(&data_dir, compact_bytes)?;
    let cluster_id = cluster_id(&data_dir)?;
    tracing::info!(
        snapshot_index = recovered.snapshot_index,
        records = recovered.records,
        index = recovered.index,
        "store recovered from {}",
        data_dir.join(crate::store::persist::FILE).display()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::store::tree::STACK_BYTES)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| format!("{}: server.listen: {addr}: {e}", path.display()))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("server.listen: {e}"))?;
        let advertise_url = config
            .server
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("https://{local}"));
        let store = Store::start(
            recovered.root,
            recovered.index,
            Box::new(journal),
            crate::policy::PrefixSet::all_read_prefixes(&config),
        );
        let app = Arc::new(App {
            store: store.clone(),
            live: arc_swap::ArcSwap::from_pointee(live),
            reloading: Default::default(),
            clients: Default::default(),
            reloads: Default::default(),
            audit: config.log.audit,
            json_log: config.log.format == "json",
            cluster_header: hyper::header::HeaderValue::from_str(&cluster_id)
                .map_err(|e| format!("cluster id {cluster_id:?}: {e}"))?,
            cluster_id,
            name: "keygate".into(),
            advertise_url: advertise_url.clone(),
            max_body_bytes: config.server.max_body_bytes,
            max_header_bytes: config.server.max_header_bytes,
            max_header_count: config.server.max_header_count,
            metrics: crate::metrics::RequestMetrics::default(),
            quotas: crate::quota::Quotas::new(
                config.server.max_connections_per_identity,
                config.server.max_watches_per_identity,
            ),
            started: now_nanos(),
        });
        tracing::info!(
            listen = %local,
            advertise_url = %advertise_url,
            backend = "embedded",
            data_dir = %data_dir.display(),
            binds = config.binds.len(),
            roles = config.roles.len(),
            "keygate listening"
        );
        let listener_stats = Arc::new(crate::server::ListenerStats::default());
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(ops) = ops_listener {
            let ops = tokio::net::TcpListener::from_std(ops)
                .map_err(|e| format!("{}: server.ops_listen: {e}", path.display()))?;
            let ops_addr = ops
                .local_addr()
                .map_err(|e| format!("server.ops_listen: {e}"))?;
            tracing::info!(ops_listen = %ops_addr, "ops endpoints listening (/healthz /readyz /metrics)");
            tokio::spawn(crate::ops::serve(
                ops,
                Arc::new(crate::ops::Ops {
                    app: app.clone(),
                    listener: listener_stats.clone(),
                    stopping: stopping.clone(),
                    keys: Default::default(),
                }),
            ));
        }
        let stop = stopping.clone();
        let signal = async move {
            shutdown_signal().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        tokio::spawn(reload_on_sighup(app.clone()));
        crate::server::run(listener, app, config.server.clone(), listener_stats, signal).await;
        store.shutdown(config.server.shutdown_timeout);
        tracing::info!("stopped");
        Ok(())
    })
}

/// Reloads the configuration at each SIGHUP (SPEC §6).
async fn reload_on_sighup(app: Arc<App>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: no reloads");
        return;
    };
    while hup.recv().await.is_some() {
        let app = app.clone();
        // Reading files and verifying chains: off the request threads.
        let done = tokio::task::spawn_blocking(move || crate::reload::reload(&app)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("reload refused, the configuration before it serves: {e}")
            }
            Err(e) => tracing::error!("reload failed: {e}"),
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
