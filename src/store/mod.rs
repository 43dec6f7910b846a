//! The embedded etcd v2 store.
//!
//! Every mutation is one [`WriteOp`] sent to a single writer thread, which
//! applies operations in index order to a private next version of the tree
//! and hands each batch to the committer thread. The committer writes the
//! batch to the [`Journal`] (the commit point: durability attaches there),
//! and only then publishes the new tree, the index, the watch events and
//! the answers. Readers load the published tree without locks, so nothing
//! uncommitted is ever visible.
//!
//! The two threads form a pipeline: while the journal makes one batch
//! durable, the writer applies the next on top of it (one batch ahead at
//! most). A batch is answered only after every batch before it committed;
//! once a commit fails, the committer fails every batch after it too, and
//! the writer refuses writes from the next batch on.

pub mod dirmap;
pub mod event;
pub mod once;
pub mod persist;
pub mod tree;
pub mod watch;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use crate::v2::error::{self as code, EtcdError};
use event::{Action, Event, NodeRepr};
use tree::{components, lookup, Kind, Lookup, Name, Node};
pub use watch::{Hub, Interest, Keep, Started, WatchGuard};

/// Unix time in nanoseconds, from the wall clock (expirations are wall
/// times, as in etcd).
pub fn now_nanos() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Expirations before 2000-01-01 mean "permanent", as in etcd.
const MIN_EXPIRE: i64 = 946_684_800_000_000_000;

/// A committed version of the store.
pub struct Snapshot {
    /// The root directory.
    pub root: Arc<Node>,
    /// The index of the last committed write.
    pub index: u64,
}

/// A write, as the keys API asks for it.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// PUT.
    Put {
        /// Canonical key.
        key: String,
        /// `value`.
        value: String,
        /// `dir=true`.
        dir: bool,
        /// Absolute expiration from `ttl`, Unix nanoseconds.
        expire: Option<i64>,
        /// `refresh=true`.
        refresh: bool,
        /// `prevExist`.
        prev_exist: Option<bool>,
        /// `prevValue` (empty: none).
        prev_value: String,
        /// `prevIndex` (0: none).
        prev_index: u64,
    },
    /// POST: create an in-order key below `key`.
    Post {
        /// Canonical key of the parent.
        key: String,
        /// `value`.
        value: String,
        /// `dir=true`.
        dir: bool,
        /// Absolute expiration.
        expire: Option<i64>,
    },
    /// DELETE.
    Delete {
        /// Canonical key.
        key: String,
        /// `dir=true`.
        dir: bool,
        /// `recursive=true`.
        recursive: bool,
        /// `prevValue` (empty: none).
        prev_value: String,
        /// `prevIndex` (0: none).
        prev_index: u64,
    },
}

impl WriteOp {
    /// At most what the write adds to its batch's journal record: its key
    /// and value, each character escaped at worst as `\u00XX`, and the
    /// record's fields around them.
    fn record_bytes(&self) -> usize {
        let (key, value) = match self {
            WriteOp::Put { key, value, .. } | WriteOp::Post { key, value, .. } => {
                (key.len(), value.len())
            }
            WriteOp::Delete { key, .. } => (key.len(), 0),
        };
        // A POST's key gains its 20-digit name.
        6 * (key + 21 + value) + 256
    }
}

/// The answer to a committed write: the event and the store index after it.
pub type WriteResult = Result<(Arc<Event>, u64), EtcdError>;

/// One change to the tree, as the journal records it and recovery
/// replays it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mutation {
    /// A new node at `key` (replacing a key there); missing parent
    /// directories are created with index `created`.
    Put {
        /// Canonical key.
        key: String,
        /// createdIndex.
        created: u64,
        /// modifiedIndex.
        modified: u64,
        /// Absolute expiration, Unix ns.
        expiration: Option<i64>,
        /// The value; `None` for a directory.
        value: Option<Arc<str>>,
    },
    /// A change to the node at `key` in place (children kept).
    Touch {
        /// Canonical key.
        key: String,
        /// A new value (keys only).
        value: Option<Arc<str>>,
        /// modifiedIndex after the change.
        modified: u64,
        /// Absolute expiration after the change.
        expiration: Option<i64>,
    },
    /// The node at `key` and everything below it removed.
    Remove {
        /// Canonical key.
        key: String,
    },
}

/// Applies a mutation to a tree (recovery; the writer applies the same
/// changes as it evaluates operations).
pub fn apply_mutation(root: &mut Arc<Node>, m: &Mutation) {
    match m {
        Mutation::Put {
            key,
            created,
            modified,
            expiration,
            value,
        } => {
            let (parent, name) = split_parent(key);
            let mut node = match value {
                Some(v) => Node::value(*created, v.clone(), *expiration),
                None => Node::dir(*created, *expiration),
            };
            node.modified = *modified;
            make_dirs(root, parent, *created).insert(Name::new(name), Arc::new(node));
        }
        Mutation::Touch {
            key,
            value,
            modified,
            expiration,
        } => {
            let node = node_mut(root, key);
            if let Some(v) = value {
                node.kind = Kind::Value(v.clone());
            }
            node.modified = *modified;
            node.expiration = *expiration;
        }
        Mutation::Remove { key } => remove_node(root, key),
    }
}

/// Where committed batches go before they become visible.
pub trait Journal: Send {
    /// Makes the batch's mutations, and the store index after them,
    /// durable. An error fails the whole batch, and the store refuses
    /// writes from then on.
    fn commit(&mut self, mutations: &[Mutation], index: u64) -> std::io::Result<()>;

    /// Called after each successful commit, once its answers are sent,
    /// with the tree and index it produced (compaction's hook).
    fn committed(&mut self, _root: &Arc<Node>, _index: u64) {}

    /// Called once when the store stops.
    fn close(&mut self, _root: &Arc<Node>, _index: u64) {}

    /// Why the journal can no longer make commits durable, once it knows
    /// before a commit fails (asked after each commit): the store then
    /// refuses writes, and readiness fails, at once.
    fn broken(&self) -> Option<String> {
        None
    }
}

/// Keeps nothing: the store lives in memory only.
pub struct MemoryJournal;

impl Journal for MemoryJournal {
    fn commit(&mut self, _mutations: &[Mutation], _index: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// etcd's store statistics.
#[derive(Default)]
pub struct Stats {
    counters: [AtomicU64; 15],
}

/// Names of the store statistics, in etcd's order.
pub const STAT_NAMES: [&str; 15] = [
    "getsSuccess",
    "getsFail",
    "setsSuccess",
    "setsFail",
    "deleteSuccess",
    "deleteFail",
    "updateSuccess",
    "updateFail",
    "createSuccess",
    "createFail",
    "compareAndSwapSuccess",
    "compareAndSwapFail",
    "compareAndDeleteSuccess",
    "compareAndDeleteFail",
    "expireCount",
];

impl Stats {
    fn bump(&self, i: usize) {
        self.counters[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The current values, in [`STAT_NAMES`] order.
    pub fn values(&self) -> [u64; 15] {
        std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed))
    }
}

struct Shared {
    snapshot: ArcSwap<Snapshot>,
    hub: Arc<Mutex<Hub>>,
    stats: Stats,
    /// Why the store refuses writes (a failed commit).
    failure: Mutex<Option<String>>,
    commits: AtomicU64,
    committed_mutations: AtomicU64,
    commit_micros: AtomicU64,
}

/// Counters of the durable commits.
#[derive(Clone, Copy, Debug, Default)]
pub struct CommitStats {
    /// Commits made durable.
    pub commits: u64,
    /// Mutations in them.
    pub mutations: u64,
    /// Time spent committing, µs.
    pub micros: u64,
}

impl Shared {
    fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            mutations: self.committed_mutations.load(Ordering::Relaxed),
            micros: self.commit_micros.load(Ordering::Relaxed),
        }
    }
}

enum Command {
    Write(WriteOp, oneshot::Sender<WriteResult>),
    /// Replaces the watched paths.
    SetWatched(Vec<String>),
    /// Adds watched paths; answers once every batch applied before is
    /// published.
    AddWatched(Vec<String>, mpsc::Sender<()>),
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// Run first by the writer thread, when set (see [`set_writer_setup`]).
static WRITER_SETUP: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets a function that every writer thread started from now on runs
/// first; the binary sets the thread's scheduling policy there (the
/// library does not call the system directly). Only the first call counts.
pub fn set_writer_setup(setup: fn()) {
    let _ = WRITER_SETUP.set(setup);
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
}

impl Store {
    /// An empty in-memory store.
    pub fn memory() -> Store {
        Store::start(
            Arc::new(Node::dir(0, None)),
            0,
            Box::new(MemoryJournal),
            Vec::new(),
        )
    }

    /// Starts the writer over a recovered tree. `watched` are paths (the
    /// read prefixes of the policy) whose existence a directory removal
    /// records on its event, so that a watch can later tell whether the
    /// directory was in its client's view.
    pub fn start(
        root: Arc<Node>,
        index: u64,
        journal: Box<dyn Journal>,
        watched: Vec<String>,
    ) -> Store {
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(Snapshot {
                root: root.clone(),
                index,
            }),
            hub: Arc::new(Mutex::new(Hub::new(index))),
            stats: Stats::default(),
            failure: Mutex::new(None),
            commits: AtomicU64::new(0),
            committed_mutations: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        // A rendezvous: the writer waits with its next batch until the
        // committer is done with the last, so it runs one batch ahead at
        // most, and the writes arriving meanwhile join the batch after.
        let (to_commit, commits) = mpsc::sync_channel(0);
        let committer = Committer {
            shared: shared.clone(),
            root: root.clone(),
            index,
            journal,
            failed: None,
            runtime: tokio::runtime::Handle::try_current().ok(),
        };
        let writer = Writer {
            shared: shared.clone(),
            root,
            index,
            ttls: BTreeSet::new(),
            failed: None,
            watched: watched.into_iter().collect(),
            log: Vec::new(),
            to_commit,
        };
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .stack_size(tree::STACK_BYTES)
                .name(name.into())
                .spawn(run)
                .map(|_| ())
                .unwrap_or_else(|e| panic!("cannot start the store's {name} thread: {e}"));
        };
        spawn("keygate-commit", Box::new(move || committer.run(commits)));
        spawn(
            "keygate-writer",
            Box::new(move || {
                if let Some(setup) = WRITER_SETUP.get() {
                    setup();
                }
                writer.run(rx)
            }),
        );
        Store { shared, tx }
    }

    /// The latest committed version.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.shared.snapshot.load()
    }

    /// Statistics.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Why the store refuses writes, after a failed commit.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Counters of the durable commits.
    pub fn commit_stats(&self) -> CommitStats {
        self.shared.commit_stats()
    }

    /// Number of registered watchers.
    pub fn watcher_count(&self) -> usize {
        watch::lock(&self.shared.hub).watcher_count()
    }

    /// Answers a GET: the JSON body and the index it reflects.
    pub fn get(&self, key: &str, recursive: bool) -> Result<(Vec<u8>, u64), EtcdError> {
        let snap = self.snapshot();
        let res = match lookup(&snap.root, key) {
            Lookup::Found(node) => {
                let mut out = Vec::with_capacity(256);
                // The clock matters only to TTLs: a key without one (the
                // common GET) is written without reading it.
                let now = if node.is_dir() || node.expiration.is_some() {
                    now_nanos()
                } else {
                    0
                };
                event::render_get(&mut out, key, node, recursive, now);
                Ok((out, snap.index))
            }
            Lookup::Missing(cause) => Err(EtcdError::new(code::KEY_NOT_FOUND, cause, snap.index)),
            Lookup::NotDir(cause) => Err(EtcdError::new(code::NOT_DIR, cause, snap.index)),
        };
        self.shared.stats.bump(if res.is_ok() { 0 } else { 1 });
        res
    }

    /// Answers a GET of a directory above a client's view, as if the store
    /// held only the view. `Err(index)` when the node is not in the view.
    pub fn get_view(
        &self,
        key: &str,
        recursive: bool,
        trie: &event::ViewTrie,
    ) -> Result<(Vec<u8>, u64), u64> {
        let snap = self.snapshot();
        match lookup(&snap.root, key) {
            Lookup::Found(node) if node.is_dir() && trie.in_view(node) => {
                let mut out = Vec::with_capacity(256);
                event::render_view(&mut out, key, node, trie, recursive, now_nanos());
                self.shared.stats.bump(0);
                Ok((out, snap.index))
            }
            _ => {
                self.shared.stats.bump(1);
                Err(snap.index)
            }
        }
    }

    /// The first component of `key` outside the view that `trie` (built
    /// from the root) describes: the cause of a 100 answered from a view.
    pub fn view_missing_cause(&self, key: &str, trie: &event::ViewTrie) -> (String, u64) {
        let snap = self.snapshot();
        let comps: Vec<&str> = components(key).collect();
        let depth = trie.depth_in_view(&snap.root, &comps);
        let mut cause = String::new();
        for c in comps.iter().take(depth + 1) {
            cause.push('/');
            cause.push_str(c);
        }
        if cause.is_empty() {
            cause.push('/');
        }
        (cause, snap.index)
    }

    /// Applies a write; answers once it is committed and published.
    pub async fn write(&self, op: WriteOp) -> WriteResult {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Write(op, tx)).is_err() {
            return Err(stopped());
        }
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Starts a watch. `Err` is etcd's 401 (history cleared).
    pub fn watch(
        &self,
        key: &str,
        recursive: bool,
        stream: bool,
        since: u64,
        interest: Option<Interest>,
        keep: Keep,
    ) -> Result<(Started, u64), EtcdError> {
        Hub::watch(
            &self.shared.hub,
            key,
            recursive,
            stream,
            since,
            interest,
            keep,
        )
        .map_err(|(start, current)| {
            EtcdError::new(
                code::EVENT_INDEX_CLEARED,
                format!("the requested history has been cleared [{start}/{since}]"),
                current,
            )
        })
    }

    /// Runs `change` (the clients' grants changing, at a reload), then
    /// decides every watch again, with no commit's events published in
    /// between. Returns how many watches ended.
    pub fn redecide_watches_after(&self, change: impl FnOnce()) -> usize {
        let mut hub = watch::lock(&self.shared.hub);
        change();
        hub.redecide()
    }

    /// Replaces the watched paths (the policy's read prefixes) whose
    /// existence a directory removal records. Returns at once: the paths
    /// it drops must no longer be readable by anyone (see
    /// [`Store::add_watched`]).
    pub fn set_watched(&self, watched: Vec<String>) {
        let _ = self.tx.send(Command::SetWatched(watched));
    }

    /// Adds watched paths, and returns once every batch applied without
    /// them is published (or after `timeout`): a removal published from
    /// then on records the new paths below it. A reload adds the paths a
    /// client may newly read before its grants change, so that no removal
    /// reaches that client without them. False when `timeout` passed
    /// first.
    pub fn add_watched(&self, watched: Vec<String>, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Command::AddWatched(watched, tx)).is_err() {
            // Stopped: nothing will be published.
            return true;
        }
        !matches!(
            rx.recv_timeout(timeout),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }

    /// Stops the writer after the writes already queued, and waits (up to
    /// `timeout`) until it has closed the journal.
    pub fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

/// Answers writes refused after a failed commit: the commit's error, at the
/// last committed index.
fn refuse(replies: impl Iterator<Item = oneshot::Sender<WriteResult>>, cause: &str, index: u64) {
    for reply in replies {
        let _ = reply.send(Err(EtcdError::new(code::RAFT_INTERNAL, cause, index)));
    }
}

/// Why writes are refused after the committer thread stopped (panicked).
pub const COMMITTER_GONE: &str =
    "the store's committer thread stopped (it panicked: see the log); writes are refused until a restart";

impl Shared {
    /// Why writes are refused, once they are.
    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refuses writes from now on, for `cause` (the first cause stays).
    fn fail(&self, cause: &str) {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| cause.to_string());
    }
}

/// Held while the committer commits a batch: if that panics, the store
/// refuses writes (and says why) rather than answer each one "shutting
/// down".
struct CommitterAlive<'a>(&'a Shared);

impl Drop for CommitterAlive<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the store's committer thread panicked: refusing writes from now on");
            self.0.fail(COMMITTER_GONE);
        }
    }
}

fn stopped() -> EtcdError {
    EtcdError::new(code::RAFT_INTERNAL, "store is shutting down", 0)
}

struct Writer {
    shared: Arc<Shared>,
    /// The working version: what the batches handed to the committer and
    /// this one applied (the batch before may not be committed yet).
    root: Arc<Node>,
    index: u64,
    /// (expiration, key, createdIndex) of nodes with a TTL; stale entries
    /// are skipped when they come due.
    ttls: BTreeSet<(i64, String, u64)>,
    failed: Option<String>,
    watched: BTreeSet<String>,
    /// The mutations of the batch being evaluated.
    log: Vec<Mutation>,
    to_commit: mpsc::SyncSender<ToCommit>,
}

/// A batch the writer applied, on its way through the journal.
struct Batch {
    mutations: Vec<Mutation>,
    /// The store index after the batch, and the tree it produced.
    index: u64,
    root: Arc<Node>,
    events: Vec<Arc<Event>>,
    stat_marks: Vec<usize>,
    answers: Vec<(oneshot::Sender<WriteResult>, WriteResult)>,
}

enum ToCommit {
    Batch(Batch),
    /// Answer once the batches before are published.
    Marker(mpsc::Sender<()>),
    /// Close the journal, then answer.
    Close(mpsc::Sender<()>),
}

/// Owns the journal: commits batches in order, then publishes them.
struct Committer {
    shared: Arc<Shared>,
    /// The last committed version.
    root: Arc<Node>,
    index: u64,
    journal: Box<dyn Journal>,
    failed: Option<String>,
    /// Where parked watches' answers are written (inline without one).
    runtime: Option<tokio::runtime::Handle>,
}

const MAX_BATCH: usize = 4096;
/// A batch stops growing once its journal record may hold this much: a
/// record's length is 32 bits, and many large values queued during one
/// commit would otherwise outgrow it (and fail the commit, and with it
/// every later write).
const MAX_BATCH_RECORD_BYTES: usize = if cfg!(test) { 1 << 20 } else { 512 << 20 };

/// The writes queued now, from `first` on, up to a batch's limits; and
/// the stop, if one came.
type Gathered = (
    Vec<(WriteOp, oneshot::Sender<WriteResult>)>,
    Option<std::sync::mpsc::Sender<()>>,
);

/// Gathers a batch; changes of the watched paths on the way apply to it
/// whole (`markers`: those to answer once the batches before it are
/// published).
fn gather(
    first: Command,
    rx: &mpsc::Receiver<Command>,
    watched: &mut BTreeSet<String>,
    markers: &mut Vec<mpsc::Sender<()>>,
) -> Gathered {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(cmd) = next {
        match cmd {
            Command::Write(op, reply) => {
                bytes += op.record_bytes();
                batch.push((op, reply));
            }
            Command::SetWatched(w) => *watched = w.into_iter().collect(),
            Command::AddWatched(w, done) => {
                watched.extend(w);
                markers.push(done);
            }
            Command::Shutdown(done) => return (batch, Some(done)),
        }
        if batch.len() >= MAX_BATCH || bytes >= MAX_BATCH_RECORD_BYTES {
            break;
        }
        next = rx.try_recv().ok();
    }
    (batch, None)
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        self.scan_ttls();
        loop {
            let first = match self.next_deadline() {
                Some(deadline) => {
                    let wait = deadline.saturating_sub(now_nanos());
                    if wait <= 0 {
                        self.commit_batch(Vec::new());
                        continue;
                    }
                    match rx.recv_timeout(Duration::from_nanos(wait as u64)) {
                        Ok(c) => c,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.commit_batch(Vec::new());
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            let mut markers = Vec::new();
            let (batch, stop) = gather(first, &rx, &mut self.watched, &mut markers);
            // Every batch handed over before this one was applied without
            // the added paths: the markers follow them (and this one).
            self.commit_batch(batch);
            for done in markers {
                let _ = self.to_commit.send(ToCommit::Marker(done));
            }
            if let Some(done) = stop {
                // The committer closes the journal after what is queued.
                if let Err(mpsc::SendError(ToCommit::Close(done))) =
                    self.to_commit.send(ToCommit::Close(done))
                {
                    let _ = done.send(());
                }
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<i64> {
        self.ttls.first().map(|t| t.0)
    }

    fn scan_ttls(&mut self) {
        let mut stack: Vec<(String, Arc<Node>)> = vec![(String::new(), self.root.clone())];
        while let Some((key, node)) = stack.pop() {
            if let Some(e) = node.expiration {
                self.ttls.insert((e, key.clone(), node.created));
            }
            if let Kind::Dir(children) = &node.kind {
                for (name, child) in children.iter() {
                    stack.push((format!("{key}/{name}"), child.clone()));
                }
            }
        }
    }

    /// Applies expiries that are due and the batch, and hands them to the
    /// committer.
    fn commit_batch(&mut self, batch: Vec<(WriteOp, oneshot::Sender<WriteResult>)>) {
        self.notice_failure();
        if let Some(cause) = &self.failed {
            refuse(batch.into_iter().map(|(_, reply)| reply), cause, self.index);
            return;
        }
        let mut events: Vec<Arc<Event>> = Vec::new();
        let mut stat_marks: Vec<usize> = Vec::new();
        self.expire_due(now_nanos(), &mut events, &mut stat_marks);
        let mut answers = Vec::with_capacity(batch.len());
        for (op, reply) in batch {
            let (kind, res) = self.apply(op);
            let stat = stat_index(kind, res.is_ok());
            stat_marks.push(stat);
            match res {
                Ok(e) => {
                    let e = Arc::new(e);
                    events.push(e.clone());
                    answers.push((reply, Ok((e, self.index))));
                }
                Err(err) => answers.push((reply, Err(err))),
            }
        }
        if answers.is_empty() && self.log.is_empty() {
            return;
        }
        let capacity = self.log.capacity();
        let batch = Batch {
            mutations: std::mem::replace(&mut self.log, Vec::with_capacity(capacity)),
            index: self.index,
            root: self.root.clone(),
            events,
            stat_marks,
            answers,
        };
        // Fails only if the committer is gone (it panicked).
        if let Err(mpsc::SendError(ToCommit::Batch(batch))) =
            self.to_commit.send(ToCommit::Batch(batch))
        {
            self.shared.fail(COMMITTER_GONE);
            let published = self.shared.snapshot.load().index;
            refuse(
                batch.answers.into_iter().map(|(reply, _)| reply),
                COMMITTER_GONE,
                published,
            );
        }
    }

    /// After the committer failed a commit: refuse writes from now on,
    /// from the last committed version (what readers see).
    fn notice_failure(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let Some(cause) = self.shared.failure() else {
            return;
        };
        let published = self.shared.snapshot.load_full();
        self.root = published.root.clone();
        self.index = published.index;
        // Nothing will be committed again, expiries included: an expiry
        // left due would wake the writer for ever.
        self.ttls.clear();
        self.failed = Some(cause);
    }

    fn expire_due(&mut self, now: i64, events: &mut Vec<Arc<Event>>, stats: &mut Vec<usize>) {
        while let Some(first) = self.ttls.first() {
            if first.0 > now {
                break;
            }
            let Some((exp, key, created)) = self.ttls.pop_first() else {
                break;
            };
            let current = match lookup(&self.root, &key) {
                Lookup::Found(n) if n.expiration == Some(exp) && n.created == created => n.clone(),
                _ => continue,
            };
            let next = self.index + 1;
            let prev = NodeRepr::of(&key, &current, now);
            let mut node = bare(&key, next, current.created);
            node.dir = current.is_dir();
            remove_node(&mut self.root, &key);
            self.log.push(Mutation::Remove { key: key.clone() });
            self.index = next;
            let mut e = Event::new(Action::Expire, node, Some(prev));
            if current.is_dir() {
                e.removed_paths = self.watched_in(&key, &current);
            }
            *e.removed.lock().unwrap_or_else(|p| p.into_inner()) = Some(current);
            events.push(Arc::new(e));
            stats.push(14);
        }
    }

    fn apply(&mut self, op: WriteOp) -> (Action, Result<Event, EtcdError>) {
        let now = now_nanos();
        match op {
            WriteOp::Put {
                key,
                value,
                dir,
                expire,
                refresh,
                prev_exist,
                prev_value,
                prev_index,
            } => {
                let expire = expire.filter(|e| *e >= MIN_EXPIRE);
                match prev_exist {
                    Some(true) if prev_index == 0 && prev_value.is_empty() => (
                        Action::Update,
                        self.update(&key, value, expire, refresh, now),
                    ),
                    Some(true) => (
                        Action::CompareAndSwap,
                        self.cas(&key, &prev_value, prev_index, value, expire, refresh, now),
                    ),
                    Some(false) => (
                        Action::Create,
                        self.create(&key, dir, value, false, false, expire, Action::Create, now),
                    ),
                    None if prev_index > 0 || !prev_value.is_empty() => (
                        Action::CompareAndSwap,
                        self.cas(&key, &prev_value, prev_index, value, expire, refresh, now),
                    ),
                    None => (
                        Action::Set,
                        self.set(&key, dir, value, expire, refresh, now),
                    ),
                }
            }
            WriteOp::Post {
                key,
                value,
                dir,
                expire,
            } => {
                let expire = expire.filter(|e| *e >= MIN_EXPIRE);
                (
                    Action::Create,
                    self.create(&key, dir, value, true, false, expire, Action::Create, now),
                )
            }
            WriteOp::Delete {
                key,
                dir,
                recursive,
                prev_value,
                prev_index,
            } => {
                if prev_index > 0 || !prev_value.is_empty() {
                    (
                        Action::CompareAndDelete,
                        self.cad(&key, &prev_value, prev_index, now),
                    )
                } else {
                    (Action::Delete, self.delete(&key, dir, recursive, now))
                }
            }
        }
    }

    /// The watched paths strictly below `key` that exist in `removed` (the
    /// subtree at `key`).
    fn watched_in(&self, key: &str, removed: &Arc<Node>) -> Vec<String> {
        let lo = if key == "/" {
            "/".to_string()
        } else {
            format!("{key}/")
        };
        self.watched
            .range(lo.clone()..)
            .take_while(|p| p.starts_with(&lo))
            .filter(|p| {
                let rel = if key == "/" {
                    p.as_str()
                } else {
                    &p[key.len()..]
                };
                matches!(lookup(removed, rel), Lookup::Found(_))
            })
            .cloned()
            .collect()
    }

    fn err(&self, code: u16, cause: impl Into<String>) -> EtcdError {
        EtcdError::new(code, cause, self.index)
    }

    fn get_node(&self, key: &str) -> Result<Arc<Node>, EtcdError> {
        match lookup(&self.root, key) {
            Lookup::Found(n) => Ok(n.clone()),
            Lookup::Missing(c) => Err(self.err(code::KEY_NOT_FOUND, c)),
            Lookup::NotDir(c) => Err(self.err(code::NOT_DIR, c)),
        }
    }

    fn set(
        &mut self,
        key: &str,
        dir: bool,
        value: String,
        expire: Option<i64>,
        refresh: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        if !refresh {
            // `create` replacing: it checks the path as etcd does and
            // reports the node it replaced.
            return self.create(key, dir, value, false, true, expire, Action::Set, now);
        }
        let existing = match self.get_node(key) {
            Ok(n) => Some(n),
            Err(e) if e.code == code::KEY_NOT_FOUND => {
                if refresh {
                    return Err(e);
                }
                None
            }
            Err(e) => return Err(e),
        };
        let value = match (&existing, refresh) {
            (Some(n), true) => n.value_str().map(|v| v.to_string()).unwrap_or_default(),
            _ => value,
        };
        let mut e = self.create(key, dir, value, false, true, expire, Action::Set, now)?;
        if let Some(n) = existing {
            e.prev = Some(NodeRepr::of(key, &n, now));
        }
        e.refresh = refresh;
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        key: &str,
        dir: bool,
        value: String,
        unique: bool,
        replace: bool,
        expire: Option<i64>,
        action: Action,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let next = self.index + 1;
        let owned;
        let key = if unique {
            owned = if key == "/" {
                format!("/{next:020}")
            } else {
                format!("{key}/{next:020}")
            };
            owned.as_str()
        } else {
            key
        };
        if key == "/" {
            return Err(self.err(code::ROOT_RONLY, "/"));
        }
        let (parent, name) = split_parent(key);
        // Check the parent's path before changing anything (the child
        // itself is checked where it is inserted).
        let mut cur = &self.root;
        for comp in components(parent) {
            // Only directories are descended into below.
            let Some(children) = cur.children() else {
                break;
            };
            match children.get(comp) {
                Some(c) if c.is_dir() => cur = c,
                Some(_) => {
                    let end = comp.as_ptr() as usize - parent.as_ptr() as usize + comp.len();
                    return Err(self.err(code::NOT_DIR, &parent[..end]));
                }
                None => break,
            }
        }
        let node = if dir {
            Node::dir(next, expire)
        } else {
            Node::value(next, Arc::from(value.as_str()), expire)
        };
        let repr = NodeRepr::of(key, &node, now);
        let stored = node.value_str().cloned();
        // One walk: the existing child is checked where it would be replaced.
        let mut prev = None;
        let children = make_dirs(&mut self.root, parent, next);
        let inserted = children.try_insert(Name::new(name), |existing| match existing {
            Some(_) if !replace => Err(code::NODE_EXIST),
            Some(e) if e.is_dir() => Err(code::NOT_FILE),
            Some(e) => {
                prev = Some(NodeRepr::of(key, e, now));
                Ok(Arc::new(node))
            }
            None => Ok(Arc::new(node)),
        });
        if let Err(c) = inserted {
            return Err(self.err(c, key));
        }
        self.log.push(Mutation::Put {
            key: key.to_string(),
            created: next,
            modified: next,
            expiration: expire,
            value: stored,
        });
        if let Some(e) = expire {
            self.ttls.insert((e, key.to_string(), next));
        }
        self.index = next;
        Ok(Event::new(action, repr, prev))
    }

    fn update(
        &mut self,
        key: &str,
        value: String,
        expire: Option<i64>,
        refresh: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        if key == "/" {
            return Err(self.err(code::ROOT_RONLY, "/"));
        }
        let n = self.get_node(key)?;
        if n.is_dir() && !value.is_empty() {
            return Err(self.err(code::NOT_FILE, key));
        }
        let value = if refresh {
            n.value_str().map(|v| v.to_string()).unwrap_or_default()
        } else {
            value
        };
        let next = self.index + 1;
        let prev = NodeRepr::of(key, &n, now);
        let node = node_mut(&mut self.root, key);
        let mut logged = None;
        if let Kind::Value(v) = &mut node.kind {
            *v = Arc::from(value.as_str());
            logged = Some(v.clone());
            node.modified = next;
        }
        node.expiration = expire;
        self.log.push(Mutation::Touch {
            key: key.to_string(),
            value: logged,
            modified: node.modified,
            expiration: expire,
        });
        let mut repr = NodeRepr::of(key, node, now);
        repr.modified = next;
        if let Some(e) = expire {
            self.ttls.insert((e, key.to_string(), n.created));
        }
        self.index = next;
        let mut e = Event::new(Action::Update, repr, Some(prev));
        e.refresh = refresh;
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    fn cas(
        &mut self,
        key: &str,
        prev_value: &str,
        prev_index: u64,
        value: String,
        expire: Option<i64>,
        refresh: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        if key == "/" {
            return Err(self.err(code::ROOT_RONLY, "/"));
        }
        let n = self.get_node(key)?;
        if n.is_dir() {
            return Err(self.err(code::NOT_FILE, key));
        }
        self.compare(&n, prev_value, prev_index)?;
        let value = if refresh {
            n.value_str().map(|v| v.to_string()).unwrap_or_default()
        } else {
            value
        };
        let next = self.index + 1;
        let prev = NodeRepr::of(key, &n, now);
        let node = node_mut(&mut self.root, key);
        let value: Arc<str> = Arc::from(value.as_str());
        node.kind = Kind::Value(value.clone());
        node.modified = next;
        node.expiration = expire;
        self.log.push(Mutation::Touch {
            key: key.to_string(),
            value: Some(value),
            modified: next,
            expiration: expire,
        });
        let repr = NodeRepr::of(key, node, now);
        if let Some(e) = expire {
            self.ttls.insert((e, key.to_string(), n.created));
        }
        self.index = next;
        let mut e = Event::new(Action::CompareAndSwap, repr, Some(prev));
        e.refresh = refresh;
        Ok(e)
    }

    fn compare(&self, n: &Node, prev_value: &str, prev_index: u64) -> Result<(), EtcdError> {
        let value = n.value_str().map(|v| &**v).unwrap_or("");
        let index_ok = prev_index == 0 || n.modified == prev_index;
        let value_ok = prev_value.is_empty() || value == prev_value;
        let cause = match (value_ok, index_ok) {
            (true, true) => return Ok(()),
            (false, true) => format!("[{prev_value} != {value}]"),
            (true, false) => format!("[{prev_index} != {}]", n.modified),
            (false, false) => format!("[{prev_value} != {value}] [{prev_index} != {}]", n.modified),
        };
        Err(self.err(code::TEST_FAILED, cause))
    }

    fn delete(
        &mut self,
        key: &str,
        dir: bool,
        recursive: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        if key == "/" {
            return Err(self.err(code::ROOT_RONLY, "/"));
        }
        let dir = dir || recursive;
        let n = self.get_node(key)?;
        if let Some(children) = n.children() {
            if !dir {
                return Err(self.err(code::NOT_FILE, key));
            }
            if !children.is_empty() && !recursive {
                return Err(self.err(code::DIR_NOT_EMPTY, key));
            }
        }
        let next = self.index + 1;
        let prev = NodeRepr::of(key, &n, now);
        let mut node = bare(key, next, n.created);
        node.dir = n.is_dir();
        remove_node(&mut self.root, key);
        self.log.push(Mutation::Remove {
            key: key.to_string(),
        });
        self.index = next;
        let mut e = Event::new(Action::Delete, node, Some(prev));
        if n.is_dir() {
            e.removed_paths = self.watched_in(key, &n);
            *e.removed.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
        }
        Ok(e)
    }

    fn cad(
        &mut self,
        key: &str,
        prev_value: &str,
        prev_index: u64,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let n = self.get_node(key)?;
        if n.is_dir() {
            // etcd reports the root with an empty (omitted) cause.
            let cause = if key == "/" { "" } else { key };
            return Err(self.err(code::NOT_FILE, cause));
        }
        self.compare(&n, prev_value, prev_index)?;
        let next = self.index + 1;
        let prev = NodeRepr::of(key, &n, now);
        let node = bare(key, next, n.created);
        drop(n);
        remove_node(&mut self.root, key);
        self.log.push(Mutation::Remove {
            key: key.to_string(),
        });
        self.index = next;
        Ok(Event::new(Action::CompareAndDelete, node, Some(prev)))
    }
}

impl Committer {
    fn run(mut self, rx: mpsc::Receiver<ToCommit>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                ToCommit::Batch(batch) => self.commit(batch),
                ToCommit::Marker(done) => {
                    let _ = done.send(());
                }
                ToCommit::Close(done) => {
                    if self.failed.is_none() {
                        self.journal.close(&self.root, self.index);
                    }
                    let c = self.shared.commit_stats();
                    tracing::info!(
                        commits = c.commits,
                        mutations = c.mutations,
                        mutations_per_commit = %format!(
                            "{:.2}",
                            c.mutations as f64 / c.commits.max(1) as f64
                        ),
                        "store closed"
                    );
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Makes the batch durable, then publishes the tree, then the events,
    /// then the answers; or fails it, and every batch after it.
    fn commit(&mut self, batch: Batch) {
        // Dropped before `batch` if this panics: the store refuses writes
        // before the batch's writers hear that it stopped.
        let _alive = CommitterAlive(&self.shared);
        if self.failed.is_none() && !batch.mutations.is_empty() {
            let started = std::time::Instant::now();
            match self.journal.commit(&batch.mutations, batch.index) {
                Ok(()) => {
                    let s = &self.shared;
                    s.commits.fetch_add(1, Ordering::Relaxed);
                    s.committed_mutations
                        .fetch_add(batch.mutations.len() as u64, Ordering::Relaxed);
                    s.commit_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                Err(err) => refuse_writes(
                    &self.shared,
                    &mut self.failed,
                    err.to_string(),
                    "commit failed",
                ),
            }
        }
        if let Some(cause) = &self.failed {
            // This batch failed, or was applied on top of one that did:
            // none of its answers, refusals included, may be told.
            refuse(
                batch.answers.into_iter().map(|(reply, _)| reply),
                cause,
                self.index,
            );
            return;
        }
        self.root = batch.root;
        self.index = batch.index;
        self.shared.snapshot.store(Arc::new(Snapshot {
            root: self.root.clone(),
            index: self.index,
        }));
        for s in batch.stat_marks {
            self.shared.stats.bump(s);
        }
        if !batch.events.is_empty() {
            let parked = watch::lock(&self.shared.hub).publish(&batch.events, self.index);
            once::fan_out(parked, self.runtime.as_ref());
        }
        for (reply, res) in batch.answers {
            let _ = reply.send(res);
        }
        if !batch.mutations.is_empty() {
            self.journal.committed(&self.root, self.index);
            if let Some(cause) = self.journal.broken() {
                let what = "the journal cannot make commits durable";
                refuse_writes(&self.shared, &mut self.failed, cause, what);
            }
        }
    }
}

/// The committer refuses every write from now on (`failed`), and the store
/// says why, for `cause` (`what` happened).
fn refuse_writes(shared: &Shared, failed: &mut Option<String>, cause: String, what: &str) {
    tracing::error!(error = %cause, "{what}: refusing writes from now on");
    shared.fail(&cause);
    *failed = Some(cause);
}

fn stat_index(action: Action, ok: bool) -> usize {
    let base = match action {
        Action::Get => 0,
        Action::Set => 2,
        Action::Delete => 4,
        Action::Update => 6,
        Action::Create => 8,
        Action::CompareAndSwap => 10,
        Action::CompareAndDelete => 12,
        Action::Expire => return 14,
    };
    if ok {
        base
    } else {
        base + 1
    }
}

fn bare(key: &str, modified: u64, created: u64) -> NodeRepr {
    NodeRepr {
        key: key.to_string(),
        value: None,
        dir: false,
        expiration: None,
        ttl: 0,
        modified,
        created,
    }
}

/// Splits a canonical key (not the root) into parent and name.
fn split_parent(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(0) => ("/", &key[1..]),
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("/", key),
    }
}

/// The children of the directory at `path`, creating missing directories
/// with `index` (callers have checked that no key is in the way).
fn make_dirs<'a>(root: &'a mut Arc<Node>, path: &str, index: u64) -> &'a mut tree::Children {
    let mut cur: &mut Node = Arc::make_mut(root);
    for comp in components(path) {
        if !cur.is_dir() {
            // Callers checked; replace rather than panic.
            cur.kind = Kind::Dir(Default::default());
        }
        let Kind::Dir(children) = &mut cur.kind else {
            unreachable!("just made a directory")
        };
        let child = children.get_or_insert_with(comp, || Arc::new(Node::dir(index, None)));
        cur = Arc::make_mut(child);
    }
    if !cur.is_dir() {
        cur.kind = Kind::Dir(Default::default());
    }
    match &mut cur.kind {
        Kind::Dir(children) => children,
        Kind::Value(_) => unreachable!("just made a directory"),
    }
}

/// The node at `key`, made unique along the path (callers checked it exists).
fn node_mut<'a>(root: &'a mut Arc<Node>, key: &str) -> &'a mut Node {
    let (parent, name) = split_parent(key);
    let children = make_dirs(root, parent, 0);
    let child = children.get_or_insert_with(name, || Arc::new(Node::dir(0, None)));
    Arc::make_mut(child)
}

/// Removes the node at `key` (callers checked it exists).
fn remove_node(root: &mut Arc<Node>, key: &str) {
    let (parent, name) = split_parent(key);
    let children = make_dirs(root, parent, 0);
    children.remove(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(value: &str) -> WriteOp {
        WriteOp::Put {
            key: "/k".into(),
            value: value.into(),
            dir: false,
            expire: None,
            refresh: false,
            prev_exist: None,
            prev_value: String::new(),
            prev_index: 0,
        }
    }

    #[test]
    fn a_batch_stops_growing_before_its_record_could_outgrow_the_limit() {
        // In tests a batch's record may hold 1 MiB: two writes of 100 KB
        // values (600 KB each at worst, escaped) fill it.
        let (tx, rx) = mpsc::channel();
        let mut replies = Vec::new();
        for _ in 0..6 {
            let (reply, answer) = oneshot::channel();
            replies.push(answer);
            tx.send(Command::Write(put(&"<".repeat(100_000)), reply))
                .unwrap();
        }
        let mut watched = BTreeSet::new();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let first = rx.try_recv().ok()?;
            Some(gather(first, &rx, &mut watched, &mut Vec::new()).0.len())
        })
        .collect();
        assert_eq!(sizes, [2, 2, 2]);
        // Small writes share one batch.
        for _ in 0..100 {
            let (reply, answer) = oneshot::channel();
            replies.push(answer);
            tx.send(Command::Write(put("v"), reply)).unwrap();
        }
        let first = rx.try_recv().unwrap();
        assert_eq!(
            gather(first, &rx, &mut watched, &mut Vec::new()).0.len(),
            100
        );
    }
}
