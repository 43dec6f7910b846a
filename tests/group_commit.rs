//! Group commit: writes that arrive while the journal syncs wait for the
//! next sync, together. Nothing may run ahead of the journal: no answer,
//! no read, no index before the sync that makes it durable; a failed sync
//! fails every write it carried, and none of them becomes visible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keygate::store::tree::Node;
use keygate::store::{Journal, Mutation, Store, WriteOp};

/// A slow disk: each commit takes `delay`; `begun` is the index of the
/// last commit begun, `durable` the index the last successful commit made
/// durable. Commits from the `fail_from`th on fail.
struct SlowJournal {
    delay: Duration,
    begun: Arc<AtomicU64>,
    durable: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    fail_from: u64,
}

impl Journal for SlowJournal {
    fn commit(&mut self, _m: &[Mutation], index: u64) -> std::io::Result<()> {
        assert!(
            index > self.durable.load(Ordering::SeqCst),
            "batches committed out of order"
        );
        self.begun.store(index, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.fail_from {
            return Err(std::io::Error::other("disk gone"));
        }
        self.durable.store(index, Ordering::SeqCst);
        Ok(())
    }
}

fn put(key: &str) -> WriteOp {
    WriteOp::Put {
        key: key.into(),
        value: "v".into(),
        dir: false,
        expire: None,
        refresh: false,
        prev_exist: None,
        prev_value: String::new(),
        prev_index: 0,
    }
}

fn start(delay_ms: u64, fail_from: u64) -> (Store, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (store, _, durable, syncs) = start_seen(delay_ms, fail_from);
    (store, durable, syncs)
}

/// [`start`], with the journal's `begun` too.
fn start_seen(
    delay_ms: u64,
    fail_from: u64,
) -> (Store, Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let begun = Arc::new(AtomicU64::new(0));
    let durable = Arc::new(AtomicU64::new(0));
    let syncs = Arc::new(AtomicU64::new(0));
    let store = Store::start(
        Arc::new(Node::dir(0, None)),
        0,
        Box::new(SlowJournal {
            delay: Duration::from_millis(delay_ms),
            begun: begun.clone(),
            durable: durable.clone(),
            syncs: syncs.clone(),
            fail_from,
        }),
        Vec::new(),
    );
    (store, begun, durable, syncs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_reads_never_run_ahead_of_the_journal() {
    let (store, durable, syncs) = start(5, u64::MAX);
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (store, durable, watching) = (store.clone(), durable.clone(), watching.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while watching.load(Ordering::SeqCst) {
                let index = store.snapshot().index;
                // Read the published index first: durability only grows.
                assert!(
                    index <= durable.load(Ordering::SeqCst),
                    "index {index} published before it was durable"
                );
                assert!(index >= seen, "the published index went back");
                seen = index;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, durable) = (store.clone(), durable.clone());
        tasks.push(tokio::spawn(async move {
            let (event, index) = store.write(put(&format!("/k{i}"))).await.unwrap();
            assert!(
                index <= durable.load(Ordering::SeqCst),
                "write answered at {index} before it was durable"
            );
            // The writer's own read sees its write.
            let (body, read_index) = store.get(&format!("/k{i}"), false).unwrap();
            assert!(read_index >= index);
            assert!(String::from_utf8(body).unwrap().contains("\"value\":\"v\""));
            event.node.modified
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        indexes.push(t.await.unwrap());
    }
    watching.store(false, Ordering::SeqCst);
    reader.join().unwrap();
    indexes.sort_unstable();
    assert_eq!(indexes, (1..=200).collect::<Vec<u64>>());
    assert_eq!(store.snapshot().index, 200);
    assert_eq!(durable.load(Ordering::SeqCst), 200);
    let syncs = syncs.load(Ordering::SeqCst);
    assert!(
        syncs < 60,
        "{syncs} syncs for 200 concurrent writes: batches were not grouped"
    );
    let c = store.commit_stats();
    assert_eq!((c.commits, c.mutations), (syncs, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_every_batch_it_carried() {
    // The first sync (slow) succeeds, the second fails.
    let (store, durable, syncs) = start(100, 2);
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.write(put("/first")).await })
    };
    // While the first sync runs, more writes arrive: they wait for the
    // next sync.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut later = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        later.push(tokio::spawn(async move {
            store.write(put(&format!("/later{i}"))).await
        }));
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(first.await.unwrap().unwrap().1, 1);
    for t in later {
        let e = t.await.unwrap().unwrap_err();
        assert_eq!(e.code, 300);
        assert_eq!(e.cause.as_deref(), Some("disk gone"));
        assert_eq!(e.index, 1);
    }
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
    assert_eq!(durable.load(Ordering::SeqCst), 1);
    // Nothing of the failed batches is visible.
    assert_eq!(store.snapshot().index, 1);
    for i in 0..50 {
        assert_eq!(
            store.get(&format!("/later{i}"), false).unwrap_err().code,
            100
        );
    }
    assert_eq!(store.failure().as_deref(), Some("disk gone"));
    // And the store refuses writes from then on, without syncing again.
    let e = store.write(put("/after")).await.unwrap_err();
    assert_eq!((e.code, e.index), (300, 1));
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
    store.shutdown(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_comes_from_a_batch_that_did_not_commit() {
    // The first sync (slow) succeeds, the second fails. The writer applies
    // a batch while the one before it syncs: what it decided on top of the
    // failed batch, refusals included, must not be told.
    let (store, durable, syncs) = start(100, 2);
    let spawn = |op: WriteOp| {
        let store = store.clone();
        tokio::spawn(async move { store.write(op).await })
    };
    let first = spawn(put("/first"));
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Applied while /first syncs; its own sync fails.
    let second = spawn(put("/b"));
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Applied on top of /b: a create of /b would be refused (105), and a
    // write of /c would succeed.
    let create = spawn(WriteOp::Put {
        key: "/b".into(),
        value: "v".into(),
        dir: false,
        expire: None,
        refresh: false,
        prev_exist: Some(false),
        prev_value: String::new(),
        prev_index: 0,
    });
    let third = spawn(put("/c"));
    assert_eq!(first.await.unwrap().unwrap().1, 1);
    for t in [second, create, third] {
        let e = t.await.unwrap().unwrap_err();
        assert_eq!(
            (e.code, e.cause.as_deref(), e.index),
            (300, Some("disk gone"), 1)
        );
    }
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
    assert_eq!(durable.load(Ordering::SeqCst), 1);
    assert_eq!(store.snapshot().index, 1);
    assert_eq!(store.get("/b", false).unwrap_err().code, 100);
    assert_eq!(store.get("/c", false).unwrap_err().code, 100);
    store.shutdown(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_reaches_a_watch_while_a_reload_changes_grants() {
    // An unfiltered watch (its client read everything) is decided again
    // after the grants change; a commit's events that came in between
    // would reach it unfiltered. They wait for the whole change.
    let (store, _, _) = start(0, u64::MAX);
    let allowed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keep: keygate::store::Keep = {
        let allowed = allowed.clone();
        Arc::new(move || allowed.load(Ordering::SeqCst))
    };
    let (started, _) = store.watch("/", true, true, 0, None, keep).unwrap();
    let keygate::store::Started::Stream(mut events, _guard) = started else {
        panic!("a stream watch without history is registered");
    };
    let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ended = store.redecide_watches_after(|| {
        allowed.store(false, Ordering::SeqCst);
        let (store, done) = (store.clone(), answered.clone());
        tokio::spawn(async move {
            store.write(put("/secret")).await.unwrap();
            done.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !answered.load(Ordering::SeqCst),
            "a write was committed and answered while the grants changed"
        );
    });
    assert_eq!(ended, 1);
    // The watch ended without the event.
    let next = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the ended watch's stream closes");
    assert!(next.is_none(), "the watch got {:?}", next.map(|e| e.json()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !answered.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.shutdown(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_added_to_the_watched_ones_are_in_every_removal_published_after() {
    // A directory's removal records the watched paths below it (the
    // clients that read only those learn of it from them). A reload adds
    // the paths clients may newly read before their grants change: the
    // removals applied without them must all be published by then.
    let (store, begun, durable, _) = start_seen(300, u64::MAX);
    let removal = || WriteOp::Delete {
        key: "/a".into(),
        dir: true,
        recursive: true,
        prev_value: String::new(),
        prev_index: 0,
    };
    store.write(put("/a/b/c")).await.unwrap();
    // Applied at once, committed 300 ms later.
    let before = tokio::spawn({
        let store = store.clone();
        async move { store.write(removal()).await.unwrap() }
    });
    while begun.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let added = tokio::task::spawn_blocking({
        let store = store.clone();
        move || {
            store.add_watched(vec!["/a/b".into()], Duration::from_secs(10));
            durable.load(Ordering::SeqCst)
        }
    })
    .await
    .unwrap();
    let (event, index) = before.await.unwrap();
    assert!(
        added >= index,
        "add_watched returned at index {added}, before the removal at {index} was published"
    );
    assert!(event.removed_paths.is_empty(), "{:?}", event.removed_paths);
    // A removal applied after records the new path.
    store.write(put("/a/b/c")).await.unwrap();
    let (event, _) = store.write(removal()).await.unwrap();
    assert_eq!(event.removed_paths, vec!["/a/b".to_string()]);
    store.shutdown(Duration::from_secs(5));
}
