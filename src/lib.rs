//! keygate: an etcd v2 gateway that admits only clients with a verified
//! certificate and serves the v2 keys API from its own store.
//!
//! The request path, in module order:
//! - [`server`]: TLS handshake ([`tls`]), the client's [`identity`] from its
//!   verified leaf, HTTP/1.1 ([`http1`]) and HTTP/2 (hyper);
//! - [`api`]: routing on the raw path, then for keys requests one parse
//!   ([`v2::request`]) → [`policy`] (which alone makes a
//!   [`policy::Permitted`] request) → the backend ([`store`]) → etcd's JSON
//!   ([`store::event`], [`v2::error`]);
//! - [`config`] reads the TOML file, [`cli`] the command line,
//!   [`devcerts`] makes development certificates.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod body;
pub mod cli;
pub mod config;
pub mod devcerts;
pub mod http1;
pub mod identity;
pub mod logwriter;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod quota;
pub mod reload;
pub mod server;
pub mod stop;
pub mod store;
pub mod tls;
pub mod v2;
pub mod weakmap;
