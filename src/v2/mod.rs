//! The etcd v2 protocol: request parsing, errors and JSON.

pub mod error;
pub mod json;
pub mod request;
