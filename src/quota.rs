//! Per-identity limits (SPEC §6): how many connections and how many
//! watches one client certificate may hold at once, so that teams sharing
//! a keygate cannot take each other's share of `max_connections`.
//!
//! An identity here is a leaf certificate (its SHA-256): the connections
//! that present it share one [`Usage`], whatever intermediates they send.
//! A slot is taken with a compare-and-swap (never over the limit, not even
//! for a moment) and given back when its [`Held`] is dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::weakmap::WeakMap;

/// What one identity holds now.
#[derive(Default, Debug)]
pub struct Usage {
    connections: AtomicUsize,
    watches: AtomicUsize,
}

impl Usage {
    /// Connections past their handshake, counted against the limit.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Watches in progress.
    pub fn watches(&self) -> usize {
        self.watches.load(Ordering::Relaxed)
    }

    fn counter(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Connection => &self.connections,
            Kind::Watch => &self.watches,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connection,
    Watch,
}

/// A connection or a watch counted against its identity's limit until
/// dropped.
#[derive(Debug)]
pub struct Held {
    usage: Arc<Usage>,
    kind: Kind,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.usage
            .counter(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The per-identity limits, the live usage of each identity, and how many
/// times each limit refused.
pub struct Quotas {
    /// `server.max_connections_per_identity`.
    pub max_connections: usize,
    /// `server.max_watches_per_identity`.
    pub max_watches: usize,
    usages: WeakMap<String, Usage>,
    /// Connections refused by `max_connections_per_identity`.
    pub refused_connections: AtomicU64,
    /// Watches refused by `max_watches_per_identity`.
    pub refused_watches: AtomicU64,
}

impl Quotas {
    /// Limits of `max_connections` and `max_watches` per identity.
    pub fn new(max_connections: usize, max_watches: usize) -> Quotas {
        Quotas {
            max_connections,
            max_watches,
            usages: WeakMap::default(),
            refused_connections: AtomicU64::new(0),
            refused_watches: AtomicU64::new(0),
        }
    }

    /// The usage shared by every connection presenting the leaf with this
    /// fingerprint.
    pub fn usage(&self, fingerprint: &str) -> Arc<Usage> {
        self.usages
            .get_or_make(&fingerprint.to_string(), Usage::default)
    }

    /// A connection slot for `usage`, or `None` (counted) at the limit.
    pub fn connection(&self, usage: &Arc<Usage>) -> Option<Held> {
        self.take(usage, Kind::Connection, self.max_connections)
            .or_else(|| {
                self.refused_connections.fetch_add(1, Ordering::Relaxed);
                None
            })
    }

    /// A watch slot for `usage`, or `None` (counted) at the limit.
    pub fn watch(&self, usage: &Arc<Usage>) -> Option<Held> {
        self.take(usage, Kind::Watch, self.max_watches).or_else(|| {
            self.refused_watches.fetch_add(1, Ordering::Relaxed);
            None
        })
    }

    fn take(&self, usage: &Arc<Usage>, kind: Kind, max: usize) -> Option<Held> {
        usage
            .counter(kind)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Held {
            usage: usage.clone(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_refused_at_the_limit_and_come_back_when_dropped() {
        let q = Quotas::new(2, 1);
        let a = q.usage("aa");
        let c1 = q.connection(&a).unwrap();
        let _c2 = q.connection(&a).unwrap();
        assert!(q.connection(&a).is_none());
        assert_eq!(q.refused_connections.load(Ordering::Relaxed), 1);
        // Another identity has its own share.
        let b = q.usage("bb");
        assert!(q.connection(&b).is_some());
        // The same fingerprint is the same identity.
        assert_eq!(q.usage("aa").connections(), 2);
        drop(c1);
        assert_eq!(a.connections(), 1);
        assert!(q.connection(&a).is_some());
        // Watches are counted apart from connections.
        let w = q.watch(&a).unwrap();
        assert!(q.watch(&a).is_none());
        assert_eq!(q.refused_watches.load(Ordering::Relaxed), 1);
        drop(w);
        assert_eq!(a.watches(), 0);
        assert!(q.watch(&a).is_some());
    }

    #[test]
    fn a_limit_of_zero_refuses_everything() {
        let q = Quotas::new(0, 0);
        let a = q.usage("aa");
        assert!(q.connection(&a).is_none());
        assert!(q.watch(&a).is_none());
    }
}
