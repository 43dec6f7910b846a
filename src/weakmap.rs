//! A map of values shared while something holds them: `get_or_make`
//! hands out the live value for a key, or makes one. Entries whose value
//! nobody holds any more are pruned as the map grows, so it stays about
//! the size of what is in use.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// See the module documentation.
pub struct WeakMap<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    map: HashMap<K, Weak<V>>,
    prune_at: usize,
}

impl<K, V> Default for WeakMap<K, V> {
    fn default() -> Self {
        WeakMap {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                prune_at: 0,
            }),
        }
    }
}

impl<K: Hash + Eq, V> WeakMap<K, V> {
    /// The live value for `key`, or a new one from `make` (called without
    /// the lock held, so a slow `make` does not stall other keys).
    pub fn get_or_make(&self, key: &K, make: impl FnOnce() -> V) -> Arc<V>
    where
        K: Clone,
    {
        let lock = || self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = lock().map.get(key).and_then(Weak::upgrade) {
            return v;
        }
        let made = Arc::new(make());
        let mut inner = lock();
        if let Some(v) = inner.map.get(key).and_then(Weak::upgrade) {
            return v;
        }
        if inner.map.len() >= inner.prune_at {
            inner.map.retain(|_, w| w.strong_count() > 0);
            inner.prune_at = (inner.map.len() * 2).max(1024);
        }
        inner.map.insert(key.clone(), Arc::downgrade(&made));
        made
    }
}

impl<K, V> WeakMap<K, V> {
    /// The values held now.
    pub fn live(&self) -> Vec<Arc<V>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map.values().filter_map(Weak::upgrade).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_while_held_and_makes_anew_after() {
        let m: WeakMap<u32, String> = WeakMap::default();
        let a = m.get_or_make(&1, || "a".into());
        let b = m.get_or_make(&1, || unreachable!("a is still held"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*m.get_or_make(&2, || "c".into()), "c");
        drop((a, b));
        assert_eq!(*m.get_or_make(&1, || "new".into()), "new");
    }

    #[test]
    fn dead_entries_are_pruned() {
        let m: WeakMap<u32, u32> = WeakMap::default();
        for i in 0..10_000 {
            drop(m.get_or_make(&i, || i));
        }
        let kept = m.inner.lock().unwrap().map.len();
        assert!(kept <= 2048, "{kept} entries kept for nothing held");
    }
}
