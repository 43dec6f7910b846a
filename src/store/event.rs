//! Events (the answer to a write, and what watchers receive) and the JSON
//! rendering of nodes, written straight from the tree.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::tree::{is_hidden, Kind, Node};
use crate::v2::json::{rfc3339_nanos, write_i64, write_str, write_u64};

/// etcd's action names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A read.
    Get,
    /// A set (create or replace).
    Set,
    /// A create (`prevExist=false`, or POST).
    Create,
    /// An update (`prevExist=true`).
    Update,
    /// A delete.
    Delete,
    /// A compare-and-swap.
    CompareAndSwap,
    /// A compare-and-delete.
    CompareAndDelete,
    /// A TTL expiry.
    Expire,
}

impl Action {
    /// etcd's name for the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }
}

/// A node as an event shows it (etcd's non-recursive representation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRepr {
    /// Full key; empty for the root.
    pub key: String,
    /// Value of a key.
    pub value: Option<Arc<str>>,
    /// Whether a directory.
    pub dir: bool,
    /// Absolute expiration, Unix nanoseconds.
    pub expiration: Option<i64>,
    /// Seconds to live, as etcd computed it when the event was made.
    pub ttl: i64,
    /// modifiedIndex.
    pub modified: u64,
    /// createdIndex.
    pub created: u64,
}

impl NodeRepr {
    /// The representation of `node` at `key`, TTL computed at `now`.
    pub fn of(key: &str, node: &Node, now: i64) -> NodeRepr {
        NodeRepr {
            key: key.to_string(),
            value: node.value_str().cloned(),
            dir: node.is_dir(),
            expiration: node.expiration,
            ttl: ttl_at(node.expiration, now),
            modified: node.modified,
            created: node.created,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, name: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        if !self.key.is_empty() {
            field(out, "key");
            write_str(out, &self.key);
        }
        if let Some(v) = &self.value {
            field(out, "value");
            write_str(out, v);
        }
        if self.dir {
            field(out, "dir");
            out.extend_from_slice(b"true");
        }
        if let Some(e) = self.expiration {
            field(out, "expiration");
            write_str(out, &rfc3339_nanos(e));
        }
        if self.ttl != 0 {
            field(out, "ttl");
            write_i64(out, self.ttl);
        }
        if self.modified != 0 {
            field(out, "modifiedIndex");
            write_u64(out, self.modified);
        }
        if self.created != 0 {
            field(out, "createdIndex");
            write_u64(out, self.created);
        }
        out.push(b'}');
    }
}

/// etcd's TTL: the seconds until expiration, rounded up.
pub fn ttl_at(expiration: Option<i64>, now: i64) -> i64 {
    match expiration {
        None => 0,
        Some(e) => {
            let d = e.saturating_sub(now);
            let mut t = d / 1_000_000_000;
            if d % 1_000_000_000 > 0 {
                t += 1;
            }
            t
        }
    }
}

/// One change to the store.
#[derive(Debug)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The node after the change (for deletes: key and indexes only).
    pub node: NodeRepr,
    /// The node before the change.
    pub prev: Option<NodeRepr>,
    /// A TTL refresh: kept in history for indexes, never sent to watchers.
    pub refresh: bool,
    /// The subtree a delete or expiry removed, until watchers were woken
    /// (a watcher on a key below is woken only if that key existed).
    pub(crate) removed: std::sync::Mutex<Option<Arc<Node>>>,
    /// For the removal of a directory: the watched paths (policy read
    /// prefixes) that existed below it just before.
    pub removed_paths: Vec<String>,
    json: OnceLock<Bytes>,
}

impl Event {
    /// A new event.
    pub fn new(action: Action, node: NodeRepr, prev: Option<NodeRepr>) -> Event {
        Event {
            action,
            node,
            prev,
            refresh: false,
            removed: std::sync::Mutex::new(None),
            removed_paths: Vec::new(),
            json: OnceLock::new(),
        }
    }

    /// The index of the event (its node's modifiedIndex).
    pub fn index(&self) -> u64 {
        self.node.modified
    }

    /// The event as etcd encodes it, newline-terminated; computed once and
    /// shared by every watcher that receives it.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(self.encode(false)))
            .clone()
    }

    /// The event's JSON; `no_value` leaves out the nodes
    /// (`noValueOnSuccess`).
    pub fn encode(&self, no_value: bool) -> Vec<u8> {
        self.encode_with(no_value, true, true)
    }

    /// The event's JSON with `node.value` and `prevNode` left out unless
    /// kept (write without read, SPEC §3.2).
    pub fn encode_with(&self, no_value: bool, keep_value: bool, keep_prev: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(b"{\"action\":\"");
        out.extend_from_slice(self.action.as_str().as_bytes());
        out.push(b'"');
        if !no_value {
            out.extend_from_slice(b",\"node\":");
            if keep_value {
                self.node.write(&mut out);
            } else {
                let mut n = self.node.clone();
                n.value = None;
                n.write(&mut out);
            }
            if let Some(p) = self.prev.as_ref().filter(|_| keep_prev) {
                out.extend_from_slice(b",\"prevNode\":");
                p.write(&mut out);
            }
        }
        out.extend_from_slice(b"}\n");
        out
    }

    /// Whether etcd answers this event with 201 Created.
    pub fn is_created(&self) -> bool {
        self.action == Action::Create || (self.action == Action::Set && self.prev.is_none())
    }
}

/// Writes the answer to a GET of `node` at `key` (etcd's `get` event):
/// one level of children, or the whole subtree when `recursive`; hidden
/// children left out. Iterative, so depth costs no stack.
pub fn render_get(out: &mut Vec<u8>, key: &str, node: &Node, recursive: bool, now: i64) {
    out.extend_from_slice(b"{\"action\":\"get\",\"node\":");
    let display_key = if key == "/" { "" } else { key };
    write_tree(out, display_key, node, true, recursive, false, now);
    out.extend_from_slice(b"}\n");
}

/// Writes the export of a whole store: a recursive sorted GET of `/` with
/// hidden nodes, plus `"etcdIndex"` (SPEC §5).
pub fn render_export(out: &mut Vec<u8>, root: &Node, index: u64, now: i64) {
    out.extend_from_slice(b"{\"action\":\"get\",\"node\":");
    write_tree(out, "", root, true, true, true, now);
    out.extend_from_slice(b",\"etcdIndex\":");
    write_u64(out, index);
    out.extend_from_slice(b"}\n");
}

/// Writes one node object: its children when `list_top` (one level, or the
/// whole subtree when `recursive`).
fn write_tree(
    out: &mut Vec<u8>,
    display_key: &str,
    node: &Node,
    list_top: bool,
    recursive: bool,
    with_hidden: bool,
    now: i64,
) {
    struct Frame<'a> {
        iter: super::dirmap::Iter<'a>,
        key: String,
        node: &'a Node,
        first: bool,
    }

    let mut stack: Vec<Frame<'_>> = Vec::new();
    match open_node(out, display_key, node, list_top, with_hidden, now) {
        Opened::Nodes => {
            if let Kind::Dir(children) = &node.kind {
                stack.push(Frame {
                    iter: children.iter(),
                    key: display_key.to_string(),
                    node,
                    first: true,
                });
            }
        }
        Opened::Fields(wrote) => close_node(out, node, wrote),
    }
    while let Some(top) = stack.last_mut() {
        match top.iter.next() {
            Some((name, child)) => {
                if is_hidden(name) && !with_hidden {
                    continue;
                }
                if !top.first {
                    out.push(b',');
                }
                top.first = false;
                let mut ckey = String::with_capacity(top.key.len() + 1 + name.len());
                ckey.push_str(&top.key);
                ckey.push('/');
                ckey.push_str(name);
                let child: &Node = child;
                match open_node(out, &ckey, child, recursive, with_hidden, now) {
                    Opened::Nodes => {
                        if let Kind::Dir(children) = &child.kind {
                            stack.push(Frame {
                                iter: children.iter(),
                                key: ckey,
                                node: child,
                                first: true,
                            });
                        }
                    }
                    Opened::Fields(wrote) => close_node(out, child, wrote),
                }
            }
            None => {
                out.push(b']');
                let n = top.node;
                stack.pop();
                close_node(out, n, true);
            }
        }
    }
}

/// The read prefixes below a directory, as a trie relative to it.
#[derive(Default, Debug)]
pub struct ViewTrie {
    children: std::collections::BTreeMap<String, ViewTrie>,
    terminal: bool,
}

impl ViewTrie {
    /// The trie of `prefixes` (canonical, strictly below `key`).
    pub fn new<'a>(key: &str, prefixes: impl Iterator<Item = &'a str>) -> ViewTrie {
        let mut root = ViewTrie::default();
        let base = if key == "/" { 0 } else { key.len() };
        for p in prefixes {
            let mut t = &mut root;
            for comp in p[base..].split('/').filter(|c| !c.is_empty()) {
                t = t.children.entry(comp.to_string()).or_default();
            }
            t.terminal = true;
        }
        root
    }

    /// Whether `node` (at this trie position) is in the view: it is
    /// covered, or a directory with a covered node below it.
    pub fn in_view(&self, node: &Node) -> bool {
        if self.terminal {
            return true;
        }
        let Some(children) = node.children() else {
            return false;
        };
        self.children
            .iter()
            .any(|(name, t)| children.get(name.as_str()).is_some_and(|c| t.in_view(c)))
    }

    /// The component below which the walk from this position along `rest`
    /// first leaves the view, as a count of components that stay inside.
    pub fn depth_in_view(&self, node: &Node, rest: &[&str]) -> usize {
        let mut t = self;
        let mut n: &Node = node;
        let mut depth = 0;
        for comp in rest {
            if t.terminal {
                // Covered from here on: plain existence decides.
                let Some(c) = n.children().and_then(|c| c.get(comp)) else {
                    return depth;
                };
                n = c;
                depth += 1;
                continue;
            }
            let (Some(ct), Some(cn)) = (
                t.children.get(*comp),
                n.children().and_then(|c| c.get(comp)),
            ) else {
                return depth;
            };
            if !ct.in_view(cn) {
                return depth;
            }
            t = ct;
            n = cn;
            depth += 1;
        }
        depth
    }
}

/// Writes the answer to a GET of a directory above the client's view, as
/// if the store held only the view: bare directories (key and `dir` only)
/// down to the covered nodes, which are shown in full.
pub fn render_view(
    out: &mut Vec<u8>,
    key: &str,
    node: &Node,
    trie: &ViewTrie,
    recursive: bool,
    now: i64,
) {
    out.extend_from_slice(b"{\"action\":\"get\",\"node\":");
    let display_key = if key == "/" { "" } else { key };
    write_view(out, display_key, node, trie, true, recursive, now);
    out.extend_from_slice(b"}\n");
}

fn write_view(
    out: &mut Vec<u8>,
    display_key: &str,
    node: &Node,
    trie: &ViewTrie,
    top: bool,
    recursive: bool,
    now: i64,
) {
    out.push(b'{');
    if !display_key.is_empty() {
        out.extend_from_slice(b"\"key\":");
        write_str(out, display_key);
        out.push(b',');
    }
    out.extend_from_slice(b"\"dir\":true");
    if top || recursive {
        let mut first = true;
        if let Some(children) = node.children() {
            for (name, t) in &trie.children {
                if is_hidden(name) {
                    continue;
                }
                let Some(child) = children.get(name.as_str()) else {
                    continue;
                };
                if !t.in_view(child) {
                    continue;
                }
                out.extend_from_slice(if first { b",\"nodes\":[" } else { b"," });
                first = false;
                let ckey = format!("{display_key}/{name}");
                if t.terminal {
                    write_tree(out, &ckey, child, recursive, recursive, false, now);
                } else {
                    write_view(out, &ckey, child, t, false, recursive, now);
                }
            }
        }
        if !first {
            out.push(b']');
        }
    }
    out.push(b'}');
}

/// A delete or expiry of a directory above the client's view, as a bare
/// node: `{"action":..,"node":{"key":..,"dir":true},"prevNode":{..same..}}`.
pub fn encode_bare(e: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"action\":\"");
    out.extend_from_slice(e.action.as_str().as_bytes());
    out.extend_from_slice(b"\",\"node\":{\"key\":");
    write_str(&mut out, &e.node.key);
    out.extend_from_slice(b",\"dir\":true},\"prevNode\":{\"key\":");
    write_str(&mut out, &e.node.key);
    out.extend_from_slice(b",\"dir\":true}}\n");
    out
}

fn has_listed_children(node: &Node, with_hidden: bool) -> bool {
    node.children()
        .is_some_and(|c| c.iter().any(|(k, _)| with_hidden || !is_hidden(k)))
}

/// What `open_node` left open.
enum Opened {
    /// A `nodes` array the caller fills and closes.
    Nodes,
    /// Only fields; true when at least one was written.
    Fields(bool),
}

/// Writes the fields of a node up to its children.
fn open_node(
    out: &mut Vec<u8>,
    key: &str,
    node: &Node,
    list: bool,
    with_hidden: bool,
    now: i64,
) -> Opened {
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    if !key.is_empty() {
        sep(out);
        out.extend_from_slice(b"\"key\":");
        write_str(out, key);
    }
    match &node.kind {
        Kind::Value(v) => {
            sep(out);
            out.extend_from_slice(b"\"value\":");
            write_str(out, v);
        }
        Kind::Dir(_) => {
            sep(out);
            out.extend_from_slice(b"\"dir\":true");
        }
    }
    if let Some(e) = node.expiration {
        sep(out);
        out.extend_from_slice(b"\"expiration\":");
        write_str(out, &rfc3339_nanos(e));
        let ttl = ttl_at(Some(e), now);
        if ttl != 0 {
            out.extend_from_slice(b",\"ttl\":");
            write_i64(out, ttl);
        }
    }
    if list && has_listed_children(node, with_hidden) {
        sep(out);
        out.extend_from_slice(b"\"nodes\":[");
        return Opened::Nodes;
    }
    Opened::Fields(true)
}

/// Writes the indexes and closes the object; `comma` when a field precedes.
fn close_node(out: &mut Vec<u8>, node: &Node, comma: bool) {
    let mut comma = comma;
    for (name, v) in [
        ("modifiedIndex", node.modified),
        ("createdIndex", node.created),
    ] {
        if v != 0 {
            if comma {
                out.push(b',');
            }
            comma = true;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_u64(out, v);
        }
    }
    out.push(b'}');
}
