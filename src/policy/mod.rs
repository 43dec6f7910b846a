//! Authorization: which roles a certificate has, what they allow, and the
//! only place that can turn a parsed request into a [`Permitted`] one —
//! which is what the backend takes.
//!
//! Decisions cost O(depth of the key) hash lookups, whatever the number of
//! rules: every ancestor of the key is looked up in a map of prefixes.

pub mod glob;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::config::{Bind, Config, Role};
use crate::identity::Identity;
use crate::v2::request::{KeysMethod, KeysRequest};
use glob::Glob;

/// What granted a prefix: the role and the bind that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Role name.
    pub role: String,
    /// Index of the `[[bind]]` in the config.
    pub bind: usize,
}

/// A set of canonical prefixes with what granted each.
#[derive(Clone, Debug, Default)]
pub struct PrefixSet {
    map: HashMap<String, Origin, BuildHasherDefault<Fnv>>,
    sorted: BTreeSet<String>,
    /// Bit `d` is set when a prefix has `d` segments (bit 63: 63 or more),
    /// so that a lookup skips the ancestors no prefix can match.
    depths: u64,
}

/// FNV-1a. The map holds only prefixes from the configuration and is
/// never filled from requests, so keys a client chooses cannot crowd a
/// bucket; a keyed hash would cost more than the lookups it guards.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Segments of a canonical key (`"/"` has none).
fn depth(key: &str) -> usize {
    if key == "/" {
        0
    } else {
        key.bytes().filter(|b| *b == b'/').count()
    }
}

fn depth_bit(d: usize) -> u64 {
    1 << d.min(63)
}

/// The ancestors of a canonical key, longest first, the key included.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(key);
    std::iter::from_fn(move || {
        let cur = next?;
        next = if cur == "/" {
            None
        } else {
            match cur.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&cur[..i]),
                None => None,
            }
        };
        Some(cur)
    })
}

/// `a` is `b` or lies below it (segment-wise).
pub fn covers(prefix: &str, key: &str) -> bool {
    prefix == "/"
        || key == prefix
        || (key.len() > prefix.len()
            && key.starts_with(prefix)
            && key.as_bytes()[prefix.len()] == b'/')
}

impl PrefixSet {
    fn insert(&mut self, prefix: &str, origin: Origin) {
        // Ties between roles: the first role name wins (roles are visited
        // in name order).
        if !self.map.contains_key(prefix) {
            self.map.insert(prefix.to_string(), origin);
            self.sorted.insert(prefix.to_string());
            self.depths |= depth_bit(depth(prefix));
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The longest prefix covering `key`, with what granted it.
    pub fn covering(&self, key: &str) -> Option<(&str, &Origin)> {
        let mut d = depth(key);
        for a in ancestors(key) {
            if self.depths & depth_bit(d) != 0 {
                if let Some((k, o)) = self.map.get_key_value(a) {
                    return Some((k.as_str(), o));
                }
            }
            d = d.saturating_sub(1);
        }
        None
    }

    /// Whether some prefix lies strictly below `key`.
    pub fn has_below(&self, key: &str) -> bool {
        self.below(key).next().is_some()
    }

    /// The prefixes strictly below `key`, sorted.
    pub fn below<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        let start = if key == "/" {
            "/".to_string()
        } else {
            format!("{key}/")
        };
        let root = key == "/";
        self.sorted
            .range(start.clone()..)
            .take_while(move |p| p.starts_with(&start))
            .filter(move |p| !root || p.as_str() != "/")
            .map(String::as_str)
    }

    /// Every read prefix of every role (what a store must watch for
    /// [`Grants::sees`]).
    pub fn all_read_prefixes(config: &Config) -> Vec<String> {
        let mut v: Vec<String> = config
            .roles
            .values()
            .flat_map(|r| r.read.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// All prefixes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.sorted.iter().map(|p| (p.as_str(), &self.map[p]))
    }
}

/// What a client may do: the union of the roles of every bind it matches.
#[derive(Debug, Default)]
pub struct Grants {
    /// Read prefixes.
    pub read: PrefixSet,
    /// Write prefixes.
    pub write: PrefixSet,
    /// May read `/v2/stats/*`, and the bind and role that granted it.
    pub admin: Option<Origin>,
    /// Indexes of the binds that matched.
    pub binds: Vec<usize>,
    /// Names of the roles granted.
    pub roles: BTreeSet<String>,
    root_view: std::sync::OnceLock<crate::store::event::ViewTrie>,
}

impl Grants {
    /// The read prefixes as a trie from the root (built once).
    pub fn view_trie(&self) -> &crate::store::event::ViewTrie {
        self.root_view.get_or_init(|| {
            crate::store::event::ViewTrie::new("/", self.read.iter().map(|(p, _)| p))
        })
    }

    /// Whether a watch may see event `e`: its key is readable, or it is
    /// the removal of a directory that was in the view just before (one of
    /// the client's read prefixes below it existed).
    pub fn sees(&self, e: &crate::store::event::Event) -> bool {
        use crate::store::event::Action;
        self.can_read(&e.node.key)
            || (matches!(e.action, Action::Delete | Action::Expire)
                && e.node.dir
                && e.removed_paths
                    .iter()
                    .any(|p| self.read.map.contains_key(p)))
    }

    /// Whether the client may read every key (a read prefix `/`).
    pub fn reads_all(&self) -> bool {
        self.read.covering("/").is_some()
    }

    /// Whether the client may read `key`.
    pub fn can_read(&self, key: &str) -> bool {
        self.read.covering(key).is_some()
    }

    /// Whether `key` is in or above the client's read view.
    pub fn can_traverse(&self, key: &str) -> bool {
        self.can_read(key) || self.read.has_below(key)
    }
}

struct CompiledBind {
    cn: Option<Glob>,
    ou: Option<Glob>,
    o: Option<Glob>,
    dns: Option<Glob>,
    uri: Option<Glob>,
    email: Option<Glob>,
    fingerprint: Option<String>,
    issuer: Option<String>,
    roles: Vec<String>,
}

fn any_match(g: &Option<Glob>, values: &[String]) -> bool {
    match g {
        None => true,
        Some(g) => values.iter().any(|v| g.matches(v)),
    }
}

impl CompiledBind {
    fn new(b: &Bind) -> CompiledBind {
        let g = |v: &Option<String>, dns: bool| v.as_deref().map(|p| Glob::new(p, dns));
        CompiledBind {
            cn: g(&b.cn, false),
            ou: g(&b.ou, false),
            o: g(&b.o, false),
            dns: g(&b.dns, true),
            uri: g(&b.uri, false),
            email: g(&b.email, false),
            fingerprint: b.fingerprint.clone(),
            issuer: b.issuer.clone(),
            roles: b.roles.clone(),
        }
    }

    fn matches(&self, id: &Identity) -> bool {
        let cn: Vec<String> = id.cn.iter().cloned().collect();
        any_match(&self.cn, &cn)
            && any_match(&self.ou, &id.ou)
            && any_match(&self.o, &id.o)
            && any_match(&self.dns, &id.dns)
            && any_match(&self.uri, &id.uris)
            && any_match(&self.email, &id.emails)
            && self
                .fingerprint
                .as_ref()
                .is_none_or(|f| *f == id.fingerprint)
            && self
                .issuer
                .as_ref()
                .is_none_or(|f| id.issuer.as_ref() == Some(f))
    }
}

/// How an allowed request was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Basis {
    /// A prefix covers the key.
    Prefix {
        /// The longest covering prefix.
        prefix: String,
        /// What granted it.
        origin: Origin,
    },
    /// A read of a directory above the client's view (answered filtered).
    Traverse,
}

/// A request the policy allowed. Only this module can build one, so no
/// code path reaches a backend without a decision.
pub struct Permitted<T> {
    inner: T,
    grants: Arc<Grants>,
    basis: Basis,
}

impl<T> Permitted<T> {
    /// The allowed request.
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// Why it was allowed.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }

    /// The client's grants (for filtering the answer).
    pub fn grants(&self) -> &Arc<Grants> {
        &self.grants
    }
}

impl Permitted<KeysRequest> {
    /// Moves the write's `value` and `prevValue` out, leaving them empty.
    /// No decision depends on them; the key, method and flags that it
    /// depends on stay as they were allowed.
    pub fn take_values(&mut self) -> (String, String) {
        (
            std::mem::take(&mut self.inner.value),
            std::mem::take(&mut self.inner.prev_value),
        )
    }
}

/// The decision on a keys request.
pub enum Decision {
    /// Allowed.
    Allow(Permitted<KeysRequest>),
    /// Denied (403, errorCode 110).
    Deny(KeysRequest),
}

/// The compiled access policy.
pub struct Policy {
    binds: Vec<CompiledBind>,
    roles: BTreeMap<String, Role>,
    /// Grants already computed, by the identity they were computed for:
    /// the connections of one client share one `Grants` (computed once,
    /// and hot in the cache when an event is checked against many
    /// watchers).
    shared: crate::weakmap::WeakMap<Identity, Grants>,
}

impl Policy {
    /// Compiles the roles and binds of a configuration.
    pub fn new(config: &Config) -> Policy {
        Policy {
            binds: config.binds.iter().map(CompiledBind::new).collect(),
            roles: config.roles.clone(),
            shared: Default::default(),
        }
    }

    /// What a client may do, shared with the other connections of the
    /// same identity.
    pub fn shared_grants(&self, id: &Identity) -> Arc<Grants> {
        self.shared.get_or_make(id, || self.grants(id))
    }

    /// What a client may do.
    pub fn grants(&self, id: &Identity) -> Grants {
        let mut g = Grants::default();
        let mut roles: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, b) in self.binds.iter().enumerate() {
            if b.matches(id) {
                g.binds.push(i);
                for r in &b.roles {
                    roles.entry(r.as_str()).or_insert(i);
                }
            }
        }
        for (name, bind) in roles {
            let Some(role) = self.roles.get(name) else {
                continue;
            };
            let origin = Origin {
                role: name.to_string(),
                bind,
            };
            g.roles.insert(name.to_string());
            for p in &role.read {
                g.read.insert(p, origin.clone());
            }
            for p in &role.write {
                g.write.insert(p, origin.clone());
            }
            if role.admin && g.admin.is_none() {
                g.admin = Some(origin.clone());
            }
        }
        g
    }
}

/// Decides a keys request for a client with `grants`, under the policy
/// that made them (which the grants say: a reload swaps the policy and the
/// grants together, and a request needs only the grants).
pub fn decide(grants: &Arc<Grants>, req: KeysRequest) -> Decision {
    match decide_basis(grants, &req) {
        Some(basis) => Decision::Allow(Permitted {
            inner: req,
            grants: grants.clone(),
            basis,
        }),
        None => Decision::Deny(req),
    }
}

/// The decision rule of SPEC §3.2, without the request's answer.
pub fn decide_basis(grants: &Grants, req: &KeysRequest) -> Option<Basis> {
    let key = req.key.as_str();
    let method = req.method();
    if method.is_read() {
        if let Some((prefix, origin)) = grants.read.covering(key) {
            return Some(Basis::Prefix {
                prefix: prefix.to_string(),
                origin: origin.clone(),
            });
        }
        // Above the view: a listing (or a recursive watch) answered as if
        // the store held only the view.
        let watch = req.is_watch();
        if grants.read.has_below(key) && (!watch || req.recursive) {
            return Some(Basis::Traverse);
        }
        return None;
    }
    let (prefix, origin) = grants.write.covering(key)?;
    // A compare on the value is a read.
    if (method == KeysMethod::Put || method == KeysMethod::Delete)
        && !req.prev_value.is_empty()
        && !grants.can_read(key)
    {
        return None;
    }
    Some(Basis::Prefix {
        prefix: prefix.to_string(),
        origin: origin.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_longest_first() {
        let a: Vec<_> = ancestors("/a/b/c").collect();
        assert_eq!(a, ["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["/"]);
    }

    #[test]
    fn covering_is_the_longest_covering_prefix() {
        // Prefixes at several depths, some beyond the 63-segment mask bit.
        let deep = |n: usize| (0..n).map(|i| format!("/s{i}")).collect::<String>();
        let prefixes = vec![
            "/a".to_string(),
            "/a/b/c".to_string(),
            "/x/y".to_string(),
            deep(70),
            deep(64),
            deep(3),
        ];
        let mut s = PrefixSet::default();
        for p in &prefixes {
            s.insert(
                p,
                Origin {
                    role: p.clone(),
                    bind: 0,
                },
            );
        }
        let mut keys = vec!["/".to_string(), "/a".into(), "/ab".into(), "/x".into()];
        for n in [1, 2, 3, 4, 62, 63, 64, 65, 70, 71] {
            keys.push(deep(n));
            keys.push(format!("/a/b/c{}", deep(n)));
            keys.push(format!("/x/y{}", deep(n)));
        }
        for k in &keys {
            let want = prefixes
                .iter()
                .filter(|p| covers(p, k))
                .max_by_key(|p| p.len())
                .map(String::as_str);
            assert_eq!(s.covering(k).map(|c| c.0), want, "{k}");
        }
    }

    #[test]
    fn connections_of_one_identity_share_their_grants() {
        let config = Config::parse(
            std::path::Path::new("t.toml"),
            "[tls]\ncert='c'\nkey='k'\nclient_ca='ca'\n[backend]\ndata_dir='d'\n\
             [roles.a]\nread=['/a']\n[roles.b]\nread=['/b']\n\
             [[bind]]\ncn='alice'\nroles=['a']\n[[bind]]\ncn='bob'\nroles=['b']\n",
        )
        .unwrap();
        let policy = Policy::new(&config);
        let id = |cn: &str, fp: &str| Identity {
            cn: Some(cn.into()),
            fingerprint: fp.into(),
            ..Identity::default()
        };
        let a1 = policy.shared_grants(&id("alice", "01"));
        let a2 = policy.shared_grants(&id("alice", "01"));
        assert!(Arc::ptr_eq(&a1, &a2));
        // Another certificate, even with the same name, gets its own.
        let a3 = policy.shared_grants(&id("alice", "02"));
        assert!(!Arc::ptr_eq(&a1, &a3));
        let b = policy.shared_grants(&id("bob", "03"));
        assert!(b.can_read("/b/x") && !b.can_read("/a/x"));
        assert!(a1.can_read("/a/x") && !a1.can_read("/b/x"));
        // Once no connection holds them, they are computed afresh.
        let weak = Arc::downgrade(&a1);
        drop((a1, a2));
        assert!(weak.upgrade().is_none());
        assert!(policy.shared_grants(&id("alice", "01")).can_read("/a/x"));
    }

    #[test]
    fn prefix_sets() {
        let mut s = PrefixSet::default();
        let o = Origin {
            role: "r".into(),
            bind: 0,
        };
        s.insert("/team-a", o.clone());
        s.insert("/x/y/z", o);
        assert_eq!(s.covering("/team-a/k").map(|c| c.0), Some("/team-a"));
        assert_eq!(s.covering("/team-a").map(|c| c.0), Some("/team-a"));
        assert!(s.covering("/team-ab").is_none());
        assert!(s.covering("/").is_none());
        assert!(s.has_below("/"));
        assert!(s.has_below("/x"));
        assert!(s.has_below("/x/y"));
        assert!(!s.has_below("/x/y/z"));
        assert!(!s.has_below("/team"));
        assert!(covers("/", "/a"));
        assert!(!covers("/a", "/ab"));
    }
}
