//! The configuration file (TOML): parsing, defaults, validation.
//!
//! Every error names the file and the field, on one line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration error: one line naming the file and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: Server,
    /// `[tls]`.
    pub tls: Tls,
    /// `[backend]`.
    pub backend: Backend,
    /// `[log]`.
    pub log: Log,
    /// `[roles.*]`.
    pub roles: BTreeMap<String, Role>,
    /// `[[bind]]`.
    pub binds: Vec<Bind>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// HTTPS listen address.
    pub listen: String,
    /// Client URL advertised in `/v2/members` and `/v2/machines`; `None`
    /// means `https://` + the address actually bound.
    pub advertise_url: Option<String>,
    /// Plain-HTTP ops listener.
    pub ops_listen: Option<String>,
    /// Connection limit.
    pub max_connections: usize,
    /// Per-identity connection limit.
    pub max_connections_per_identity: usize,
    /// Per-identity watch limit.
    pub max_watches_per_identity: usize,
    /// HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Reading a request and answering it.
    pub request_timeout: Duration,
    /// Keep-alive idle time.
    pub idle_timeout: Duration,
    /// Graceful shutdown deadline.
    pub shutdown_timeout: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_header_count: usize,
}

/// `[tls]`.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CAs that may sign client certificates (PEM bundle).
    pub client_ca: PathBuf,
    /// CRL files (PEM).
    pub crl: Vec<PathBuf>,
    /// Lowest TLS version: "1.2" or "1.3".
    pub min_version: String,
}

/// `[backend]`.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The built-in store.
    Embedded {
        /// Where it keeps its data.
        data_dir: PathBuf,
        /// The journal is compacted into a snapshot once it has grown past
        /// this many bytes and past the snapshot's size.
        compact_bytes: u64,
    },
    /// A real etcd cluster.
    Upstream {
        /// etcd client URLs.
        endpoints: Vec<String>,
    },
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct Log {
    /// "text" or "json".
    pub format: String,
    /// One audit line per decision.
    pub audit: bool,
}

/// `[roles.NAME]`.
#[derive(Debug, Clone, Default)]
pub struct Role {
    /// Read prefixes (canonical).
    pub read: Vec<String>,
    /// Write prefixes (canonical).
    pub write: Vec<String>,
    /// May read `/v2/stats/*`.
    pub admin: bool,
}

/// `[[bind]]`.
#[derive(Debug, Clone, Default)]
pub struct Bind {
    /// Subject CN glob.
    pub cn: Option<String>,
    /// Subject OU glob.
    pub ou: Option<String>,
    /// Subject O glob.
    pub o: Option<String>,
    /// SAN DNS glob.
    pub dns: Option<String>,
    /// SAN URI glob.
    pub uri: Option<String>,
    /// SAN email glob.
    pub email: Option<String>,
    /// SHA-256 of the leaf, normalized lower-case hex.
    pub fingerprint: Option<String>,
    /// SHA-256 of the issuing CA, normalized lower-case hex.
    pub issuer: Option<String>,
    /// Matches every verified client.
    pub any: bool,
    /// Roles granted.
    pub roles: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    tls: Option<RawTls>,
    #[serde(default)]
    backend: RawBackend,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    bind: Vec<RawBind>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    advertise_url: Option<String>,
    ops_listen: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_identity: Option<usize>,
    max_watches_per_identity: Option<usize>,
    max_streams_per_connection: Option<u32>,
    handshake_timeout: Option<String>,
    request_timeout: Option<String>,
    idle_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_header_count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    #[serde(default)]
    crl: Vec<String>,
    min_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    kind: Option<String>,
    data_dir: Option<String>,
    compact_bytes: Option<u64>,
    #[serde(default)]
    endpoints: Vec<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    audit: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBind {
    cn: Option<String>,
    ou: Option<String>,
    o: Option<String>,
    dns: Option<String>,
    uri: Option<String>,
    email: Option<String>,
    fingerprint: Option<String>,
    issuer: Option<String>,
    any: Option<bool>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Parses a duration: an integer with `ms`, `s`, `m` or `h`, compounds
/// allowed (`"1m30s"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
    }
    Some(total)
}

/// What is wrong with a policy prefix, with its canonical form when one
/// can be said; `None` when `p` is canonical.
pub fn prefix_problem(p: &str) -> Option<String> {
    let ok = p.starts_with('/')
        && !p.contains('*')
        && (p == "/" || !p.ends_with('/'))
        && p[1..]
            .split('/')
            .all(|s| p == "/" || (!s.is_empty() && s != "." && s != ".."));
    if ok {
        return None;
    }
    if p.is_empty() {
        return Some(
            "an empty prefix: write \"/\" for the whole store, or the path of a subtree".into(),
        );
    }
    let stars = p.trim_end_matches('*');
    let trimmed = stars.trim_end_matches('/');
    if trimmed.contains('*') {
        return Some(format!(
            "prefix {p:?} has '*' inside: prefixes are literal paths, each covering a whole subtree; write the directory above, or one prefix per subtree"
        ));
    }
    if stars.len() < p.len() && !stars.is_empty() && !stars.ends_with('/') {
        return Some(format!(
            "prefix {p:?} ends in a partial name: prefixes cover whole path segments, so {stars:?} would not cover {:?}; write one prefix per subtree",
            format!("{stars}x")
        ));
    }
    let canonical = crate::v2::request::go_clean(&format!("/{trimmed}"));
    Some(format!(
        "prefix {p:?} is not canonical: keygate prefixes cover subtrees; write {canonical:?}"
    ))
}

/// The field set on the line of byte `at` in TOML `text`: the table of
/// the header above it and the key before the line's `=` (`None` when the
/// line sets none, as inside a list written over several lines).
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let (key, _) = text[start..end].split_once('=')?;
    // A bare key, as this file's keys are (not a string holding `=`, in a
    // list written over several lines).
    let key = key.trim();
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    let key = key.to_string();
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim_start)
        .find(|l| l.starts_with('['))
        .and_then(|h| h.trim_start_matches('[').split(']').next())
        .map(str::trim);
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    })
}

/// Checks a glob: not empty, no `***`.
fn check_glob(g: &str) -> Result<(), &'static str> {
    if g.is_empty() {
        return Err("empty pattern");
    }
    if g.contains("***") {
        return Err("three '*' in a row");
    }
    Ok(())
}

/// Normalizes a SHA-256 given as hex with optional colons, any case.
pub fn normalize_sha256(s: &str) -> Option<String> {
    let h: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())).then_some(h)
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "{}: cannot read the config file: {} (pass --config PATH)",
                path.display(),
                io_reason(&e)
            ))
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates configuration text; `path` names it in errors
    /// and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            let msg = e.message().replace('\n', " ");
            match e.span().and_then(|s| key_at(text, s.start)) {
                Some(field) => ConfigError(format!("{file}:{line}:{col}: {field}: {msg}")),
                None => ConfigError(format!("{file}:{line}:{col}: {msg}")),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let err = |field: &str, msg: String| ConfigError(format!("{file}: {field}: {msg}"));
        let dur = |field: &str,
                   v: &Option<String>,
                   default: u64|
         -> Result<Duration, ConfigError> {
            match v {
                None => Ok(Duration::from_secs(default)),
                Some(s) => parse_duration(s).ok_or_else(|| {
                    err(
                        field,
                        format!("invalid duration {s:?}: write an integer with ms, s, m or h, e.g. \"1m30s\""),
                    )
                }),
            }
        };

        let s = raw.server;
        let listen = s.listen.unwrap_or_else(|| "127.0.0.1:2379".into());
        let addr: SocketAddr = listen.parse().map_err(|_| {
            err(
                "server.listen",
                format!("invalid address {listen:?}: write IP:PORT, e.g. \"127.0.0.1:2379\""),
            )
        })?;
        if s.advertise_url.is_none() && addr.ip().is_unspecified() {
            return Err(err(
                "server.advertise_url",
                "required when server.listen is a wildcard address".into(),
            ));
        }
        let advertise_url = s.advertise_url;
        // What etcdctl and python-etcd sync their endpoints to: a URL they
        // can use, or they lose the gateway.
        if let Some(url) = &advertise_url {
            let usable = url.parse::<hyper::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("https" | "http"))
                    && u.host().is_some_and(|h| !h.is_empty())
                    && u.path_and_query().is_none_or(|p| p.as_str() == "/")
            });
            if !usable {
                return Err(err(
                    "server.advertise_url",
                    format!("{url:?} is not a URL clients can use: write https://HOST:PORT"),
                ));
            }
        }
        if let Some(ops) = &s.ops_listen {
            ops.parse::<SocketAddr>().map_err(|_| {
                err(
                    "server.ops_listen",
                    format!("invalid address {ops:?}: write IP:PORT"),
                )
            })?;
        }
        let max_connections = s.max_connections.unwrap_or(10_000);
        let server = Server {
            listen,
            advertise_url,
            ops_listen: s.ops_listen,
            max_connections,
            max_connections_per_identity: s.max_connections_per_identity.unwrap_or(max_connections),
            max_watches_per_identity: s.max_watches_per_identity.unwrap_or(max_connections),
            max_streams_per_connection: s.max_streams_per_connection.unwrap_or(100),
            handshake_timeout: dur("server.handshake_timeout", &s.handshake_timeout, 10)?,
            request_timeout: dur("server.request_timeout", &s.request_timeout, 30)?,
            idle_timeout: dur("server.idle_timeout", &s.idle_timeout, 120)?,
            shutdown_timeout: dur("server.shutdown_timeout", &s.shutdown_timeout, 10)?,
            max_body_bytes: s.max_body_bytes.unwrap_or(1_572_864),
            max_header_bytes: s.max_header_bytes.unwrap_or(16_384),
            max_header_count: s.max_header_count.unwrap_or(100),
        };
        if server.max_connections == 0 {
            return Err(err("server.max_connections", "must be at least 1".into()));
        }
        // A limit of 0 would refuse (or time out) every request; the upper
        // bounds keep allocations and HTTP/2's 32-bit settings sane, and a
        // body's journal record under its 32-bit length.
        for (field, v, most) in [
            (
                "server.max_streams_per_connection",
                server.max_streams_per_connection as u64,
                u64::from(u32::MAX),
            ),
            (
                "server.max_body_bytes",
                server.max_body_bytes as u64,
                256 << 20,
            ),
            (
                "server.max_header_bytes",
                server.max_header_bytes as u64,
                16 << 20,
            ),
            (
                "server.max_header_count",
                server.max_header_count as u64,
                10_000,
            ),
        ] {
            if v == 0 || v > most {
                return Err(err(field, format!("must be between 1 and {most}, not {v}")));
            }
        }
        for (field, v) in [
            ("server.handshake_timeout", server.handshake_timeout),
            ("server.request_timeout", server.request_timeout),
            ("server.idle_timeout", server.idle_timeout),
        ] {
            if v.is_zero() {
                return Err(err(field, "must be more than 0".into()));
            }
        }
        // 0 is not "unlimited": leave the key out for the default.
        for (field, v) in [
            (
                "server.max_connections_per_identity",
                server.max_connections_per_identity,
            ),
            (
                "server.max_watches_per_identity",
                server.max_watches_per_identity,
            ),
        ] {
            if v == 0 {
                return Err(err(
                    field,
                    "must be at least 1 (leave it out for the default, max_connections)".into(),
                ));
            }
        }

        let Some(t) = raw.tls else {
            return Err(err(
                "tls",
                "missing section: set tls.cert, tls.key and tls.client_ca".into(),
            ));
        };
        let need = |field: &str, v: Option<String>| -> Result<PathBuf, ConfigError> {
            v.map(|p| resolve(&p))
                .ok_or_else(|| err(field, "required: the path of a PEM file".into()))
        };
        let min_version = t.min_version.unwrap_or_else(|| "1.2".into());
        if min_version != "1.2" && min_version != "1.3" {
            return Err(err(
                "tls.min_version",
                format!("{min_version:?} is not supported: write \"1.2\" or \"1.3\""),
            ));
        }
        let tls = Tls {
            cert: need("tls.cert", t.cert)?,
            key: need("tls.key", t.key)?,
            client_ca: need("tls.client_ca", t.client_ca)?,
            crl: t.crl.iter().map(|p| resolve(p)).collect(),
            min_version,
        };

        let b = raw.backend;
        let backend = match b.kind.as_deref().unwrap_or("embedded") {
            "embedded" => {
                let Some(d) = b.data_dir else {
                    return Err(err(
                        "backend.data_dir",
                        "required with backend.kind = \"embedded\"".into(),
                    ));
                };
                let compact_bytes = b
                    .compact_bytes
                    .unwrap_or(crate::store::persist::DEFAULT_COMPACT_BYTES);
                if compact_bytes < 4096 {
                    return Err(err(
                        "backend.compact_bytes",
                        format!("{compact_bytes} is too small: at least 4096"),
                    ));
                }
                Backend::Embedded {
                    data_dir: resolve(&d),
                    compact_bytes,
                }
            }
            "upstream" => {
                if b.endpoints.is_empty() {
                    return Err(err(
                        "backend.endpoints",
                        "required with backend.kind = \"upstream\"".into(),
                    ));
                }
                let _ = (&b.ca, &b.cert, &b.key, &b.timeout);
                Backend::Upstream {
                    endpoints: b.endpoints,
                }
            }
            other => {
                return Err(err(
                    "backend.kind",
                    format!("{other:?} is not a backend: write \"embedded\" or \"upstream\""),
                ))
            }
        };

        let format = raw.log.format.unwrap_or_else(|| "text".into());
        if format != "text" && format != "json" {
            return Err(err(
                "log.format",
                format!("{format:?}: write \"text\" or \"json\""),
            ));
        }
        let log = Log {
            format,
            audit: raw.log.audit.unwrap_or(true),
        };

        let mut roles = BTreeMap::new();
        for (name, r) in raw.roles {
            for (verb, list) in [("read", &r.read), ("write", &r.write)] {
                for p in list {
                    if let Some(problem) = prefix_problem(p) {
                        return Err(err(&format!("roles.{name}.{verb}"), problem));
                    }
                }
            }
            roles.insert(
                name,
                Role {
                    read: r.read,
                    write: r.write,
                    admin: r.admin,
                },
            );
        }

        let mut binds = Vec::new();
        for (i, rb) in raw.bind.into_iter().enumerate() {
            let field = |f: &str| format!("bind[{i}].{f}");
            let any = rb.any.unwrap_or(false);
            let globs = [
                ("cn", &rb.cn),
                ("ou", &rb.ou),
                ("o", &rb.o),
                ("dns", &rb.dns),
                ("uri", &rb.uri),
                ("email", &rb.email),
            ];
            let named = globs.iter().filter(|(_, v)| v.is_some()).count()
                + usize::from(rb.fingerprint.is_some())
                + usize::from(rb.issuer.is_some());
            if rb.any == Some(false) && named == 0 {
                return Err(err(
                    &field("any"),
                    "any = false matches nothing: name a field or write any = true".into(),
                ));
            }
            if any && named > 0 {
                return Err(err(
                    &field("any"),
                    "any = true must be the only match field".into(),
                ));
            }
            if !any && named == 0 {
                return Err(err(
                    &format!("bind[{i}]"),
                    "names no match field: give cn, ou, o, dns, uri, email, fingerprint, issuer or any = true".into(),
                ));
            }
            for (f, v) in globs {
                if let Some(g) = v {
                    check_glob(g).map_err(|m| err(&field(f), format!("bad pattern {g:?}: {m}")))?;
                }
            }
            let sha = |f: &str, v: &Option<String>| -> Result<Option<String>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(s) => normalize_sha256(s).map(Some).ok_or_else(|| {
                        err(
                            &field(f),
                            format!("{s:?} is not a SHA-256: write 64 hex digits (colons allowed)"),
                        )
                    }),
                }
            };
            let fingerprint = sha("fingerprint", &rb.fingerprint)?;
            let issuer = sha("issuer", &rb.issuer)?;
            if rb.roles.is_empty() {
                return Err(err(
                    &field("roles"),
                    "required: the roles this bind grants".into(),
                ));
            }
            for r in &rb.roles {
                if !roles.contains_key(r) {
                    return Err(err(
                        &field("roles"),
                        format!("role {r:?} is not defined: add a [roles.{r}] section"),
                    ));
                }
            }
            binds.push(Bind {
                cn: rb.cn,
                ou: rb.ou,
                o: rb.o,
                dns: rb.dns,
                uri: rb.uri,
                email: rb.email,
                fingerprint,
                issuer,
                any,
                roles: rb.roles,
            });
        }

        Ok(Config {
            path: path.to_path_buf(),
            server,
            tls,
            backend,
            log,
            roles,
            binds,
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// An I/O error without Rust's "(os error N)" noise.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_problem("/team-a"), None);
        assert_eq!(prefix_problem("/"), None);
        let says = |p: &str| prefix_problem(p).unwrap();
        for (p, canonical) in [
            ("/team-a/*", "/team-a"),
            ("/team-a/", "/team-a"),
            ("team-a", "/team-a"),
            ("/a//b", "/a/b"),
            ("/a/../b", "/b"),
            ("*", "/"),
            ("/*", "/"),
        ] {
            assert!(
                says(p).ends_with(&format!("write {canonical:?}")),
                "{p}: {}",
                says(p)
            );
        }
        // No suggestion that would not mean what was written.
        assert!(says("").starts_with("an empty prefix"), "{}", says(""));
        for p in ["/a/*/b", "/*/b", "/a*b"] {
            assert!(says(p).contains("has '*' inside"), "{p}: {}", says(p));
        }
        let s = says("/team-*");
        assert!(
            s.contains("partial name") && s.contains("\"/team-\" would not cover \"/team-x\""),
            "{s}"
        );
    }

    const MIN: &str = "[tls]\ncert='c'\nkey='k'\nclient_ca='ca'\n[backend]\ndata_dir='d'\n";

    #[test]
    fn unknown_key_has_line_and_column() {
        let e = Config::parse(
            Path::new("k.toml"),
            &format!("{MIN}[log]\nfromat = 'json'\n"),
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("k.toml:8:1: log.fromat: unknown field `fromat`"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_names_its_field_and_no_other() {
        let parse = |tail: &str| {
            Config::parse(Path::new("k.toml"), &format!("{MIN}{tail}"))
                .unwrap_err()
                .0
        };
        let e = parse("[server]\nmax_connections = '10'\n");
        assert!(
            e.starts_with("k.toml:8:19: server.max_connections: invalid type"),
            "{e}"
        );
        // Inside a list written over several lines: no field, rather than
        // one made of a string holding `=`.
        let e = parse("[[bind]]\nany = true\nroles = [\n  \"O=Acme\", 5,\n]\n");
        assert!(e.starts_with("k.toml:10:13: invalid type"), "{e}");
    }

    #[test]
    fn bind_errors() {
        let e = Config::parse(
            Path::new("k.toml"),
            &format!("{MIN}[[bind]]\nroles=['x']\n"),
        )
        .unwrap_err();
        assert!(e.0.contains("bind[0]: names no match field"), "{e}");
        let e = Config::parse(
            Path::new("k.toml"),
            &format!("{MIN}[[bind]]\ncn='a'\nroles=['x']\n"),
        )
        .unwrap_err();
        assert!(e.0.contains("role \"x\" is not defined"), "{e}");
        let e = Config::parse(
            Path::new("k.toml"),
            &format!("{MIN}[roles.t]\nread=['/team-a/*']\n"),
        )
        .unwrap_err();
        assert!(e.0.contains("write \"/team-a\""), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let c = Config::parse(Path::new("/etc/kg/k.toml"), MIN).unwrap();
        assert_eq!(c.tls.cert, PathBuf::from("/etc/kg/c"));
    }
}
