//! The v2 key tree as a persistent (structurally shared) data structure.
//!
//! The writer builds the next version of the tree beside the published one
//! (copy-on-write along the touched path), so readers always see a complete,
//! committed version and never wait for a writer.

use std::sync::Arc;

use super::dirmap::DirMap;

/// The name of a child: inline when short (most are), so that copying a
/// directory's map along a written path clones names without atomic
/// reference counts, and lookups compare names without a pointer chase.
pub type Name = smol_str::SmolStr;

/// Children of a directory, sorted by name.
pub type Children = DirMap;

/// One key or directory.
#[derive(Clone, Debug)]
pub struct Node {
    /// Index of the write that created the node.
    pub created: u64,
    /// Index of the last write that changed the node.
    pub modified: u64,
    /// Absolute expiration, Unix nanoseconds; `None` is permanent.
    pub expiration: Option<i64>,
    /// Value or children.
    pub kind: Kind,
}

/// What a node holds.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A key with its value.
    Value(Arc<str>),
    /// A directory with its children.
    Dir(Children),
}

impl Node {
    /// A new empty directory.
    pub fn dir(index: u64, expiration: Option<i64>) -> Node {
        Node {
            created: index,
            modified: index,
            expiration,
            kind: Kind::Dir(DirMap::new()),
        }
    }

    /// A new key.
    pub fn value(index: u64, value: Arc<str>, expiration: Option<i64>) -> Node {
        Node {
            created: index,
            modified: index,
            expiration,
            kind: Kind::Value(value),
        }
    }

    /// Whether this node is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    /// The children, when a directory.
    pub fn children(&self) -> Option<&Children> {
        match &self.kind {
            Kind::Dir(c) => Some(c),
            Kind::Value(_) => None,
        }
    }

    /// The value, when a key.
    pub fn value_str(&self) -> Option<&Arc<str>> {
        match &self.kind {
            Kind::Value(v) => Some(v),
            Kind::Dir(_) => None,
        }
    }
}

/// Directories with more children than this are dropped by their map itself.
///
/// The iterative teardown below must look at every child, and it cannot
/// tell whether the map's insides are shared with a newer version of the
/// tree (then nothing below is freed): doing it for a large directory
/// would cost a walk over all its children on every write into it. Large
/// directories therefore recurse one level each; the threads that can drop
/// a tree have stacks sized for that ([`STACK_BYTES`]).
pub const ITERATIVE_DROP_MAX_CHILDREN: usize = 16;

/// Stack size of every thread that may drop the last reference to a tree
/// version (runtime workers, the writer, the snapshot thread, the command
/// line). Reserved, not committed: only what a drop uses is touched.
pub const STACK_BYTES: usize = 64 << 20;

impl Drop for Node {
    // Dropping a deep tree must not recurse once per level: move the
    // children of every small directory we own alone onto an explicit
    // stack.
    fn drop(&mut self) {
        let Kind::Dir(children) = &mut self.kind else {
            return;
        };
        if children.is_empty() || children.len() > ITERATIVE_DROP_MAX_CHILDREN {
            return;
        }
        let mut stack = vec![std::mem::take(children)];
        while let Some(map) = stack.pop() {
            // The map's nodes may be shared with a newer version: take our
            // own references first, drop the map, then unwrap the children
            // we alone hold (else the last reference would drop inside the
            // map's drop, recursing once per level).
            let kids: Vec<Arc<Node>> = map.iter().map(|(_, c)| c.clone()).collect();
            drop(map);
            for child in kids {
                if let Ok(mut node) = Arc::try_unwrap(child) {
                    if let Kind::Dir(c) = &mut node.kind {
                        if !c.is_empty() && c.len() <= ITERATIVE_DROP_MAX_CHILDREN {
                            stack.push(std::mem::take(c));
                        }
                    }
                }
            }
        }
    }
}

/// Iterates over the components of a canonical key (`"/"` has none).
pub fn components(key: &str) -> impl Iterator<Item = &str> {
    key.split('/').filter(|s| !s.is_empty())
}

/// Whether a name is hidden from listings (`_name`).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_')
}

/// The result of walking a path for reading.
pub enum Lookup<'a> {
    /// The node exists.
    Found(&'a Arc<Node>),
    /// Component missing; the cause is the path up to and including it.
    Missing(String),
    /// A key sits where a directory is needed; the cause is that key's path.
    NotDir(String),
}

/// Finds the node at `key` in the tree rooted at `root`, reporting errors the
/// way etcd's walk does.
pub fn lookup<'a>(root: &'a Arc<Node>, key: &str) -> Lookup<'a> {
    let mut cur = root;
    let mut end = 0usize; // byte offset in key of the path walked so far
    for comp in components(key) {
        let Some(children) = cur.children() else {
            let p = if end == 0 { "/" } else { &key[..end] };
            return Lookup::NotDir(p.to_string());
        };
        let start = comp.as_ptr() as usize - key.as_ptr() as usize;
        end = start + comp.len();
        match children.get(comp) {
            Some(c) => cur = c,
            None => return Lookup::Missing(key[..end].to_string()),
        }
    }
    Lookup::Found(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain deeper than any key a request can name (a 16 KiB target
    /// holds at most ~8,000 levels), of directories too large for the
    /// iterative teardown: dropping it recurses once per level and must
    /// fit in [`STACK_BYTES`] (debug build frames are the larger ones).
    #[test]
    fn a_deep_chain_of_large_directories_drops_within_the_stack() {
        let depth = 10_000;
        let t = std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let mut node = Node::dir(1, None);
                for _ in 0..depth {
                    let mut d = Node::dir(1, None);
                    if let Kind::Dir(c) = &mut d.kind {
                        for i in 0..ITERATIVE_DROP_MAX_CHILDREN {
                            c.insert(
                                Name::new(format!("k{i}")),
                                Arc::new(Node::value(1, Arc::from("v"), None)),
                            );
                        }
                        c.insert(Name::new("next"), Arc::new(node));
                    }
                    node = d;
                }
                drop(node);
            })
            .unwrap();
        t.join().unwrap();
    }
}
