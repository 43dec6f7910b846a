//! etcd v2 errors: codes, messages, HTTP statuses and the JSON body.

use std::fmt;

/// An etcd v2 error as the keys API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdError {
    /// etcd's error code (100 key not found, 209 invalid field, ...).
    pub code: u16,
    /// The `cause` field; `None` leaves the field out, as etcd does.
    pub cause: Option<String>,
    /// The `index` field and `X-Etcd-Index`.
    pub index: u64,
}

/// Key not found.
pub const KEY_NOT_FOUND: u16 = 100;
/// Compare failed.
pub const TEST_FAILED: u16 = 101;
/// Not a file.
pub const NOT_FILE: u16 = 102;
/// Not a directory.
pub const NOT_DIR: u16 = 104;
/// Key already exists.
pub const NODE_EXIST: u16 = 105;
/// Root is read only.
pub const ROOT_RONLY: u16 = 107;
/// Directory not empty.
pub const DIR_NOT_EMPTY: u16 = 108;
/// The request requires user authentication.
pub const UNAUTHORIZED: u16 = 110;
/// PrevValue is Required in POST form.
pub const PREV_VALUE_REQUIRED: u16 = 201;
/// The given TTL in POST form is not a number.
pub const TTL_NAN: u16 = 202;
/// The given index in POST form is not a number.
pub const INDEX_NAN: u16 = 203;
/// Invalid field.
pub const INVALID_FIELD: u16 = 209;
/// Invalid POST form.
pub const INVALID_FORM: u16 = 210;
/// Value provided on refresh.
pub const REFRESH_VALUE: u16 = 211;
/// A TTL must be provided on refresh.
pub const REFRESH_TTL_REQUIRED: u16 = 212;
/// Raft Internal Error (keygate: a failed commit).
pub const RAFT_INTERNAL: u16 = 300;
/// The event in requested index is outdated and cleared.
pub const EVENT_INDEX_CLEARED: u16 = 401;

impl EtcdError {
    /// An error with a cause.
    pub fn new(code: u16, cause: impl Into<String>, index: u64) -> EtcdError {
        EtcdError {
            code,
            cause: Some(cause.into()),
            index,
        }
    }

    /// A request (parse) error: index 0, as etcd reports them.
    pub fn request(code: u16, cause: impl Into<String>) -> EtcdError {
        EtcdError::new(code, cause, 0)
    }

    /// etcd's message for the code.
    pub fn message(&self) -> &'static str {
        message(self.code)
    }

    /// The HTTP status etcd answers with.
    pub fn status(&self) -> u16 {
        match self.code {
            KEY_NOT_FOUND => 404,
            NOT_FILE | DIR_NOT_EMPTY => 403,
            UNAUTHORIZED => 401,
            TEST_FAILED | NODE_EXIST => 412,
            RAFT_INTERNAL | 301 => 500,
            _ => 400,
        }
    }

    /// The JSON body, newline-terminated as Go's encoder writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b"{\"errorCode\":");
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.extend_from_slice(b",\"message\":");
        crate::v2::json::write_str(&mut out, self.message());
        if let Some(cause) = &self.cause {
            if !cause.is_empty() {
                out.extend_from_slice(b",\"cause\":");
                crate::v2::json::write_str(&mut out, cause);
            }
        }
        out.extend_from_slice(b",\"index\":");
        out.extend_from_slice(self.index.to_string().as_bytes());
        out.extend_from_slice(b"}\n");
        out
    }
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code)?;
        if let Some(c) = &self.cause {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EtcdError {}

/// etcd's message for an error code.
pub fn message(code: u16) -> &'static str {
    match code {
        100 => "Key not found",
        101 => "Compare failed",
        102 => "Not a file",
        103 => "Reached the max number of peers in the cluster",
        104 => "Not a directory",
        105 => "Key already exists",
        106 => "The prefix of given key is a keyword in etcd",
        107 => "Root is read only",
        108 => "Directory not empty",
        109 => "Peer address has existed",
        110 => "The request requires user authentication",
        200 => "Value is Required in POST form",
        201 => "PrevValue is Required in POST form",
        202 => "The given TTL in POST form is not a number",
        203 => "The given index in POST form is not a number",
        204 => "Value or TTL is required in POST form",
        205 => "The given timeout in POST form is not a number",
        206 => "Name is required in POST form",
        207 => "Index or value is required",
        208 => "Index and value cannot both be specified",
        209 => "Invalid field",
        210 => "Invalid POST form",
        211 => "Value provided on refresh",
        212 => "A TTL must be provided on refresh",
        300 => "Raft Internal Error",
        301 => "During Leader Election",
        400 => "watcher is cleared due to etcd recovery",
        401 => "The event in requested index is outdated and cleared",
        500 => "Client Internal Error",
        _ => "Unknown error",
    }
}
