//! Real etcd v2 clients, unchanged, against `keygate serve` with client
//! certificates: Debian's `etcdctl` (ETCDCTL_API=2) and the Python
//! `python-etcd` library. Each test makes its own PKI and its own server.
//!
//! Both clients are required: when one is missing the test fails and says
//! to run `.ci/run`, which installs them.

mod common;

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{CertFiles, Client, Keygate, Pki};

/// What a finished client printed.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A server with a client certificate, and etcdctl pointed at it.
struct Etcdctl {
    kg: Keygate,
    client: CertFiles,
    /// The `--endpoints` value.
    endpoint: String,
}

impl Etcdctl {
    fn start(server_extra: &str) -> Etcdctl {
        let pki = Arc::new(Pki::new());
        let client = pki.client("etcdctl");
        let kg = Keygate::start(pki, server_extra);
        let endpoint = kg.url();
        Etcdctl {
            kg,
            client,
            endpoint,
        }
    }

    /// `etcdctl` with the v2 API, the endpoint and the client certificate.
    /// It syncs the endpoints from `/v2/members` first (no `--no-sync`).
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(etcdctl());
        c.env("ETCDCTL_API", "2")
            .arg("--endpoints")
            .arg(&self.endpoint)
            .arg("--ca-file")
            .arg(&self.kg.pki.ca)
            .arg("--cert-file")
            .arg(&self.client.cert)
            .arg("--key-file")
            .arg(&self.client.key)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| spawn_failed(e));
        finish(
            &mut child,
            Duration::from_secs(30),
            &format!("etcdctl {args:?}"),
        )
    }

    /// Runs `args`; it must succeed and print exactly `stdout`.
    fn ok(&self, args: &[&str], stdout: &str) {
        let out = self.run(args);
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (0, stdout, ""),
            "etcdctl {args:?}"
        );
    }

    /// Runs `args`; it must fail with `code`, print nothing on stdout and
    /// exactly `stderr` on stderr.
    fn fails(&self, args: &[&str], code: i32, stderr: &str) {
        let out = self.run(args);
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (code, "", stderr),
            "etcdctl {args:?}"
        );
    }

    /// The server's current watcher count (`/v2/stats/store`).
    fn watchers(&self) -> u64 {
        let (addr, ca, client) = (self.kg.addr(), self.kg.pki.ca.clone(), self.client.clone());
        block_on(async move {
            let mut c = Client::h1(&addr, &ca, &client).await;
            let r = c.req("GET", "/v2/stats/store", None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["watchers"].as_u64().unwrap()
        })
    }

    /// Waits until the server holds `n` watchers.
    fn wait_watchers(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.watchers() != n {
            assert!(
                Instant::now() < deadline,
                "the server never held {n} watcher(s)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The etcdctl to run: `KEYGATE_TEST_ETCDCTL`, else `etcdctl` from PATH.
/// It must be the v2-capable etcdctl of Debian's `etcd-client` package;
/// every test that needs it fails, naming `.ci/run`, when it is not there.
fn etcdctl() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let path = PathBuf::from(
            std::env::var_os("KEYGATE_TEST_ETCDCTL").unwrap_or_else(|| "etcdctl".into()),
        );
        let out = Command::new(&path)
            .env("ETCDCTL_API", "2")
            .arg("--version")
            .output()
            .map_err(|e| missing_etcdctl_message(&path, &e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains("API version: 2") {
            Ok(path)
        } else {
            Err(missing_etcdctl_message(
                &path,
                &format!("ETCDCTL_API=2 --version printed {text:?}, not \"API version: 2\""),
            ))
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

fn missing_etcdctl_message(path: &Path, why: &str) -> String {
    format!(
        "cannot use {} ({why}): these tests need the v2-capable etcdctl of Debian's \
         etcd-client package: run .ci/run, which installs it, or point \
         KEYGATE_TEST_ETCDCTL at an etcdctl 3.x binary",
        path.display()
    )
}

fn spawn_failed(e: std::io::Error) -> ! {
    panic!("{}", missing_etcdctl_message(&etcdctl(), &e.to_string()))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Reads a pipe to its end on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let mut pipe = pipe.unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    rx
}

/// Waits up to `limit` for `child` to exit (killing it after that).
fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` (spawned with piped stdout and stderr) and collects its output.
fn finish(child: &mut Child, limit: Duration, what: &str) -> Out {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_exit(child, limit, what);
    Out {
        code: status.code().unwrap_or(-1),
        stdout: stdout.recv().unwrap(),
        stderr: stderr.recv().unwrap(),
    }
}

#[test]
fn etcdctl_keys() {
    let e = Etcdctl::start("");
    e.ok(&["set", "/foo", "bar"], "bar\n"); // index 1
    e.ok(&["get", "/foo"], "bar\n");
    e.fails(
        &["mk", "/foo", "other"],
        4,
        "Error:  105: Key already exists (/foo) [1]\n",
    );
    e.ok(&["get", "/foo"], "bar\n");
    e.ok(&["mk", "/new", "v"], "v\n"); // 2
    e.ok(&["mkdir", "/dir"], ""); // 3
    e.fails(
        &["mkdir", "/dir"],
        4,
        "Error:  105: Key already exists (/dir) [3]\n",
    );
    e.ok(&["set", "/dir/a", "1"], "1\n"); // 4
    e.ok(&["set", "/dir/sub/b", "2"], "2\n"); // 5
    e.fails(&["get", "/dir"], 1, "/dir: is a directory\n");
    e.ok(&["ls", "--sort"], "/dir\n/foo\n/new\n");
    e.ok(
        &["ls", "--sort", "--recursive"],
        "/dir\n/dir/a\n/dir/sub\n/dir/sub/b\n/foo\n/new\n",
    );
    e.ok(
        &["ls", "--sort", "--recursive", "-p", "/dir"],
        "/dir/a\n/dir/sub/\n/dir/sub/b\n",
    );
    e.ok(&["ls", "/dir/sub"], "/dir/sub/b\n");
    e.fails(
        &["ls", "/nowhere"],
        4,
        "Error:  100: Key not found (/nowhere) [5]\n",
    );

    e.ok(&["update", "/foo", "baz"], "baz\n"); // 6
    e.ok(&["get", "/foo"], "baz\n");
    e.fails(
        &["update", "/nope", "z"],
        4,
        "Error:  100: Key not found (/nope) [6]\n",
    );
    e.fails(
        &["get", "/nope"],
        4,
        "Error:  100: Key not found (/nope) [6]\n",
    );

    // Compare-and-swap and compare-and-delete.
    e.fails(
        &["set", "--swap-with-value", "wrong", "/foo", "qux"],
        4,
        "Error:  101: Compare failed ([wrong != baz]) [6]\n",
    );
    e.ok(&["set", "--swap-with-value", "baz", "/foo", "qux"], "qux\n"); // 7
    e.fails(
        &["rm", "--with-value", "baz", "/foo"],
        4,
        "Error:  101: Compare failed ([baz != qux]) [7]\n",
    );
    e.ok(&["get", "/foo"], "qux\n");

    e.ok(&["rm", "/foo"], "PrevNode.Value: qux\n"); // 8
    e.fails(
        &["get", "/foo"],
        4,
        "Error:  100: Key not found (/foo) [8]\n",
    );
    e.fails(
        &["rm", "/foo"],
        4,
        "Error:  100: Key not found (/foo) [8]\n",
    );
    e.fails(
        &["rmdir", "/dir/sub"],
        4,
        "Error:  108: Directory not empty (/dir/sub) [8]\n",
    );
    e.fails(&["rm", "/dir"], 4, "Error:  102: Not a file (/dir) [8]\n");
    e.ok(&["rm", "/dir/sub/b"], "PrevNode.Value: 2\n"); // 9
    e.ok(&["rmdir", "/dir/sub"], ""); // 10
    e.ok(&["ls", "--sort", "--recursive"], "/dir\n/dir/a\n/new\n");
    e.ok(&["rm", "--recursive", "/dir"], ""); // 11
    e.ok(&["ls", "--sort", "--recursive"], "/new\n");
    e.ok(
        &["-o", "json", "get", "/new"],
        "{\"action\":\"get\",\"node\":{\"key\":\"/new\",\"value\":\"v\",\"nodes\":null,\
         \"createdIndex\":2,\"modifiedIndex\":2},\"prevNode\":null}\n",
    );
    e.ok(
        &["-o", "extended", "get", "/new"],
        "Key: /new\nCreated-Index: 2\nModified-Index: 2\nTTL: 0\nIndex: 11\n\nv\n",
    );
}

#[test]
fn etcdctl_ttl() {
    let e = Etcdctl::start("");
    e.ok(&["set", "--ttl", "60", "/t", "v"], "v\n"); // index 1

    // The TTL left is rounded up: 60 until a whole second has gone by.
    let out = e.run(&["-o", "extended", "get", "/t"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let want = |ttl: u32| {
        format!("Key: /t\nCreated-Index: 1\nModified-Index: 1\nTTL: {ttl}\nIndex: 1\n\nv\n")
    };
    assert!(
        out.stdout == want(60) || out.stdout == want(59),
        "{:?}",
        out.stdout
    );
    let out = e.run(&["-o", "json", "get", "/t"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let mut v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let ttl = v["node"]["ttl"].as_i64().unwrap();
    assert!(ttl == 59 || ttl == 60, "{v}");
    v["node"]["ttl"] = 60.into();
    common::strip_times(&mut v);
    assert_eq!(
        v,
        serde_json::json!({"action":"get","node":{"key":"/t","value":"v","nodes":null,
            "expiration":"<time>","ttl":60,"createdIndex":1,"modifiedIndex":1},"prevNode":null})
    );
    // A key without --ttl has none; `update --ttl` gives it one.
    e.ok(&["set", "/k", "w"], "w\n"); // 2
    e.ok(&["update", "--ttl", "1", "/k", "w2"], "w2\n"); // 3
    e.ok(&["mkdir", "--ttl", "1", "/d"], ""); // 4
    e.ok(&["ls", "--sort"], "/d\n/k\n/t\n");
    std::thread::sleep(Duration::from_millis(2200));
    // Both expired (indexes 5 and 6).
    e.fails(&["get", "/k"], 4, "Error:  100: Key not found (/k) [6]\n");
    e.ok(&["ls", "--sort"], "/t\n");
    e.ok(&["get", "/t"], "v\n");
}

#[test]
fn etcdctl_watch() {
    let e = Etcdctl::start("");
    e.ok(&["set", "/w", "before"], "before\n");

    // `watch` waits for the next change, prints it and exits.
    let mut watch = e
        .command(&["watch", "/w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| spawn_failed(err));
    e.wait_watchers(1);
    assert!(
        watch.try_wait().unwrap().is_none(),
        "watch exited before the change"
    );
    e.ok(&["set", "/w", "hello"], "hello\n");
    let out = finish(&mut watch, Duration::from_secs(10), "etcdctl watch");
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "hello\n", ""),
        "etcdctl watch /w"
    );
    e.wait_watchers(0);

    // `watch --after-index` answers from the history at once.
    e.ok(&["watch", "--after-index", "1", "/w"], "hello\n");

    // `watch --forever --recursive` prints every change under a directory
    // until it is stopped.
    let mut forever = e
        .command(&["watch", "--forever", "--recursive", "/dir"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| spawn_failed(err));
    let lines = read_lines(forever.stdout.take());
    let stderr = drain(forever.stderr.take());
    e.wait_watchers(1);
    e.ok(&["set", "/dir/a", "1"], "1\n");
    e.ok(&["set", "/dir/sub/b", "2"], "2\n");
    e.ok(&["rm", "/dir/a"], "PrevNode.Value: 1\n");
    e.ok(&["set", "/elsewhere", "x"], "x\n");
    e.ok(&["mk", "/dir/c", "3"], "3\n");
    let want = [
        "[set] /dir/a",
        "1",
        "[set] /dir/sub/b",
        "2",
        "[delete] /dir/a",
        "PrevNode.Value: 1",
        "[create] /dir/c",
        "3",
    ];
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => panic!("watch --forever printed only {got:?}"),
        }
    }
    assert!(
        forever.try_wait().unwrap().is_none(),
        "watch --forever exited"
    );
    forever.kill().unwrap();
    forever.wait().unwrap();
    got.extend(lines.iter());
    assert_eq!(got, want);
    assert_eq!(stderr.recv().unwrap(), "");
}

/// Sends each line of a pipe as it comes.
fn read_lines(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let pipe = pipe.unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn etcdctl_syncs_endpoints_from_members() {
    // Given `localhost`, etcdctl learns keygate's advertised URL from
    // /v2/members and sends the request there.
    let mut e = Etcdctl::start("");
    let port = e.kg.port;
    e.endpoint = format!("https://localhost:{port}");
    e.ok(&["set", "/synced", "yes"], "yes\n");
    let out = e.run(&["--debug", "get", "/synced"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "yes\n");
    assert_eq!(
        out.stderr,
        format!(
            "start to sync cluster using endpoints(https://localhost:{port})\n\
             cURL Command: curl -X GET https://localhost:{port}/v2/members\n\
             got endpoints(https://127.0.0.1:{port}) after sync\n\
             Cluster-Endpoints: https://127.0.0.1:{port}\n\
             cURL Command: curl -X GET https://127.0.0.1:{port}/v2/keys/synced?quorum=false&recursive=false&sorted=false\n"
        )
    );

    // The advertised URL is really used: advertise a dead port and etcdctl
    // fails after the sync, while --no-sync still reaches the server.
    // Bound but not listening: connections to it are refused, and no
    // other server (another test's keygate, listening on port 0) can be
    // given it while the test runs.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = reserved.local_addr().unwrap().port();
    let e = Etcdctl::start(&format!("advertise_url = \"https://127.0.0.1:{dead}\""));
    let out = e.run(&["get", "/x"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("Error:  client: etcd cluster is unavailable or misconfigured")
            && out.stderr.contains(&format!("127.0.0.1:{dead}")),
        "{:?}",
        out.stderr
    );
    e.fails(
        &["--no-sync", "get", "/x"],
        4,
        "Error:  100: Key not found (/x) [0]\n",
    );
}

/// The Python with python-etcd: `KEYGATE_TEST_PYTHON`, else the repo's
/// `.venv`, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYGATE_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

#[test]
fn python_etcd() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import etcd, urllib3; print(urllib3.__version__)"])
        .output();
    match &probe {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "{} cannot import python-etcd ({}): run .ci/run, which creates .venv with \
             tests/clients/requirements.txt, or set KEYGATE_TEST_PYTHON to a Python that has it",
            py.display(),
            match &probe {
                Ok(o) => String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_string(),
                Err(e) => e.to_string(),
            }
        ),
    }

    let pki = Arc::new(Pki::new());
    let client = pki.client("python");
    let kg = Keygate::start(pki.clone(), "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_etcd_client.py");
    let mut child = Command::new(&py)
        .arg(&script)
        .arg("127.0.0.1")
        .arg(kg.port.to_string())
        .arg(&pki.ca)
        .arg(&client.cert)
        .arg(&client.key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(&mut child, Duration::from_secs(60), "python_etcd_client.py");
    let url = kg.url();
    let want = format!(
        "ok write: set /py/key=hello newKey=True
ok read: get /py/key=hello
ok contains: /py/key in client, /py/nokey not in client
ok read missing: EtcdKeyNotFound(Key not found : /py/nokey)
ok create existing: EtcdAlreadyExist(Key already exists : /py/key)
ok write ttl: ttl=60 expiration set
ok read ttl: 59 <= ttl <= 60
ok refresh: ttl=300 value=short-lived
ok ttl expiry: /py/gone expired after 1 s
ok mkdir: set /py/dir dir=True
ok read recursive: /py/dir/a=1 /py/dir/sub/b=2 /py/dir/sub/c=3
ok subtree: /py/dir/ /py/dir/a /py/dir/sub/ /py/dir/sub/b /py/dir/sub/c
ok rmdir not empty: EtcdDirNotEmpty(Directory not empty : /py/dir)
ok delete dir as file: EtcdNotFile(Not a file : /py/dir)
ok delete recursive: delete /py/dir, /py/dir/sub/b is gone
ok test_and_set: compareAndSwap one -> two
ok test_and_set failure: EtcdCompareFailed(Compare failed : [one != two])
ok write prevValue: two -> three
ok update: prevIndex CAS three -> four
ok prevIndex failure: EtcdCompareFailed
ok compare-and-delete: wrong prevValue refused, right one deleted
ok append: create /py/queue/<20 digits>, increasing
ok append order: job1 job2
ok watch: set /py/watched=after
ok watch index: waitIndex in history answers after
ok watch timeout: EtcdWatchTimedOut after 1 s
ok machines: {url}
ok members: keygate {url}
ok leader: keygate {url}
ok version: etcdserver 3.4.0 etcdcluster 3.4.0
ok stats: keygate StateLeader
all checks passed
"
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, want.as_str()),
        "python-etcd client failed; stderr:\n{}",
        out.stderr
    );
}
