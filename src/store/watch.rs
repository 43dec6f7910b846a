//! The watcher hub and the event history (etcd's last 1000 events).
//!
//! Watchers are futures waiting on a channel, never threads. The hub is
//! only touched when an event is published or a watch starts or ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::event::{Action, Event};
use super::once::{self, OnceReceiver, OnceSender, ParkedWrite};
use super::tree::{is_hidden, lookup, Lookup};

/// How many events the history keeps, as etcd.
pub const HISTORY_CAPACITY: usize = 1000;
/// How many undelivered events a stream watcher may hold before it is
/// ended, as etcd.
pub const STREAM_QUEUE: usize = 100;

/// Decides which events a watcher may see (access control hands one in;
/// the store knows no policy).
pub type Interest = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// Decides whether a watcher may go on after the policy changed (a
/// reload); a watcher it refuses is ended.
pub type Keep = Arc<dyn Fn() -> bool + Send + Sync>;

enum Sink {
    Once(Option<OnceSender>),
    Stream(mpsc::Sender<Arc<Event>>),
}

struct Watcher {
    id: u64,
    recursive: bool,
    since: u64,
    interest: Option<Interest>,
    keep: Keep,
    sink: Sink,
}

impl Watcher {
    /// Delivers (a parked connection's writer goes to `parked`); returns
    /// true when the watcher is done and must be removed.
    fn deliver(&mut self, e: &Arc<Event>, parked: &mut Vec<ParkedWrite>) -> bool {
        match &mut self.sink {
            Sink::Once(tx) => {
                if let Some(tx) = tx.take() {
                    parked.extend(tx.send(e));
                }
                true
            }
            // A full queue ends the stream, as etcd ends it.
            Sink::Stream(tx) => tx.try_send(e.clone()).is_err(),
        }
    }
}

/// The event history and the registered watchers.
pub struct Hub {
    history: VecDeque<Arc<Event>>,
    /// Indexes below this are cleared (no history kept for them).
    floor: u64,
    /// The committed store index.
    pub(crate) current: u64,
    watchers: BTreeMap<String, Vec<Watcher>>,
    next_id: u64,
    count: usize,
}

/// Where a new watch stands.
pub enum Started {
    /// An event from history answers it at once.
    Ready(Arc<Event>),
    /// Registered; events arrive on the receiver.
    Once(OnceReceiver, WatchGuard),
    /// Registered stream.
    Stream(mpsc::Receiver<Arc<Event>>, WatchGuard),
}

/// Removes its watcher from the hub when dropped (client gone or done).
pub struct WatchGuard {
    hub: Arc<Mutex<Hub>>,
    path: String,
    id: u64,
    /// Still registered in the hub.
    armed: bool,
}

impl WatchGuard {
    /// A one-shot watch got its event: the hub removed it as it delivered,
    /// so dropping the guard need not take the hub's lock (which the
    /// writer may be holding while it wakes thousands of watchers).
    pub fn delivered(mut self) {
        self.armed = false;
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if self.armed {
            let mut hub = lock(&self.hub);
            hub.remove(&self.path, self.id);
        }
    }
}

/// Locks the hub; a poisoned lock still holds consistent data because
/// every mutation of it is a single push or removal.
pub(crate) fn lock(hub: &Mutex<Hub>) -> std::sync::MutexGuard<'_, Hub> {
    hub.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// An empty hub at `index`; history before `index + 1` is cleared
    /// unless `index` is 0 (a new store).
    pub fn new(index: u64) -> Hub {
        Hub {
            history: VecDeque::with_capacity(HISTORY_CAPACITY),
            floor: if index == 0 { 0 } else { index + 1 },
            current: index,
            watchers: BTreeMap::new(),
            next_id: 1,
            count: 0,
        }
    }

    /// Number of registered watchers.
    pub fn watcher_count(&self) -> usize {
        self.count
    }

    fn start_index(&self) -> u64 {
        self.history.front().map_or(self.floor, |e| e.index())
    }

    fn remove(&mut self, path: &str, id: u64) {
        if let Some(list) = self.watchers.get_mut(path) {
            if let Some(pos) = list.iter().position(|w| w.id == id) {
                list.swap_remove(pos);
                self.count -= 1;
            }
            if list.is_empty() {
                self.watchers.remove(path);
            }
        }
    }

    /// Finds the first event at or after `index` that a watch on `key`
    /// would see. `Err(start)` when `index` is older than the history.
    pub fn scan(
        &self,
        key: &str,
        recursive: bool,
        index: u64,
        interest: Option<&Interest>,
    ) -> Result<Option<Arc<Event>>, u64> {
        let start = self.start_index();
        if index < start {
            return Err(start);
        }
        let Some(last) = self.history.back() else {
            return Ok(None);
        };
        if index > last.index() {
            return Ok(None);
        }
        let offset = self
            .history
            .iter()
            .position(|e| e.index() >= index)
            .unwrap_or(self.history.len());
        for e in self.history.iter().skip(offset) {
            if e.refresh {
                continue;
            }
            let ek = e.node.key.as_str();
            let mut ok = ek == key || (recursive && is_under(ek, key));
            if matches!(e.action, Action::Delete | Action::Expire)
                && e.prev.as_ref().is_some_and(|p| p.dir)
            {
                ok = ok || is_under(key, ek);
            }
            if ok && interest.is_none_or(|f| f(e)) {
                return Ok(Some(e.clone()));
            }
        }
        Ok(None)
    }

    /// Starts a watch; `since` 0 means "the next event".
    pub fn watch(
        this: &Arc<Mutex<Hub>>,
        key: &str,
        recursive: bool,
        stream: bool,
        since: u64,
        interest: Option<Interest>,
        keep: Keep,
    ) -> Result<(Started, u64), (u64, u64)> {
        let mut hub = lock(this);
        let current = hub.current;
        let since = if since == 0 { current + 1 } else { since };
        match hub.scan(key, recursive, since, interest.as_ref()) {
            Err(start) => return Err((start, current)),
            Ok(Some(e)) => return Ok((Started::Ready(e), current)),
            Ok(None) => {}
        }
        let id = hub.next_id;
        hub.next_id += 1;
        let guard = WatchGuard {
            hub: this.clone(),
            path: key.to_string(),
            id,
            armed: true,
        };
        let (sink, started) = if stream {
            let (tx, rx) = mpsc::channel(STREAM_QUEUE);
            (Sink::Stream(tx), Started::Stream(rx, guard))
        } else {
            let (tx, rx) = once::slot();
            (Sink::Once(Some(tx)), Started::Once(rx, guard))
        };
        hub.watchers
            .entry(key.to_string())
            .or_default()
            .push(Watcher {
                id,
                recursive,
                since,
                interest,
                keep,
                sink,
            });
        hub.count += 1;
        Ok((started, current))
    }

    /// Decides every watcher again (after a reload): the ones their
    /// `keep` refuses are removed, which ends their watches (the sender
    /// dropped, the body ends). Returns how many ended.
    pub fn redecide(&mut self) -> usize {
        let mut ended = 0;
        for list in self.watchers.values_mut() {
            list.retain(|w| {
                let keep = (w.keep)();
                ended += usize::from(!keep);
                keep
            });
        }
        self.watchers.retain(|_, list| !list.is_empty());
        self.count -= ended;
        ended
    }

    /// Records committed events in history and wakes their watchers.
    /// Returns the writers of parked connections that got an event: the
    /// caller runs them ([`once::fan_out`]) once it let the hub's lock go.
    #[must_use]
    pub fn publish(&mut self, events: &[Arc<Event>], index: u64) -> Vec<ParkedWrite> {
        let mut parked = Vec::new();
        for e in events {
            if self.history.len() == HISTORY_CAPACITY {
                self.history.pop_front();
            }
            self.history.push_back(e.clone());
            if !e.refresh {
                self.notify(e, &mut parked);
            }
        }
        self.current = index;
        parked
    }

    fn notify(&mut self, e: &Arc<Event>, parked: &mut Vec<ParkedWrite>) {
        let key = e.node.key.as_str();
        let removes = matches!(
            e.action,
            Action::Delete | Action::Expire | Action::CompareAndDelete
        );
        if removes {
            // Watchers on the removed node and everything below it.
            let mut paths: Vec<String> = Vec::new();
            if self.watchers.contains_key(key) {
                paths.push(key.to_string());
            }
            let removed = e.removed.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let (true, Some(removed)) = (e.node.dir, removed) {
                let lo = format!("{key}/");
                let hi = format!("{key}0"); // '0' follows '/'
                paths.extend(
                    self.watchers
                        .range(lo..hi)
                        .map(|(k, _)| k)
                        .filter(|k| matches!(lookup(&removed, &k[key.len()..]), Lookup::Found(_)))
                        .cloned(),
                );
            }
            for p in paths {
                self.notify_at(e, &p, true, parked);
            }
        }
        // The root and every ancestor of the key, then the key itself.
        self.notify_at(e, "/", false, parked);
        for comp in key.split('/').filter(|c| !c.is_empty()) {
            let end = comp.as_ptr() as usize - key.as_ptr() as usize + comp.len();
            self.notify_at(e, &key[..end], false, parked);
        }
    }

    /// Delivers `e` to the watchers on `path`; the writers of parked
    /// connections it hands out go to `parked`.
    fn notify_at(
        &mut self,
        e: &Arc<Event>,
        path: &str,
        deleted: bool,
        parked: &mut Vec<ParkedWrite>,
    ) {
        let Some(list) = self.watchers.get_mut(path) else {
            return;
        };
        let key = e.node.key.as_str();
        let original = key == path || (path == "/" && key.is_empty());
        if !original && hidden_below(path, key) {
            return;
        }
        let index = e.index();
        let mut removed = 0;
        list.retain_mut(|w| {
            let wants = (w.recursive || original || deleted) && index >= w.since;
            if !wants || !w.interest.as_ref().is_none_or(|f| f(e)) {
                return true;
            }
            let done = w.deliver(e, parked);
            if done {
                removed += 1;
            }
            !done
        });
        self.count -= removed;
        if list.is_empty() {
            self.watchers.remove(path);
        }
    }
}

/// `key` lies strictly below `dir` (segment-wise).
fn is_under(key: &str, dir: &str) -> bool {
    if dir == "/" {
        return key.len() > 1;
    }
    key.len() > dir.len() && key.starts_with(dir) && key.as_bytes()[dir.len()] == b'/'
}

/// etcd's isHidden: the part of `key` below `watch` has a hidden component.
fn hidden_below(watch: &str, key: &str) -> bool {
    if watch.len() > key.len() || !key.starts_with(watch) {
        return false;
    }
    key[watch.len()..].split('/').any(is_hidden)
}
