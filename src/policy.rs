//! Authorization: the only place that can turn a parsed request into a
//! [`Permitted`] one, which is what the backend takes.

use crate::identity::Identity;
use crate::v2::request::KeysRequest;

/// A request the policy allowed. Only this module can build one, so no
/// code path reaches a backend without a decision.
#[derive(Debug)]
pub struct Permitted<T> {
    inner: T,
}

impl<T> Permitted<T> {
    /// The allowed request.
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// Takes the allowed request apart.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// The decision on a keys request.
#[derive(Debug)]
pub enum Decision {
    /// Allowed.
    Allow(Permitted<KeysRequest>),
    /// Denied (403, errorCode 110).
    Deny,
}

/// The access policy.
///
/// Access control by roles is not enforced yet: every verified client has
/// full access, and `serve` says so at WARN level.
#[derive(Debug, Default)]
pub struct Policy {
    _private: (),
}

impl Policy {
    /// The policy that allows every verified client everything.
    pub fn allow_all() -> Policy {
        Policy { _private: () }
    }

    /// Decides a keys request for a client.
    pub fn decide(&self, _client: &Identity, req: KeysRequest) -> Decision {
        Decision::Allow(Permitted { inner: req })
    }

    /// Whether the client may read `/v2/stats/*`.
    pub fn may_read_stats(&self, _client: &Identity) -> bool {
        true
    }
}
