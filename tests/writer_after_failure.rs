//! After a failed commit (or a committer that panicked) the store refuses
//! writes for good; the writer thread must then sleep, even when a key's
//! expiry comes due (it can never be committed).

use std::sync::Arc;
use std::time::Duration;

use keygate::store::tree::Node;
use keygate::store::{now_nanos, Journal, Mutation, Store, WriteOp};

/// Commits the first batch, fails every one after.
struct FailsAfterFirst(u32);

impl Journal for FailsAfterFirst {
    fn commit(&mut self, _m: &[Mutation], _index: u64) -> std::io::Result<()> {
        self.0 += 1;
        if self.0 == 1 {
            Ok(())
        } else {
            Err(std::io::Error::other("disk gone"))
        }
    }
}

fn put(key: &str, expire: Option<i64>) -> WriteOp {
    WriteOp::Put {
        key: key.into(),
        value: "v".into(),
        dir: false,
        expire,
        refresh: false,
        prev_exist: None,
        prev_value: String::new(),
        prev_index: 0,
    }
}

/// An empty store that commits through `journal`.
fn start(journal: impl Journal + 'static) -> Store {
    Store::start(
        Arc::new(Node::dir(0, None)),
        0,
        Box::new(journal),
        Vec::new(),
    )
}

/// CPU time of this process's threads named `name`, in clock ticks.
fn thread_ticks(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    total
}

#[tokio::test]
async fn a_failed_store_does_not_spin_on_a_due_expiry() {
    let store = start(FailsAfterFirst(0));
    // Committed: a key that expires in 200 ms.
    let expire = now_nanos() + 200_000_000;
    store.write(put("/ttl", Some(expire))).await.unwrap();
    // Not committed: the store fails.
    let e = store.write(put("/x", None)).await.unwrap_err();
    assert_eq!(e.code, 300);
    assert_eq!(store.failure().as_deref(), Some("disk gone"));
    // The expiry is due from here on.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = thread_ticks("keygate-writer");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = thread_ticks("keygate-writer") - before;
    assert!(
        spent < 20,
        "the writer used {spent} ticks in 1 s while failed"
    );
    // Still failed, still answering.
    assert_eq!(store.write(put("/y", None)).await.unwrap_err().code, 300);
}

/// Commits the first batch, panics on the second.
struct PanicsOnSecond(u32);

impl Journal for PanicsOnSecond {
    fn commit(&mut self, _m: &[Mutation], _index: u64) -> std::io::Result<()> {
        self.0 += 1;
        assert!(self.0 == 1, "a journal bug");
        Ok(())
    }
}

#[tokio::test]
async fn a_committer_that_panics_refuses_writes_and_keeps_serving_reads() {
    let store = start(PanicsOnSecond(0));
    let within = |f| tokio::time::timeout(Duration::from_secs(5), f);
    within(store.write(put("/a", None)))
        .await
        .expect("answered")
        .unwrap();
    // The batch whose commit panicked is refused, not acknowledged.
    let e = within(store.write(put("/b", None)))
        .await
        .expect("answered")
        .unwrap_err();
    assert_eq!(e.code, 300);
    // From here on every write is refused with the reason, which the
    // readiness check reports.
    let cause = store.failure().expect("the store failed");
    assert!(cause.contains("committer"), "{cause}");
    for key in ["/c", "/d"] {
        let e = within(store.write(put(key, None)))
            .await
            .expect("answered")
            .unwrap_err();
        assert_eq!(e.code, 300);
        assert_eq!(e.cause.as_deref(), Some(cause.as_str()));
        assert_eq!(e.index, 1, "the last committed index");
    }
    // Reads see what was committed, and only that.
    let (body, index) = store.get("/a", false).unwrap();
    assert_eq!(index, 1);
    assert!(String::from_utf8(body).unwrap().contains("\"value\":\"v\""));
    assert_eq!(store.get("/b", false).unwrap_err().code, 100);
}

/// Commits every batch, but knows after the first that later commits
/// cannot be made durable (as after a failed directory sync).
struct BrokenAfterFirst(u32);

impl Journal for BrokenAfterFirst {
    fn commit(&mut self, _m: &[Mutation], _index: u64) -> std::io::Result<()> {
        self.0 += 1;
        assert_eq!(self.0, 1, "a commit after the journal said it is broken");
        Ok(())
    }

    fn broken(&self) -> Option<String> {
        (self.0 > 0).then(|| "cannot sync the data directory".to_string())
    }
}

#[tokio::test]
async fn a_journal_that_knows_it_is_broken_fails_the_store_at_once() {
    let store = start(BrokenAfterFirst(0));
    let (_, index) = store.write(put("/a", None)).await.unwrap();
    assert_eq!(index, 1);
    // Readiness fails before any other write tries the journal.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.failure().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not fail"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        store.failure().as_deref(),
        Some("cannot sync the data directory")
    );
    let e = store.write(put("/b", None)).await.unwrap_err();
    assert_eq!(
        (e.code, e.cause.as_deref(), e.index),
        (300, Some("cannot sync the data directory"), 1)
    );
    assert_eq!(store.get("/a", false).unwrap().1, 1);
    store.shutdown(Duration::from_secs(5));
}
