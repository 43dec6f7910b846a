//! The children of a directory: a persistent B+ tree with narrow nodes.
//!
//! Every write copies the nodes on the path to the changed entry (the
//! published version of the tree keeps the old ones), and copying a node
//! clones each of its entries, which increments each child's reference
//! count: an atomic increment apiece, most of the copy's cost (reading
//! the counts into the cache first did not make it cheaper). Nodes are
//! therefore narrow ([`MAX`] entries): a write into a directory of 300,000 keys copies about
//! 40 entries with 16-entry nodes, where a 64-wide B-tree that also keeps
//! entries in its inner nodes copies about 200. 8-entry nodes copy fewer
//! still (more levels, fewer entries each): durable PUTs of random keys at
//! 64 connections gained 2-3% over 16 (two paired runs), for about 15% more
//! memory in a directory of a million keys (a process building that tree
//! peaked at 176 MiB, against 153 MiB with 16-entry nodes).
//!
//! Leaves hold the entries, sorted by name; inner nodes hold their
//! children, each with a lower bound of its names (the smallest name it
//! held when the bound was set). A node that overflows splits in two; a
//! removal merges a node that falls under [`MIN`] with a neighbour (or
//! shares their entries evenly) and drops empty nodes.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use super::tree::{Name, Node};

/// Entries per node, at most.
const MAX: usize = 8;
/// Entries per node (the root excepted) below which a removal merges or
/// rebalances the node with a neighbour.
const MIN: usize = MAX / 4;

type Entry = (Name, Arc<Node>);
type Link = (Name, Arc<BNode>);
/// A node's entries, inline (one allocation per node), with room for the
/// entry that overflows it before it splits.
type Entries<T> = SmallVec<[T; MAX + 1]>;

#[derive(Clone)]
enum BNode {
    Leaf(Entries<Entry>),
    Inner(Entries<Link>),
}

impl BNode {
    fn len(&self) -> usize {
        match self {
            BNode::Leaf(e) => e.len(),
            BNode::Inner(c) => c.len(),
        }
    }
}

/// Where `key` belongs among an inner node's children.
fn child_index(links: &[Link], key: &str) -> usize {
    links
        .partition_point(|(bound, _)| bound.as_str() <= key)
        .saturating_sub(1)
}

fn search(entries: &[Entry], key: &str) -> Result<usize, usize> {
    entries.binary_search_by(|(name, _)| name.as_str().cmp(key))
}

/// Splits a node that overflowed. Appending at the end keeps the left part
/// full, so names that arrive in order (a snapshot being loaded, in-order
/// keys) fill their nodes.
fn split<T>(v: &mut Entries<T>, appended: bool) -> Entries<T> {
    let at = if appended { MAX } else { v.len() / 2 };
    v.drain(at..).collect()
}

/// A directory's children, sorted by name. Cloning is O(1); the clone and
/// the original then share every node until one of them writes.
#[derive(Clone, Default)]
pub struct DirMap {
    root: Option<Arc<BNode>>,
    len: usize,
}

impl DirMap {
    /// An empty map.
    pub fn new() -> DirMap {
        DirMap::default()
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The child named `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<Node>> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                BNode::Inner(links) => node = &links[child_index(links, key)].1,
                BNode::Leaf(entries) => {
                    return search(entries, key).ok().map(|i| &entries[i].1);
                }
            }
        }
    }

    /// The child named `key`, made writable in this version (the nodes on
    /// its path are copied if they are shared).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Arc<Node>> {
        // Absent: leave the shared nodes alone.
        self.get(key)?;
        self.get_mut_present(key)
    }

    /// [`DirMap::get_mut`] for a key known to be present.
    fn get_mut_present(&mut self, key: &str) -> Option<&mut Arc<Node>> {
        let mut node = self.root.as_mut()?;
        loop {
            match Arc::make_mut(node) {
                BNode::Inner(links) => {
                    let i = child_index(links, key);
                    node = &mut links[i].1;
                }
                BNode::Leaf(entries) => {
                    let i = search(entries, key).ok()?;
                    return Some(&mut entries[i].1);
                }
            }
        }
    }

    /// The child named `key`, inserted from `make` first if missing.
    pub fn get_or_insert_with(
        &mut self,
        key: &str,
        make: impl FnOnce() -> Arc<Node>,
    ) -> &mut Arc<Node> {
        if self.get(key).is_none() {
            self.insert(Name::new(key), make());
        }
        self.get_mut_present(key).expect("present")
    }

    /// Inserts or replaces; returns the child it replaced.
    pub fn insert(&mut self, key: Name, value: Arc<Node>) -> Option<Arc<Node>> {
        match self.try_insert(key, |_| Ok::<_, std::convert::Infallible>(value)) {
            Ok(old) => old,
            Err(never) => match never {},
        }
    }

    /// Inserts the child that `admit` makes from the one it would replace
    /// (if any), in one walk; returns the replaced child. When `admit`
    /// refuses, the map holds what it held (the nodes on the path may have
    /// been copied).
    pub fn try_insert<E>(
        &mut self,
        key: Name,
        admit: impl FnOnce(Option<&Arc<Node>>) -> Result<Arc<Node>, E>,
    ) -> Result<Option<Arc<Node>>, E> {
        let Some(root) = &mut self.root else {
            let mut leaf = Entries::new();
            leaf.push((key, admit(None)?));
            self.root = Some(Arc::new(BNode::Leaf(leaf)));
            self.len = 1;
            return Ok(None);
        };
        let (old, split) = insert_into(root, key, admit)?;
        if let Some((bound, right)) = split {
            let left = self.root.take().expect("root present");
            let left_bound = first_name(&left);
            let mut links = Entries::new();
            links.push((left_bound, left));
            links.push((bound, right));
            self.root = Some(Arc::new(BNode::Inner(links)));
        }
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    /// Removes the child named `key`; returns it.
    pub fn remove(&mut self, key: &str) -> Option<Arc<Node>> {
        // Absent: leave the shared nodes alone.
        self.get(key)?;
        let root = self.root.as_mut()?;
        let old = remove_from(root, key)?;
        self.len -= 1;
        // Shrink the root: an inner node with one child gives way to it.
        loop {
            let only = match self.root.as_deref() {
                Some(BNode::Inner(links)) if links.len() == 1 => links[0].1.clone(),
                Some(node) if node.len() == 0 => {
                    self.root = None;
                    break;
                }
                _ => break,
            };
            self.root = Some(only);
        }
        Some(old)
    }

    /// The children in name order (reversible).
    pub fn iter(&self) -> Iter<'_> {
        let mut it = Iter {
            front: SmallVec::new(),
            back: SmallVec::new(),
            remaining: self.len,
        };
        if let Some(root) = self.root.as_deref() {
            it.front.push(Cursor::at(root, 0));
            it.back.push(Cursor::at(root, root.len()));
        }
        it
    }

    #[cfg(test)]
    fn check(&self) -> usize {
        fn walk(node: &BNode, lo: Option<&str>, is_root: bool, depth: usize) -> (usize, usize) {
            // Splits of appended names may leave a right node with one
            // entry; removals merge nodes under MIN and drop empty ones.
            assert!(node.len() <= MAX, "node over MAX");
            assert!(node.len() >= 1, "empty node kept");
            match node {
                BNode::Leaf(e) => {
                    for w in e.windows(2) {
                        assert!(w[0].0 < w[1].0, "leaf unsorted");
                    }
                    if let (Some(lo), Some(first)) = (lo, e.first()) {
                        assert!(lo <= first.0.as_str(), "name below its bound");
                    }
                    (e.len(), depth)
                }
                BNode::Inner(c) => {
                    assert!(!is_root || c.len() >= 2, "root with one child");
                    let mut n = 0;
                    let mut leaf_depth = None;
                    for (i, (bound, child)) in c.iter().enumerate() {
                        let (k, d) = walk(child, Some(bound), false, depth + 1);
                        assert!(
                            *leaf_depth.get_or_insert(d) == d,
                            "leaves at different depths"
                        );
                        n += k;
                        if let Some((next, _)) = c.get(i + 1) {
                            assert!(bound < next, "bounds unsorted");
                            let sub = DirMap {
                                root: Some(child.clone()),
                                len: k,
                            };
                            let last = sub.iter().next_back().expect("child not empty");
                            assert!(last.0 < next, "name at or above the next bound");
                        }
                    }
                    (n, leaf_depth.unwrap_or(depth))
                }
            }
        }
        match &self.root {
            None => 0,
            Some(r) => {
                assert!(r.len() > 0, "empty root kept");
                walk(r, None, true, 0).0
            }
        }
    }
}

fn first_name(node: &BNode) -> Name {
    match node {
        BNode::Leaf(e) => e[0].0.clone(),
        BNode::Inner(c) => c[0].0.clone(),
    }
}

/// Inserts below `node`; returns the replaced child and, if `node` split,
/// the new right sibling with its bound.
fn insert_into<E>(
    node: &mut Arc<BNode>,
    key: Name,
    admit: impl FnOnce(Option<&Arc<Node>>) -> Result<Arc<Node>, E>,
) -> Result<(Option<Arc<Node>>, Option<Link>), E> {
    match Arc::make_mut(node) {
        BNode::Leaf(entries) => match search(entries, &key) {
            Ok(i) => {
                let value = admit(Some(&entries[i].1))?;
                Ok((Some(std::mem::replace(&mut entries[i].1, value)), None))
            }
            Err(i) => {
                entries.insert(i, (key, admit(None)?));
                if entries.len() <= MAX {
                    return Ok((None, None));
                }
                let right = split(entries, i == MAX);
                let bound = right[0].0.clone();
                Ok((None, Some((bound, Arc::new(BNode::Leaf(right))))))
            }
        },
        BNode::Inner(links) => {
            let i = child_index(links, &key);
            // Only the first child: a new smallest name (set once admitted).
            let lower = (key.as_str() < links[i].0.as_str()).then(|| key.clone());
            let (old, split_child) = insert_into(&mut links[i].1, key, admit)?;
            if let Some(lower) = lower {
                links[i].0 = lower;
            }
            let Some(link) = split_child else {
                return Ok((old, None));
            };
            links.insert(i + 1, link);
            if links.len() <= MAX {
                return Ok((old, None));
            }
            let right = split(links, i + 1 == MAX);
            let bound = right[0].0.clone();
            Ok((old, Some((bound, Arc::new(BNode::Inner(right))))))
        }
    }
}

/// Removes `key` (present) below `node`, dropping children left empty and
/// rebalancing those that fall under [`MIN`].
fn remove_from(node: &mut Arc<BNode>, key: &str) -> Option<Arc<Node>> {
    match Arc::make_mut(node) {
        BNode::Leaf(entries) => {
            let i = search(entries, key).ok()?;
            Some(entries.remove(i).1)
        }
        BNode::Inner(links) => {
            let i = child_index(links, key);
            let old = remove_from(&mut links[i].1, key);
            if links[i].1.len() == 0 {
                // Bounds are lower bounds: the next child may take over.
                links.remove(i);
            } else if links[i].1.len() < MIN && links.len() > 1 {
                rebalance(links, i);
            }
            old
        }
    }
}

/// Merges the child at `i` with a neighbour, or shares their entries
/// evenly when together they would overflow.
fn rebalance(links: &mut Entries<Link>, i: usize) {
    let l = if i > 0 { i - 1 } else { i };
    let (right_bound, right) = links.remove(l + 1);
    let left = Arc::make_mut(&mut links[l].1);
    let right = Arc::unwrap_or_clone(right);
    match (left, right) {
        (BNode::Leaf(a), BNode::Leaf(b)) => {
            a.extend(b);
            if a.len() > MAX {
                let b = split(a, false);
                let bound = b[0].0.clone();
                links.insert(l + 1, (bound, Arc::new(BNode::Leaf(b))));
            }
        }
        (BNode::Inner(a), BNode::Inner(mut b)) => {
            // The right node's first bound may be stale-low; its own bound
            // in the parent is what separates it from the left node.
            b[0].0 = right_bound;
            a.extend(b);
            if a.len() > MAX {
                let b = split(a, false);
                let bound = b[0].0.clone();
                links.insert(l + 1, (bound, Arc::new(BNode::Inner(b))));
            }
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}

/// A position in one node: the next entry to yield forward is `pos`, and
/// backward `pos - 1`.
struct Cursor<'a> {
    node: &'a BNode,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at(node: &'a BNode, pos: usize) -> Self {
        Cursor { node, pos }
    }
}

/// Iterator over a [`DirMap`], in name order or (from the back) reverse.
pub struct Iter<'a> {
    front: SmallVec<[Cursor<'a>; 4]>,
    back: SmallVec<[Cursor<'a>; 4]>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Name, &'a Arc<Node>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            let top = self.front.last_mut()?;
            match top.node {
                BNode::Leaf(e) => {
                    if let Some((name, node)) = e.get(top.pos) {
                        top.pos += 1;
                        self.remaining -= 1;
                        return Some((name, node));
                    }
                    self.front.pop();
                }
                BNode::Inner(c) => match c.get(top.pos) {
                    Some((_, child)) => {
                        top.pos += 1;
                        self.front.push(Cursor::at(child, 0));
                    }
                    None => {
                        self.front.pop();
                    }
                },
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            let top = self.back.last_mut()?;
            if top.pos == 0 {
                self.back.pop();
                continue;
            }
            top.pos -= 1;
            match top.node {
                BNode::Leaf(e) => {
                    let (name, node) = &e[top.pos];
                    self.remaining -= 1;
                    return Some((name, node));
                }
                BNode::Inner(c) => {
                    let child = &*c[top.pos].1;
                    self.back.push(Cursor::at(child, child.len()));
                }
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl fmt::Debug for DirMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn node(id: u64) -> Arc<Node> {
        Arc::new(Node::value(id, Arc::from(""), None))
    }

    fn ids(m: &DirMap) -> Vec<(String, u64)> {
        m.iter().map(|(k, v)| (k.to_string(), v.created)).collect()
    }

    /// xorshift64*: reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn check_against(m: &DirMap, model: &BTreeMap<String, u64>) {
        assert_eq!(m.check(), model.len());
        assert_eq!(m.len(), model.len());
        let want: Vec<(String, u64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(ids(m), want);
        let mut rev: Vec<(String, u64)> = m
            .iter()
            .rev()
            .map(|(k, v)| (k.to_string(), v.created))
            .collect();
        rev.reverse();
        assert_eq!(rev, want);
    }

    /// Random inserts, replacements, removals, lookups and writes through
    /// `get_mut`, against a `BTreeMap`, over small and large name spaces;
    /// every old version kept stays exactly as it was.
    #[test]
    fn behaves_as_an_ordered_map_and_keeps_old_versions() {
        for (seed, space, ops) in [(1u64, 40u64, 4000), (2, 400, 20000), (3, 100_000, 30000)] {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut m = DirMap::new();
            let mut model = BTreeMap::new();
            let mut kept: Vec<(DirMap, BTreeMap<String, u64>)> = Vec::new();
            for step in 0..ops {
                let k = format!("k{}", rng.below(space));
                let id = step as u64 + 1;
                match rng.below(10) {
                    0..=3 => {
                        let old = m.insert(Name::new(&k), node(id)).map(|n| n.created);
                        assert_eq!(old, model.insert(k.clone(), id), "insert {k}");
                    }
                    4 => {
                        // Refused half the time, whether the name is there
                        // or not (a refused new smallest name moves no bound).
                        let refuse = rng.below(2) == 0;
                        let seen = std::cell::Cell::new(None);
                        let got = m.try_insert(Name::new(&k), |old| {
                            seen.set(Some(old.map(|n| n.created)));
                            if refuse {
                                Err("refused")
                            } else {
                                Ok(node(id))
                            }
                        });
                        assert_eq!(seen.get(), Some(model.get(&k).copied()), "admit {k}");
                        if refuse {
                            assert_eq!(got.err(), Some("refused"));
                        } else {
                            let old = got.expect("admitted").map(|n| n.created);
                            assert_eq!(old, model.insert(k.clone(), id), "try_insert {k}");
                        }
                    }
                    5..=7 => {
                        let old = m.remove(&k).map(|n| n.created);
                        assert_eq!(old, model.remove(&k), "remove {k}");
                    }
                    8 => {
                        let got = m.get_mut(&k).map(|n| {
                            Arc::make_mut(n).created = id;
                        });
                        if got.is_some() {
                            model.insert(k.clone(), id);
                        }
                        assert_eq!(got.is_some(), model.contains_key(&k));
                    }
                    _ => {
                        let got = m.get(&k).map(|n| n.created);
                        assert_eq!(got, model.get(&k).copied(), "get {k}");
                    }
                }
                if step % 97 == 0 {
                    check_against(&m, &model);
                    kept.push((m.clone(), model.clone()));
                }
            }
            check_against(&m, &model);
            // Remove everything, in random order, down to the empty map.
            let mut names: Vec<String> = model.keys().cloned().collect();
            while !names.is_empty() {
                let k = names.swap_remove(rng.below(names.len() as u64) as usize);
                assert!(m.remove(&k).is_some());
                model.remove(&k);
                if names.len().is_multiple_of(13) {
                    check_against(&m, &model);
                }
            }
            assert!(m.is_empty() && m.root.is_none());
            for (old, old_model) in &kept {
                check_against(old, old_model);
            }
        }
    }

    /// Both ends of one iterator meet without yielding an entry twice.
    #[test]
    fn iterating_from_both_ends_yields_each_entry_once() {
        let mut m = DirMap::new();
        for i in 0..1000u64 {
            m.insert(Name::new(format!("{i:04}")), node(i));
        }
        for split in [0, 1, 17, 500, 999, 1000] {
            let mut it = m.iter();
            let front: Vec<u64> = it.by_ref().take(split).map(|(_, v)| v.created).collect();
            let back: Vec<u64> = it.rev().map(|(_, v)| v.created).collect();
            assert_eq!(front, (0..split as u64).collect::<Vec<_>>());
            assert_eq!(back, (split as u64..1000).rev().collect::<Vec<_>>());
        }
    }

    /// Names that arrive in order (a snapshot loading) fill their nodes.
    #[test]
    fn names_in_order_fill_their_nodes() {
        let mut m = DirMap::new();
        let n = 100_000u64;
        for i in 0..n {
            m.insert(Name::new(format!("{i:08}")), node(i));
        }
        assert_eq!(m.check(), n as usize);
        fn leaves(node: &BNode) -> usize {
            match node {
                BNode::Leaf(_) => 1,
                BNode::Inner(c) => c.iter().map(|(_, c)| leaves(c)).sum(),
            }
        }
        let leaves = leaves(m.root.as_deref().unwrap());
        assert_eq!(leaves, (n as usize).div_ceil(MAX));
    }
}
