//! The command line's error contract (SPEC §2): every error a user can
//! cause ends in one clear line naming the file or field, and exit status
//! 2, never a panic or a backtrace.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{keygate_bin, seeds, Pki, Rng};

/// Runs keygate with `args` (at most 20 s) and returns its output.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(keygate_bin())
        .args(args)
        .env_remove("KEYGATE_LOG")
        // A backtrace would show if anything panicked.
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
            let out = child.wait_with_output().unwrap();
            panic!(
                "keygate {args:?} still running after 20 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts the error contract and returns the one line.
#[track_caller]
fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status; stderr: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("RUST_BACKTRACE")
            && !stderr.contains("stack backtrace"),
        "a panic, not an error: {stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stderr should be exactly one line: {stderr:?}"
    );
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert!(!lines[0].trim().is_empty(), "{stderr:?}");
    lines[0].to_string()
}

fn serve(config: &Path) -> Output {
    run(&["serve", "--config", config.to_str().unwrap()])
}

fn check(config: &Path) -> Output {
    run(&["check", "--config", config.to_str().unwrap()])
}

/// Runs `check`, which must accept `config`; its output.
#[track_caller]
fn checks(config: &Path) -> Output {
    let out = check(config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: stdout {:?} stderr {:?}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A config directory with a test PKI.
struct Setup {
    pki: Pki,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            pki: Pki::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A valid configuration listening on `listen`; `edit` changes the text.
    fn config_text(&self, listen: &str) -> String {
        format!(
            "[server]\n\
             listen = \"{listen}\"\n\
             idle_timeout = \"2m\"\n\
             \n\
             [tls]\n\
             cert = {:?}\n\
             key = {:?}\n\
             client_ca = {:?}\n\
             \n\
             [backend]\n\
             data_dir = \"data\"\n\
             \n\
             [roles.team-a]\n\
             read = [\"/team-a\"]\n\
             write = [\"/team-a\"]\n\
             \n\
             [[bind]]\n\
             cn = \"team-a-*\"\n\
             roles = [\"team-a\"]\n",
            self.pki.server.cert, self.pki.server.key, self.pki.ca
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A valid config with `from` replaced by `to` (which must occur).
    fn variant(&self, from: &str, to: &str) -> PathBuf {
        let text = self.config_text("127.0.0.1:1");
        assert!(text.contains(from), "{from:?} not in the config");
        self.write("keygate.toml", &text.replacen(from, to, 1))
    }
}

#[test]
fn check_accepts_a_valid_config() {
    let s = Setup::new();
    let config = s.write("keygate.toml", &s.config_text("127.0.0.1:2379"));
    let out = checks(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("team-a"),
        "summary names the role: {stdout:?}"
    );
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nope.toml");
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(line.contains(config.to_str().unwrap()), "{line}");
        assert!(line.contains("--config"), "says how to fix it: {line}");
    }
}

#[test]
fn unknown_key_has_file_line_and_column() {
    let s = Setup::new();
    // Line 3, column 1: `idle_timout`.
    let config = s.variant("idle_timeout = \"2m\"", "idle_timout = \"2m\"");
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(text.lines().nth(2), Some("idle_timout = \"2m\""));
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(
            line.contains(&format!("{}:3:1", config.display())),
            "names file:line:col: {line}"
        );
        assert!(line.contains("idle_timout"), "{line}");
    }
    // In a nested table: line 14, column 1 (`raed`).
    let config = s.variant("read = [\"/team-a\"]", "raed = [\"/team-a\"]");
    let line = one_line_error(&serve(&config));
    assert!(
        line.contains(&format!("{}:14:1", config.display())),
        "{line}"
    );
    assert!(line.contains("raed"), "{line}");
}

/// A value of the wrong type names its field (its table and key), with
/// the file, line and column.
#[test]
fn a_value_of_the_wrong_type_names_its_field() {
    let s = Setup::new();
    for (from, to, field) in [
        (
            "idle_timeout = \"2m\"",
            "idle_timeout = \"2m\"\nmax_connections = \"10\"",
            "server.max_connections",
        ),
        ("roles = [\"team-a\"]", "roles = \"team-a\"", "bind.roles"),
        ("read = [\"/team-a\"]", "read = 7", "roles.team-a.read"),
    ] {
        let config = s.variant(from, to);
        let line = one_line_error(&check(&config));
        assert!(line.contains(&format!("{}:", config.display())), "{line}");
        assert!(line.contains(&format!(": {field}: ")), "{line}");
        assert!(line.contains("invalid type"), "{line}");
    }
}

/// `check` refuses what `serve` would refuse before it starts: a backend
/// this version does not serve, more connections than the open-files
/// limit can hold.
#[test]
fn check_refuses_what_serve_refuses() {
    let s = Setup::new();
    let config = s.variant(
        "data_dir = \"data\"",
        "kind = \"upstream\"\nendpoints = [\"https://127.0.0.1:2379\"]",
    );
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(line.contains(config.to_str().unwrap()), "{line}");
        assert!(line.contains("backend.kind: \"upstream\""), "{line}");
    }
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if hard < 1 << 40 {
        let config = s.variant(
            "idle_timeout = \"2m\"",
            &format!("idle_timeout = \"2m\"\nmax_connections = {hard}"),
        );
        for out in [serve(&config), check(&config)] {
            let line = one_line_error(&out);
            assert!(line.contains("server.max_connections"), "{line}");
        }
    }
}

/// `/v2/members` and `/v2/machines` hand `advertise_url` to clients that
/// sync their endpoints: it must be a URL they can use.
#[test]
fn an_unusable_advertise_url_is_refused() {
    let s = Setup::new();
    for bad in [
        "127.0.0.1:2379",
        "ftp://h:2379",
        "https://",
        "https://h:2379/v2",
        "h t t p",
    ] {
        let config = s.variant(
            "idle_timeout = \"2m\"",
            &format!("idle_timeout = \"2m\"\nadvertise_url = {bad:?}"),
        );
        for out in [serve(&config), check(&config)] {
            let line = one_line_error(&out);
            assert!(line.contains("server.advertise_url"), "{bad}: {line}");
        }
    }
    for good in [
        "https://gate.example:2379",
        "https://10.0.0.1:2379/",
        "http://127.0.0.1:2379",
    ] {
        let config = s.variant(
            "idle_timeout = \"2m\"",
            &format!("idle_timeout = \"2m\"\nadvertise_url = {good:?}"),
        );
        checks(&config);
    }
}

#[test]
fn missing_certificate_file() {
    let s = Setup::new();
    let missing = s.dir.path().join("gone.pem");
    let config = s.variant(
        &format!("cert = {:?}", s.pki.server.cert),
        &format!("cert = {missing:?}"),
    );
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(line.contains("tls.cert"), "names the field: {line}");
        assert!(
            line.contains(missing.to_str().unwrap()),
            "names the file: {line}"
        );
    }
}

#[test]
fn certificate_that_does_not_match_its_key() {
    let s = Setup::new();
    // The client's key (another rcgen key pair) given for the server cert.
    let other = s.pki.client("other");
    let config = s.variant(
        &format!("key = {:?}", s.pki.server.key),
        &format!("key = {:?}", other.key),
    );
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(line.contains("tls.key"), "names the field: {line}");
        assert!(
            line.contains(other.key.to_str().unwrap()),
            "names the file: {line}"
        );
        assert!(line.contains("match"), "says what is wrong: {line}");
    }
}

#[test]
fn port_already_in_use() {
    let s = Setup::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = s.write("keygate.toml", &s.config_text(&addr));
    let line = one_line_error(&serve(&config));
    assert!(line.contains("server.listen"), "names the field: {line}");
    assert!(line.contains(&addr), "names the address: {line}");
    drop(taken);
}

#[test]
fn undefined_role_in_a_bind() {
    let s = Setup::new();
    let config = s.variant("roles = [\"team-a\"]", "roles = [\"team-a\", \"team-z\"]");
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(
            line.contains(config.to_str().unwrap()),
            "names the file: {line}"
        );
        assert!(line.contains("bind[0].roles"), "names the field: {line}");
        assert!(line.contains("team-z"), "names the role: {line}");
    }
}

#[test]
fn non_canonical_prefix_shows_the_canonical_form() {
    let s = Setup::new();
    let config = s.variant("read = [\"/team-a\"]", "read = [\"/team-a/*\"]");
    for out in [serve(&config), check(&config)] {
        let line = one_line_error(&out);
        assert!(
            line.contains("roles.team-a.read"),
            "names role and field: {line}"
        );
        assert!(line.contains("\"/team-a/*\""), "names the prefix: {line}");
        assert!(
            line.contains("\"/team-a\""),
            "shows the canonical form: {line}"
        );
    }
}

#[test]
fn bad_duration() {
    let s = Setup::new();
    for bad in ["10", "2 minutes", "1.5s", "-1s", "s"] {
        let config = s.variant("idle_timeout = \"2m\"", &format!("idle_timeout = {bad:?}"));
        for out in [serve(&config), check(&config)] {
            let line = one_line_error(&out);
            assert!(
                line.contains(config.to_str().unwrap()),
                "names the file: {line}"
            );
            assert!(
                line.contains("server.idle_timeout"),
                "names the field: {line}"
            );
        }
    }
}

#[test]
fn a_per_identity_limit_of_zero_is_refused() {
    let s = Setup::new();
    for field in ["max_connections_per_identity", "max_watches_per_identity"] {
        let config = s.variant(
            "idle_timeout = \"2m\"",
            &format!("idle_timeout = \"2m\"\n{field} = 0"),
        );
        for out in [serve(&config), check(&config)] {
            let line = one_line_error(&out);
            assert!(line.contains(config.to_str().unwrap()), "{line}");
            assert!(line.contains(&format!("server.{field}")), "{line}");
            assert!(line.contains("must be at least 1"), "{line}");
        }
    }
}

/// A limit of 0 would refuse or time out every request; a huge one would
/// make allocations fail (the process aborts) or wrap HTTP/2's 32-bit
/// settings. Both are refused, naming the field.
#[test]
fn limits_out_of_range_are_refused() {
    let s = Setup::new();
    for (field, value) in [
        ("max_streams_per_connection", "0"),
        ("max_body_bytes", "0"),
        ("max_body_bytes", "1000000000000"),
        ("max_header_bytes", "0"),
        ("max_header_bytes", "4294967296"),
        ("max_header_count", "0"),
        ("max_header_count", "1000000000000"),
        ("handshake_timeout", "\"0s\""),
        ("request_timeout", "\"0ms\""),
        ("idle_timeout", "\"0s\""),
    ] {
        let line = if field == "idle_timeout" {
            format!("idle_timeout = {value}")
        } else {
            format!("idle_timeout = \"2m\"\n{field} = {value}")
        };
        let config = s.variant("idle_timeout = \"2m\"", &line);
        for out in [serve(&config), check(&config)] {
            let line = one_line_error(&out);
            assert!(line.contains(config.to_str().unwrap()), "{line}");
            assert!(line.contains(&format!("server.{field}")), "{line}");
            assert!(line.contains("must be"), "{line}");
        }
    }
    // The bounds themselves are accepted.
    let config = s.variant(
        "idle_timeout = \"2m\"",
        "idle_timeout = \"1ms\"\nmax_body_bytes = 268435456\nmax_header_bytes = 16777216\nmax_header_count = 10000\nmax_streams_per_connection = 1",
    );
    checks(&config);
}

/// SPEC §7: with `tls.crl` set, revocation is checked. A CRL file that
/// holds no PEM CRL (empty, DER, a certificate) left it unchecked without a
/// word; it is refused, naming the field and the file, as is a damaged one.
#[test]
fn a_crl_file_without_a_usable_crl_is_refused() {
    use rustls::pki_types::pem::PemObject;
    let s = Setup::new();
    let pem = s.dir.path().join("root.crl.pem");
    s.pki.root.crl(&pem, &[7]);
    let der = rustls::pki_types::CertificateRevocationListDer::from_pem_file(&pem).unwrap();
    let files = [
        ("empty.crl", Vec::new(), "holds no PEM CRL"),
        ("root.crl.der", der.to_vec(), "holds no PEM CRL"),
        (
            "cert.pem",
            std::fs::read(&s.pki.server.cert).unwrap(),
            "holds no PEM CRL",
        ),
        (
            "damaged.crl.pem",
            b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n".to_vec(),
            "",
        ),
    ];
    let client_ca = format!("client_ca = {:?}", s.pki.ca);
    for (name, bytes, says) in files {
        let file = s.dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        // Beside a good one: every file must hold one.
        let config = s.variant(
            &client_ca,
            &format!("{client_ca}\ncrl = [{pem:?}, {file:?}]"),
        );
        for out in [serve(&config), check(&config)] {
            let line = one_line_error(&out);
            assert!(line.contains("tls.crl"), "names the field: {line}");
            assert!(
                line.contains(file.to_str().unwrap()),
                "names the file: {line}"
            );
            assert!(line.contains(says), "{line}");
        }
    }
    let config = s.variant(&client_ca, &format!("{client_ca}\ncrl = [{pem:?}]"));
    checks(&config);
}

#[test]
fn dev_certs_writes_ten_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let out = run(&["dev-certs", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "admin-key.pem",
            "admin.pem",
            "ca-key.pem",
            "ca.pem",
            "server-key.pem",
            "server.pem",
            "team-a-key.pem",
            "team-a.pem",
            "team-b-key.pem",
            "team-b.pem"
        ]
    );
    for n in &names {
        let text = std::fs::read_to_string(out_dir.join(n)).unwrap();
        assert!(text.starts_with("-----BEGIN "), "{n} is not PEM");
    }
    let before = std::fs::read(out_dir.join("ca.pem")).unwrap();

    let out = run(&["dev-certs", "--out", out_dir.to_str().unwrap()]);
    let line = one_line_error(&out);
    assert!(
        line.contains(out_dir.to_str().unwrap()),
        "names the file: {line}"
    );
    assert!(line.contains("--force"), "says how to fix it: {line}");
    assert_eq!(
        std::fs::read(out_dir.join("ca.pem")).unwrap(),
        before,
        "overwrote ca.pem"
    );

    let out = run(&["dev-certs", "--out", out_dir.to_str().unwrap(), "--force"]);
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(
        std::fs::read(out_dir.join("ca.pem")).unwrap(),
        before,
        "--force replaced nothing"
    );

    // The files make a valid configuration.
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "[tls]\ncert = \"certs/server.pem\"\nkey = \"certs/server-key.pem\"\n\
         client_ca = \"certs/ca.pem\"\n[backend]\ndata_dir = \"data\"\n",
    )
    .unwrap();
    checks(&config);
}

/// SPEC §2: with the development CA in `tls.client_ca`, `serve` refuses a
/// non-loopback listener unless `--allow-dev-certs`, and `check` warns.
#[test]
fn dev_ca_guard() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert_eq!(
        run(&["dev-certs", "--out", certs.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"0.0.0.0:0\"\nadvertise_url = \"https://gate.example:2379\"\n\
         [tls]\ncert = \"certs/server.pem\"\nkey = \"certs/server-key.pem\"\nclient_ca = \"certs/ca.pem\"\n\
         [backend]\ndata_dir = \"data\"\n",
    )
    .unwrap();
    let line = one_line_error(&serve(&config));
    assert!(line.contains("development CA"), "{line}");
    assert!(line.contains("--allow-dev-certs"), "{line}");
    assert!(line.contains("keygate.toml"), "{line}");

    let out = check(&config);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("warning: tls.client_ca contains the development CA"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // With the flag it starts (and says so on stderr): stop it once it listens.
    let mut child = Command::new(keygate_bin())
        .args(["serve", "--allow-dev-certs", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut warned = false;
    let mut listening = false;
    for line in lines.by_ref().take(10) {
        let line = line.unwrap();
        warned |= line.contains("development CA");
        if line.contains("keygate listening") {
            listening = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        warned && listening,
        "warned {warned}, listening {listening}"
    );
}

#[test]
fn control_characters_in_an_error_stay_on_one_line() {
    let s = Setup::new();
    let path = s.variant(
        &format!("cert = {:?}", s.pki.server.cert),
        "cert = \"x\\ny\\u001b[31m\\u0000.pem\"",
    );
    let line = one_line_error(&check(&path));
    assert!(line.contains("tls.cert"), "{line:?}");
    assert!(line.contains(r"x\ny\u{1b}[31m\u{0}.pem"), "{line:?}");
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

/// Every field of the config, each set (SPEC §3).
fn full_config(s: &Setup) -> String {
    format!(
        "[server]\n\
         listen = \"127.0.0.1:1\"\n\
         advertise_url = \"https://127.0.0.1:1\"\n\
         ops_listen = \"127.0.0.1:2\"\n\
         max_connections = 100\n\
         max_connections_per_identity = 10\n\
         max_watches_per_identity = 10\n\
         max_streams_per_connection = 100\n\
         handshake_timeout = \"10s\"\n\
         request_timeout = \"1m30s\"\n\
         idle_timeout = \"120s\"\n\
         shutdown_timeout = \"500ms\"\n\
         max_body_bytes = 1572864\n\
         max_header_bytes = 16384\n\
         max_header_count = 100\n\
         \n\
         [tls]\n\
         cert = {:?}\n\
         key = {:?}\n\
         client_ca = {:?}\n\
         crl = []\n\
         min_version = \"1.2\"\n\
         \n\
         [backend]\n\
         kind = \"embedded\"\n\
         data_dir = \"data\"\n\
         \n\
         [log]\n\
         format = \"json\"\n\
         audit = true\n\
         \n\
         [roles.team-a]\n\
         read = [\"/team-a\"]\n\
         write = [\"/team-a\"]\n\
         \n\
         [roles.admin]\n\
         read = [\"/\"]\n\
         write = [\"/\"]\n\
         admin = true\n\
         \n\
         [[bind]]\n\
         cn = \"team-a-*\"\n\
         roles = [\"team-a\"]\n\
         \n\
         [[bind]]\n\
         uri = \"spiffe://example.org/ns/ops/*\"\n\
         ou = \"platform\"\n\
         roles = [\"admin\", \"team-a\"]\n",
        s.pki.server.cert, s.pki.server.key, s.pki.ca
    )
}

/// Values a user might put anywhere.
const ODD_VALUES: &[&str] = &[
    "\"\"",
    "\"5x\"",
    "\"-1s\"",
    "\"99999999999999999999h\"",
    "-1",
    "0",
    "1.5",
    "18446744073709551616",
    "true",
    "[]",
    "[1]",
    "{}",
    "{ a = 1 }",
    "\"/\"",
    "\"//x\"",
    "\"relative\"",
    "\"127.0.0.1:99999\"",
    "\"[::1]:2379\"",
    "\"0.0.0.0:2379\"",
    "\"http://x\"",
    "\"1.1\"",
    "\"upstream\"",
    "[\"https://10.0.0.1:2379\"]",
    "[\"/a\", \"/a\"]",
    "[\"no-slash\"]",
    "\"*\"",
    "\"\\u0000\"",
    "\"\\\"\"",
    "'single'",
    "\"\"\"multi\nline\"\"\"",
];

/// Random edits of a complete valid config: lines removed, repeated or
/// swapped, values replaced by odd ones, bytes changed. `check` either
/// accepts the result (exit 0, no panic) or refuses it with the error
/// contract: one line, exit 2. `KEYGATE_CONFIG_SEEDS=2,3` runs other seeds
/// (200 configs each).
#[test]
fn random_config_edits_get_one_line_errors() {
    let s = Setup::new();
    let base = full_config(&s);
    let out = check(&s.write("keygate.toml", &base));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the full config is valid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut accepted, mut refused) = (0, 0);
    for seed in seeds("KEYGATE_CONFIG_SEEDS", "1") {
        let mut rng = Rng::new(seed);
        let mut below = |n: usize| rng.below(n);
        for i in 0..200 {
            let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
            for _ in 0..1 + below(3) {
                let at = below(lines.len());
                match below(6) {
                    0 => {
                        lines.remove(at);
                    }
                    1 => {
                        let l = lines[at].clone();
                        lines.insert(at, l);
                    }
                    2 => {
                        let other = below(lines.len());
                        lines.swap(at, other);
                    }
                    3 | 4 => {
                        if let Some((k, _)) = lines[at].split_once(" = ") {
                            lines[at] = format!("{k} = {}", ODD_VALUES[below(ODD_VALUES.len())]);
                        }
                    }
                    _ => {
                        let mut b = lines[at].clone().into_bytes();
                        if !b.is_empty() {
                            let j = below(b.len());
                            b[j] = b"[]{}=\"'#., \\\x00\xff"[below(14)];
                        }
                        lines[at] = String::from_utf8_lossy(&b).into_owned();
                    }
                }
                if lines.is_empty() {
                    lines.push(String::new());
                }
            }
            let text = lines.join("\n") + "\n";
            let path = s.write("keygate.toml", &text);
            let out = check(&path);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("seed {seed} config {i}:\n{text}\nstderr: {stderr}");
            match out.status.code() {
                Some(0) => {
                    assert!(!stderr.contains("panicked"), "{what}");
                    accepted += 1;
                }
                Some(2) => {
                    let line = one_line_error(&out);
                    // It names the file or the field.
                    assert!(
                        [
                            "keygate.toml",
                            "server.",
                            "tls.",
                            "backend.",
                            "log.",
                            "roles",
                            "bind"
                        ]
                        .iter()
                        .any(|f| line.contains(f)),
                        "{what}"
                    );
                    assert!(!line.chars().any(char::is_control), "{what}");
                    refused += 1;
                }
                other => panic!("exit status {other:?}; {what}"),
            }
        }
    }
    assert!(
        accepted > 10 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}
