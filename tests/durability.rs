//! Durability of the embedded store: SIGKILL during concurrent writes,
//! damaged and truncated journals, TTLs and watches across restarts, and a
//! journal from an incompatible version.
//!
//! The rules: every acknowledged write survives a crash, in index order;
//! damage to the journal either refuses to start (exit 2, one stderr line
//! naming the file, no panic) or loses nothing acknowledged, except a torn
//! tail, which is cut with a warning; the index never goes back; the
//! cluster id stays.
//!
//! Randomness comes from a seed printed at the start of each test; set
//! `KEYGATE_TEST_SEED` to replay one.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CertFiles, Client, Keygate, Pki, Refused};
use http_body_util::BodyExt;
use serde_json::Value;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("KEYGATE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: KEYGATE_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A leaf of the store as the tests compare it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Leaf {
    value: String,
    modified: u64,
    ttl: bool,
}

type State = BTreeMap<String, Leaf>;

/// An acknowledged write.
#[derive(Clone, Debug)]
struct Ack {
    index: u64,
    action: String,
    key: String,
    /// The value written (`None` for a delete).
    value: Option<String>,
    ttl: bool,
}

/// A write sent without an answer when keygate was killed.
#[derive(Clone, Debug)]
enum Pending {
    Put {
        key: String,
        value: String,
        ttl: bool,
    },
    Delete {
        key: String,
    },
    Post {
        dir: String,
        value: String,
    },
}

/// A response, or why there was none.
struct Answer {
    status: u16,
    index: Option<u64>,
    cluster: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends a request and reads the whole answer; an I/O failure or a
/// timeout is `Err` (a request that may or may not have been applied).
async fn try_req(
    c: &mut Client,
    method: &str,
    target: &str,
    body: Option<&str>,
) -> Result<Answer, String> {
    let fut = async {
        let resp = c.send(method, target, body, &[]).await?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let index = header("x-etcd-index").map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("bad X-Etcd-Index {v:?}"))
        });
        let cluster = header("x-etcd-cluster-id");
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            index,
            cluster,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{method} {target}: no answer in {REQUEST_TIMEOUT:?}"
        )),
    }
}

/// Like [`try_req`], for a keygate that must answer.
async fn req(c: &mut Client, method: &str, target: &str, body: Option<&str>) -> Answer {
    try_req(c, method, target, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

async fn connect(kg: &Keygate, cert: &CertFiles) -> Client {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        Client::try_connect(&kg.addr(), &kg.pki.ca, Some(cert), false),
    )
    .await
    .expect("connect timed out")
    .expect("connect")
}

fn flatten(node: &Value, out: &mut State) {
    if node["dir"].as_bool() == Some(true) {
        if let Some(nodes) = node["nodes"].as_array() {
            for n in nodes {
                flatten(n, out);
            }
        }
        return;
    }
    let key = node["key"].as_str().expect("node key").to_string();
    let leaf = Leaf {
        value: node["value"].as_str().expect("node value").to_string(),
        modified: node["modifiedIndex"].as_u64().expect("modifiedIndex"),
        ttl: node.get("ttl").is_some() || node.get("expiration").is_some(),
    };
    out.insert(key, leaf);
}

/// The whole store (its leaves) and the X-Etcd-Index of the read.
async fn fetch_state(c: &mut Client) -> (State, u64, String) {
    let a = req(c, "GET", "/v2/keys/?recursive=true", None).await;
    assert_eq!(a.status, 200, "GET /: {}", a.body);
    let mut state = State::new();
    flatten(&a.json()["node"], &mut state);
    (
        state,
        a.index.expect("X-Etcd-Index on a GET"),
        a.cluster.expect("X-Etcd-Cluster-Id on a GET"),
    )
}

/// `base` with the acknowledged writes applied in index order.
fn apply(base: &State, acks: &[Ack]) -> State {
    let mut sorted: Vec<&Ack> = acks.iter().collect();
    sorted.sort_by_key(|a| a.index);
    for w in sorted.windows(2) {
        assert!(
            w[0].index < w[1].index,
            "two acknowledged writes with index {}: {:?} and {:?}",
            w[0].index,
            w[0],
            w[1]
        );
    }
    let mut s = base.clone();
    for a in sorted {
        match &a.value {
            Some(v) if a.action != "delete" => {
                s.insert(
                    a.key.clone(),
                    Leaf {
                        value: v.clone(),
                        modified: a.index,
                        ttl: a.ttl,
                    },
                );
            }
            _ => {
                s.remove(&a.key);
            }
        }
    }
    s
}

/// Checks an acknowledged answer and makes its [`Ack`].
fn ack_of(a: &Answer, what: &str, action: &str, value: Option<&str>, ttl: bool) -> Ack {
    assert!(
        a.status == 200 || a.status == 201,
        "{what}: status {}: {}",
        a.status,
        a.body
    );
    let j = a.json();
    assert_eq!(j["action"], action, "{what}: {}", a.body);
    let index = j["node"]["modifiedIndex"].as_u64().expect("modifiedIndex");
    let header = a.index.expect("X-Etcd-Index on a write");
    assert!(
        header >= index,
        "{what}: X-Etcd-Index {header} < modifiedIndex {index}"
    );
    if let Some(v) = value {
        assert_eq!(j["node"]["value"], v, "{what}: {}", a.body);
    }
    Ack {
        index,
        action: action.to_string(),
        key: j["node"]["key"].as_str().expect("node key").to_string(),
        value: value.map(str::to_string),
        ttl,
    }
}

/// What one writer task saw.
struct TaskLog {
    acks: Vec<Ack>,
    pending: Option<Pending>,
    error: String,
}

/// One writer: a mix of set, create, CAS, delete, in-order POST and set
/// with a TTL under `/w/<task>/`, one request at a time, until keygate
/// stops answering.
async fn writer(
    mut c: Client,
    task: usize,
    cycle: usize,
    mut mine: BTreeMap<String, String>,
    seed: u64,
) -> TaskLog {
    let mut rng = Rng(seed | 1);
    let mut acks = Vec::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let value = format!("c{cycle}t{task}n{n}");
        let pick = rng.range(0, 6);
        let existing = if mine.is_empty() {
            None
        } else {
            let i = rng.range(0, mine.len() as u64) as usize;
            mine.iter().nth(i).map(|(k, v)| (k.clone(), v.clone()))
        };
        let (method, target, body, action, pending) = match (pick, existing) {
            (1, _) => {
                let key = format!("/w/{task}/c{cycle}-{n}");
                (
                    "PUT",
                    key.clone(),
                    format!("value={value}&prevExist=false"),
                    "create",
                    Pending::Put {
                        key,
                        value: value.clone(),
                        ttl: false,
                    },
                )
            }
            (2, Some((key, cur))) => (
                "PUT",
                key.clone(),
                format!("value={value}&prevValue={cur}"),
                "compareAndSwap",
                Pending::Put {
                    key,
                    value: value.clone(),
                    ttl: false,
                },
            ),
            (3, Some((key, _))) => (
                "DELETE",
                key.clone(),
                String::new(),
                "delete",
                Pending::Delete { key },
            ),
            (4, _) => {
                let dir = format!("/w/{task}/q");
                (
                    "POST",
                    dir.clone(),
                    format!("value={value}"),
                    "create",
                    Pending::Post {
                        dir,
                        value: value.clone(),
                    },
                )
            }
            (5, _) => {
                let key = format!("/w/{task}/k{}", rng.range(0, 8));
                (
                    "PUT",
                    key.clone(),
                    format!("value={value}&ttl=600"),
                    "set",
                    Pending::Put {
                        key,
                        value: value.clone(),
                        ttl: true,
                    },
                )
            }
            _ => {
                let key = format!("/w/{task}/k{}", rng.range(0, 8));
                (
                    "PUT",
                    key.clone(),
                    format!("value={value}"),
                    "set",
                    Pending::Put {
                        key,
                        value: value.clone(),
                        ttl: false,
                    },
                )
            }
        };
        let uri = format!("/v2/keys{target}");
        let body = (!body.is_empty()).then_some(body);
        let a = match try_req(&mut c, method, &uri, body.as_deref()).await {
            Ok(a) => a,
            Err(error) => {
                return TaskLog {
                    acks,
                    pending: Some(pending),
                    error,
                }
            }
        };
        let what = format!("{method} {uri} {body:?}");
        let ack = match &pending {
            Pending::Put { key, value, ttl } => {
                let ack = ack_of(&a, &what, action, Some(value), *ttl);
                assert_eq!(&ack.key, key, "{what}");
                mine.insert(key.clone(), value.clone());
                ack
            }
            Pending::Delete { key } => {
                let ack = ack_of(&a, &what, action, None, false);
                assert_eq!(&ack.key, key, "{what}");
                mine.remove(key);
                ack
            }
            Pending::Post { dir, value } => {
                let ack = ack_of(&a, &what, action, Some(value), false);
                assert!(
                    ack.key.starts_with(&format!("{dir}/")),
                    "{what}: {}",
                    a.body
                );
                mine.insert(ack.key.clone(), value.clone());
                ack
            }
        };
        acks.push(ack);
    }
}

/// Whether `actual` (for a key whose expected leaf is `expected`) is the
/// effect of the in-flight write `p` after all acknowledged ones.
fn in_flight_explains(
    p: &Pending,
    key: &str,
    expected: Option<&Leaf>,
    actual: Option<&Leaf>,
    after: u64,
) -> bool {
    match (p, actual) {
        (Pending::Put { key: k, value, ttl }, Some(a)) => {
            k == key && &a.value == value && a.ttl == *ttl && a.modified > after
        }
        (Pending::Delete { key: k }, None) => k == key,
        (Pending::Post { dir, value }, Some(a)) => {
            expected.is_none()
                && key.starts_with(&format!("{dir}/"))
                && &a.value == value
                && a.modified > after
        }
        _ => false,
    }
}

fn dump_log(kg: &Keygate) -> String {
    kg.log.lock().unwrap().join("\n")
}

/// 8 writers for 200–1500 ms, SIGKILL, restart on the same directory:
/// every acknowledged write is there, the index does not go back, the
/// cluster id stays. At least 20 cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_concurrent_writes_loses_no_acknowledged_write() {
    // KEYGATE_CRASH_CYCLES=200 runs the long version by hand.
    let cycles: usize = std::env::var("KEYGATE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    const TASKS: usize = 8;
    let began = Instant::now();
    let mut rng = Rng::from_env("crash");
    let pki = Arc::new(Pki::new());
    let cert = pki.client("writer");
    let mut kg = Keygate::start(pki.clone(), "");
    // Compact all the time, so that kills land in every step of it too.
    let text = std::fs::read_to_string(&kg.config).unwrap();
    std::fs::write(
        &kg.config,
        text.replace(
            "data_dir = \"data\"",
            "data_dir = \"data\"\ncompact_bytes = 8192",
        ),
    )
    .unwrap();
    kg = kg.restart();
    let mut c = connect(&kg, &cert).await;
    let (mut base, mut last_index, cluster) = fetch_state(&mut c).await;
    drop(c);
    let mut total_acks = 0usize;
    let mut snapshots = std::collections::BTreeSet::new();
    let mut in_flight_applied = 0usize;
    for cycle in 0..cycles {
        let run_for = Duration::from_millis(rng.range(200, 1501));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let prefix = format!("/w/{task}/");
            let mine: BTreeMap<String, String> = base
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, l)| (k.clone(), l.value.clone()))
                .collect();
            let client = connect(&kg, &cert).await;
            handles.push(tokio::spawn(writer(client, task, cycle, mine, rng.next())));
        }
        tokio::time::sleep(run_for).await;
        kg.kill();
        let mut acks = Vec::new();
        let mut pending = Vec::new();
        for h in handles {
            let log = h.await.expect("writer task panicked");
            assert!(
                log.pending.is_some(),
                "a writer stopped without an error: {}",
                log.error
            );
            let after = log.acks.iter().map(|a| a.index).max().unwrap_or(0);
            acks.extend(log.acks);
            pending.extend(log.pending.map(|p| (p, after)));
        }
        total_acks += acks.len();
        let highest = acks.iter().map(|a| a.index).max().unwrap_or(0);
        let expected = apply(&base, &acks);

        if let Ok(snap) = std::fs::read(kg.data_dir().join("keygate.snap")) {
            snapshots.insert(crc32fast::hash(&snap));
        }
        kg = kg.restart();
        let mut c = connect(&kg, &cert).await;
        let (actual, index, cid) = fetch_state(&mut c).await;
        drop(c);
        assert_eq!(cid, cluster, "cycle {cycle}: the cluster id changed");
        assert!(
            index >= highest,
            "cycle {cycle}: X-Etcd-Index {index} after restart < highest acknowledged index {highest}"
        );
        assert!(
            index >= last_index,
            "cycle {cycle}: the index went back from {last_index} to {index}"
        );
        let mut keys: Vec<&String> = expected.keys().chain(actual.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (e, a) = (expected.get(key), actual.get(key));
            if e == a {
                continue;
            }
            let explained = pending
                .iter()
                .any(|(p, after)| in_flight_explains(p, key, e, a, *after));
            assert!(
                explained,
                "cycle {cycle}: {key}: expected {e:?} (from {} acknowledged writes up to index {highest}), found {a:?}; in flight at the kill: {pending:?}\nkeygate log:\n{}",
                acks.len(),
                dump_log(&kg)
            );
            in_flight_applied += 1;
        }
        base = actual;
        last_index = index;
    }
    eprintln!(
        "crash: {cycles} kill cycles, {total_acks} acknowledged writes, {in_flight_applied} in-flight writes found applied, {} distinct snapshots seen at kills, final index {last_index}, {:?}",
        snapshots.len(),
        began.elapsed()
    );
    // Compaction is due when the journal outgrows the snapshot, so it gets
    // rarer as the store grows; it must still have happened again and again.
    assert!(
        snapshots.len() >= (cycles / 2).min(10),
        "the journal was compacted into only {} distinct snapshots in {cycles} cycles",
        snapshots.len()
    );
}

/// A fresh copy of `kg`'s directory (config and data), to damage.
fn copy_dir(src: &Path) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("keygate.toml"), dir.path().join("keygate.toml")).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for e in std::fs::read_dir(src.join("data")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("data").join(e.file_name())).unwrap();
    }
    let config = dir.path().join("keygate.toml");
    (dir, config)
}

/// A refusal must be exit 2 with one stderr line naming the journal, no
/// panic, and the journal untouched.
fn assert_refusal(r: &Refused, what: &str, before: &[u8]) {
    assert_eq!(
        r.status.code(),
        Some(2),
        "{what}: exit {} (want 2): {:?}",
        r.status,
        r.stderr
    );
    assert_eq!(
        r.stderr.len(),
        1,
        "{what}: want exactly one stderr line: {:?}",
        r.stderr
    );
    assert!(
        r.stderr[0].contains("keygate.log"),
        "{what}: the line does not name keygate.log: {:?}",
        r.stderr
    );
    assert!(
        !r.stderr[0].contains("panicked"),
        "{what}: panic: {:?}",
        r.stderr
    );
    let after = std::fs::read(r.dir.path().join("data/keygate.log")).unwrap();
    assert!(
        after == before,
        "{what}: keygate refused but changed the journal ({} -> {} bytes)",
        before.len(),
        after.len()
    );
}

/// (start, end, index) of each record of a journal, parsed independently
/// of keygate; the records must cover the file exactly, but for the zeros
/// a running journal keeps ahead of its records.
fn records(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    assert_eq!(&bytes[..16], b"KEYGATE-LOG-V2\n\0");
    let mut out = Vec::new();
    let mut at = 16;
    while at < bytes.len() && bytes[at..].iter().any(|b| *b != 0) {
        assert_eq!(&bytes[at..at + 4], b"KGR1", "record at {at}");
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let payload = &bytes[at + 16..at + 16 + len];
        let v: Value = serde_json::from_slice(payload).unwrap();
        let end = at + 16 + len;
        out.push((at, end, v["index"].as_u64().unwrap()));
        at = end;
    }
    assert!(bytes[at..].iter().all(|b| *b == 0));
    out
}

/// Writes a history (all acknowledged, several writers so that batches
/// hold several writes), SIGKILLs keygate, then damages fresh copies of
/// its data directory: one flipped byte per run, or a truncation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_journal_refuses_or_keeps_every_acknowledged_write() {
    const FLIPS: usize = 40;
    const CUTS: usize = 40;
    let began = Instant::now();
    let mut rng = Rng::from_env("corruption");
    let pki = Arc::new(Pki::new());
    let cert = pki.client("writer");
    let mut kg = Keygate::start(pki.clone(), "");
    // Four writers, 25 writes each, then one more with an answer read in
    // full: every write is acknowledged before the kill.
    let mut handles = Vec::new();
    for task in 0..4 {
        let mut c = connect(&kg, &cert).await;
        let seed = rng.next();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(seed | 1);
            let mut acks = Vec::new();
            for n in 0..25 {
                let key = format!("/w/{task}/k{}", rng.range(0, 4));
                let value = format!("t{task}n{n}");
                let (method, target, body, action, ttl) = match n % 5 {
                    1 => (
                        "POST",
                        format!("/w/{task}/q"),
                        format!("value={value}"),
                        "create",
                        false,
                    ),
                    2 => ("PUT", key, format!("value={value}&ttl=600"), "set", true),
                    3 => ("DELETE", key, String::new(), "delete", false),
                    4 => (
                        "PUT",
                        format!("/w/{task}/c{n}"),
                        format!("value={value}&prevExist=false"),
                        "create",
                        false,
                    ),
                    _ => ("PUT", key, format!("value={value}"), "set", false),
                };
                let uri = format!("/v2/keys{target}");
                let body = (!body.is_empty()).then_some(body);
                let a = req(&mut c, method, &uri, body.as_deref()).await;
                if method == "DELETE" && a.status == 404 {
                    continue;
                }
                let v = (method != "DELETE").then_some(value.as_str());
                acks.push(ack_of(&a, &format!("{method} {uri}"), action, v, ttl));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for h in handles {
        acks.extend(h.await.unwrap());
    }
    acks.sort_by_key(|a| a.index);
    let highest = acks.last().unwrap().index;
    let full = apply(&State::new(), &acks);
    let state_at = |r: u64| {
        let upto: Vec<Ack> = acks.iter().filter(|a| a.index <= r).cloned().collect();
        apply(&State::new(), &upto)
    };
    let mut c = connect(&kg, &cert).await;
    let (now, _, cluster) = fetch_state(&mut c).await;
    drop(c);
    assert_eq!(now, full, "the state before the kill");
    kg.kill();

    let src = kg.dir.path().to_path_buf();
    let file = std::fs::read(src.join("data/keygate.log")).unwrap();
    let recs = records(&file);
    assert_eq!(recs.last().unwrap().2, highest);
    // The records only: damage to the zeros after them is not what this
    // test is about.
    let journal = file[..recs.last().unwrap().1].to_vec();
    eprintln!(
        "corruption: {} acknowledged writes in {} records, {} bytes ({} in the file)",
        acks.len(),
        recs.len(),
        journal.len(),
        file.len()
    );

    // (a) one flipped byte per run, inside the records region.
    let (mut refused, mut started) = (0, 0);
    for run in 0..FLIPS {
        let offset = rng.range(16, journal.len() as u64) as usize;
        let mask = rng.range(1, 256) as u8;
        let mut bytes = journal.clone();
        bytes[offset] ^= mask;
        let (dir, config) = copy_dir(&src);
        std::fs::write(dir.path().join("data/keygate.log"), &bytes).unwrap();
        let what = format!("flip run {run}: byte {offset} ^= {mask:#04x}");
        match Keygate::try_start_with(pki.clone(), dir, config) {
            Err(r) => {
                assert_refusal(&r, &what, &bytes);
                refused += 1;
            }
            Ok(kg) => {
                let mut c = connect(&kg, &cert).await;
                let (state, index, cid) = fetch_state(&mut c).await;
                assert_eq!(cid, cluster, "{what}");
                assert!(index >= highest, "{what}: index {index} < {highest}");
                assert!(
                    state == full,
                    "{what}: keygate started with acknowledged writes changed or lost:\nwant {full:?}\ngot  {state:?}\nlog:\n{}",
                    dump_log(&kg)
                );
                started += 1;
            }
        }
    }
    eprintln!("corruption: {FLIPS} flips: {refused} refused, {started} started intact");

    // (b) truncations: random offsets, record boundaries, the header.
    let mut cuts: Vec<usize> = (0..CUTS)
        .map(|_| rng.range(16, journal.len() as u64) as usize)
        .collect();
    let boundary = recs[rng.range(0, recs.len() as u64) as usize].0;
    cuts.extend([0, 1, 8, 12, 15, 16, boundary, boundary + 3, boundary + 16]);
    let (mut refused, mut started, mut torn) = (0, 0, 0);
    for (run, &cut) in cuts.iter().enumerate() {
        let bytes = journal[..cut].to_vec();
        let (dir, config) = copy_dir(&src);
        std::fs::write(dir.path().join("data/keygate.log"), &bytes).unwrap();
        let what = format!("truncation run {run}: {cut} of {} bytes", journal.len());
        // What the file holds in full: the records that end at or before
        // the cut.
        let complete: Vec<&(usize, usize, u64)> = recs.iter().filter(|r| r.1 <= cut).collect();
        let good_end = complete.last().map(|r| r.1).unwrap_or(16);
        let good_index = complete.last().map(|r| r.2).unwrap_or(0);
        match Keygate::try_start_with(pki.clone(), dir, config) {
            Err(r) => {
                assert_refusal(&r, &what, &bytes);
                if (12..16).contains(&cut) {
                    assert!(
                        !r.stderr[0].contains("incompatible"),
                        "{what}: a header cut short is reported as another version: {:?}",
                        r.stderr
                    );
                }
                refused += 1;
            }
            Ok(kg) => {
                let mut c = connect(&kg, &cert).await;
                let (state, index, cid) = fetch_state(&mut c).await;
                assert_eq!(cid, cluster, "{what}");
                let log = dump_log(&kg);
                assert!(
                    acks.iter().any(|a| a.index == index) || index == 0,
                    "{what}: index {index} after the restart is not the index of an acknowledged write"
                );
                assert!(
                    state == state_at(index),
                    "{what}: the state is not the acknowledged history up to index {index}:\nwant {:?}\ngot  {state:?}\nlog:\n{log}",
                    state_at(index)
                );
                if cut >= 16 {
                    assert_eq!(
                        index, good_index,
                        "{what}: complete records (up to byte {good_end}, index {good_index}) were dropped: index {index}\nlog:\n{log}"
                    );
                }
                let warned = log
                    .lines()
                    .any(|l| l.contains("WARN") && l.contains("torn tail"));
                if cut > good_end {
                    assert!(
                        warned,
                        "{what}: {} bytes cut without a WARN:\n{log}",
                        cut - good_end
                    );
                    torn += 1;
                } else {
                    assert!(!warned, "{what}: nothing to cut, yet a WARN:\n{log}");
                }
                let on_disk = std::fs::read(kg.data_dir().join("keygate.log")).unwrap();
                if cut >= 16 {
                    assert_eq!(
                        on_disk.len(),
                        good_end,
                        "{what}: the torn tail was not cut to the last complete record"
                    );
                }
                started += 1;
            }
        }
    }
    eprintln!(
        "corruption: {} truncations: {refused} refused, {started} started ({torn} with a torn tail cut); {:?}",
        cuts.len(),
        began.elapsed()
    );
}

/// Watches `/k` from `wait_index` with a short timeout: a watch that would
/// wait silently fails the test.
async fn watch_once(c: &mut Client, key: &str, wait_index: u64) -> Answer {
    let uri = format!("/v2/keys{key}?wait=true&waitIndex={wait_index}");
    match tokio::time::timeout(Duration::from_secs(5), try_req(c, "GET", &uri, None)).await {
        Ok(r) => r.unwrap_or_else(|e| panic!("GET {uri}: {e}")),
        Err(_) => panic!("GET {uri}: no answer in 5 s (a silent wait)"),
    }
}

/// A TTL key outlives keygate's death only until its expiry: after a
/// restart it expires at once, with an `expire` event a watcher from the
/// index before the kill gets at once; older history answers 401; the
/// index never goes back; the cluster id stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_and_watch_across_restarts() {
    let began = Instant::now();
    let pki = Arc::new(Pki::new());
    let cert = pki.client("writer");
    let kg = Keygate::start(pki.clone(), "");
    let mut c = connect(&kg, &cert).await;
    let a = req(&mut c, "PUT", "/v2/keys/keep", Some("value=kept")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = req(&mut c, "PUT", "/v2/keys/k", Some("value=v&ttl=2")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let before = a.index.unwrap();
    let cluster = a.cluster.clone().unwrap();
    drop(c);

    let mut kg = kg;
    kg.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kg = kg.restart();
    let mut c = connect(&kg, &cert).await;
    let w = watch_once(&mut c, "/k", before + 1).await;
    assert_eq!(w.status, 200, "{}", w.body);
    let j = w.json();
    assert_eq!(j["action"], "expire", "{}", w.body);
    assert_eq!(j["node"]["key"], "/k", "{}", w.body);
    assert_eq!(j["node"]["modifiedIndex"], before + 1, "{}", w.body);
    assert_eq!(j["prevNode"]["value"], "v", "{}", w.body);
    assert_eq!(w.cluster.as_deref(), Some(cluster.as_str()));

    let g = req(&mut c, "GET", "/v2/keys/k", None).await;
    assert_eq!(g.status, 404, "{}", g.body);
    assert_eq!(g.json()["errorCode"], 100, "{}", g.body);
    let g = req(&mut c, "GET", "/v2/keys/keep", None).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["node"]["value"], "kept");
    let after_expire = g.index.unwrap();
    assert!(
        after_expire > before,
        "index {after_expire} after the expiry, {before} before the kill"
    );
    assert_eq!(g.cluster.as_deref(), Some(cluster.as_str()));

    // History at or below the recovered index is gone: 401 at once.
    for wi in [1, before] {
        let w = watch_once(&mut c, "/k", wi).await;
        assert_eq!(w.status, 400, "waitIndex={wi}: {}", w.body);
        assert_eq!(w.json()["errorCode"], 401, "waitIndex={wi}: {}", w.body);
    }
    drop(c);

    // Again: the expiry is durable, the index does not go back.
    let kg = kg.restart();
    let mut c = connect(&kg, &cert).await;
    let g = req(&mut c, "GET", "/v2/keys/k", None).await;
    assert_eq!(g.status, 404, "the expired key came back: {}", g.body);
    let index = g.index.unwrap();
    assert!(
        index >= after_expire,
        "the index went back from {after_expire} to {index}"
    );
    assert_eq!(g.cluster.as_deref(), Some(cluster.as_str()));
    for wi in [1, before, after_expire] {
        let w = watch_once(&mut c, "/k", wi).await;
        assert_eq!(w.json()["errorCode"], 401, "waitIndex={wi}: {}", w.body);
    }
    // A watch past the index waits, then sees the next write.
    let mut c2 = connect(&kg, &cert).await;
    let next = index + 1;
    let waiter = tokio::spawn(async move { watch_once(&mut c2, "/k", next).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = req(&mut c, "PUT", "/v2/keys/k", Some("value=again")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let w = waiter.await.unwrap();
    assert_eq!(w.json()["action"], "set", "{}", w.body);
    assert_eq!(w.json()["node"]["modifiedIndex"], next, "{}", w.body);
    eprintln!("ttl/watch restarts: {:?}", began.elapsed());
}

/// A journal whose header names another format version: exit 2, one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_of_an_incompatible_version_refuses_to_start() {
    let pki = Arc::new(Pki::new());
    let cert = pki.client("writer");
    let mut kg = Keygate::start(pki.clone(), "");
    let mut c = connect(&kg, &cert).await;
    let a = req(&mut c, "PUT", "/v2/keys/a", Some("value=1")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    drop(c);
    kg.kill();
    let path = kg.data_dir().join("keygate.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..16].copy_from_slice(b"KEYGATE-LOG-V9\n\0");
    std::fs::write(&path, &bytes).unwrap();
    let r = match kg.try_restart() {
        Ok(kg) => panic!(
            "keygate started on a journal of another version:\n{}",
            dump_log(&kg)
        ),
        Err(r) => r,
    };
    assert_refusal(&r, "version 9 header", &bytes);
    assert!(
        r.stderr[0].contains("incompatible") && r.stderr[0].contains("version"),
        "the line does not say incompatible version: {:?}",
        r.stderr
    );
}
