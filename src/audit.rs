//! The audit trail (SPEC §6): one line per decision, target
//! `keygate::audit`, and a `watch_end` line when a watch ends.
//!
//! The lines go through the log like every other line, but when the log
//! writes plain text or JSON to a file or pipe (not a terminal: no colours),
//! they are formatted here and handed straight to the log's buffer, in
//! exactly the format the log's formatter gives them (a test compares the
//! two). The general formatter went through `fmt::Debug` and styling for
//! every field: with audit on, GET at 64 connections served 0.78-0.83 of
//! the requests it served with audit off; formatted here, 0.91.
//!
//! Keys and certificate fields are escaped as the formatter escapes them
//! (quoted as Rust's `Debug` does in text, JSON strings in JSON), so no
//! input can start a line of its own.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// How the log writes its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `tracing-subscriber`'s default text lines, without colours.
    Text,
    /// `tracing-subscriber`'s JSON lines.
    Json,
}

static DIRECT: OnceLock<Format> = OnceLock::new();

/// Audit lines are formatted here, in `format`, from now on (set once, by
/// whoever installs the log's formatter with the same format and no
/// colours). Without it they go through `tracing`.
pub fn write_directly(format: Format) {
    let _ = DIRECT.set(format);
}

/// A field's value.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Uint(u64),
}

/// What an audit line says about one decision.
#[derive(Clone, Copy, Debug)]
pub struct Decision<'a> {
    /// The client certificate's common name ("" without one).
    pub cn: &'a str,
    /// Its first URI SAN ("" without one).
    pub uri: &'a str,
    /// The first 16 hex digits of its fingerprint.
    pub fingerprint: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The canonical key.
    pub key: &'a str,
    /// `recursive=true`.
    pub recursive: bool,
    /// `wait=true`.
    pub wait: bool,
    /// "allow" or "deny".
    pub decision: &'a str,
    /// The bind that decided (its index in the file), -1 for none.
    pub bind: i64,
    /// The role that decided, "" for none.
    pub role: &'a str,
    /// The prefix that decided, or "traverse", "" for none.
    pub prefix: &'a str,
    /// The answer's status.
    pub status: u16,
    /// Microseconds from the request (head and body read) to its answer:
    /// for a write, until it is durable; for a watch, until its headers.
    pub latency_us: u64,
}

impl Decision<'_> {
    fn fields(&self) -> [(&'static str, Value<'_>); 13] {
        [
            ("cn", Value::Str(self.cn)),
            ("uri", Value::Str(self.uri)),
            ("fingerprint", Value::Str(self.fingerprint)),
            ("method", Value::Str(self.method)),
            ("key", Value::Str(self.key)),
            ("recursive", Value::Bool(self.recursive)),
            ("wait", Value::Bool(self.wait)),
            ("decision", Value::Str(self.decision)),
            ("bind", Value::Int(self.bind)),
            ("role", Value::Str(self.role)),
            ("prefix", Value::Str(self.prefix)),
            ("status", Value::Uint(self.status.into())),
            ("latency_us", Value::Uint(self.latency_us)),
        ]
    }

    /// The line through `tracing`: fields a client controls are written
    /// with `Debug` in text (quoted, escaped) and as strings in JSON.
    fn trace(&self, json: bool) {
        macro_rules! line {
            ($fmt:tt) => {
                tracing::info!(
                    target: "keygate::audit",
                    cn = $fmt self.cn,
                    uri = $fmt self.uri,
                    fingerprint = self.fingerprint,
                    method = self.method,
                    key = $fmt self.key,
                    recursive = self.recursive,
                    wait = self.wait,
                    decision = self.decision,
                    bind = self.bind,
                    role = self.role,
                    prefix = $fmt self.prefix,
                    status = self.status,
                    latency_us = self.latency_us,
                )
            };
        }
        if json {
            line!(%);
        } else {
            line!(?);
        }
    }
}

/// Writes the audit line of a decision. `json`: the log writes JSON.
pub fn decision(d: &Decision<'_>, json: bool) {
    line(&d.fields(), || d.trace(json));
}

/// Writes the line that ends a watch of `key` by the client named `cn`.
pub fn watch_end(cn: &str, key: &str, json: bool) {
    let fields = [
        ("event", Value::Str("watch_end")),
        ("cn", Value::Str(cn)),
        ("key", Value::Str(key)),
    ];
    line(&fields, || trace_watch_end(cn, key, json));
}

fn trace_watch_end(cn: &str, key: &str, json: bool) {
    if json {
        tracing::info!(target: "keygate::audit", event = "watch_end", cn = %cn, key = %key);
    } else {
        tracing::info!(target: "keygate::audit", event = "watch_end", cn = ?cn, key = ?key);
    }
}

/// Writes one line of `fields`, in order, or has `fallback` write it
/// through `tracing` when this module does not format the log's lines.
fn line(fields: &[(&'static str, Value<'_>)], fallback: impl FnOnce()) {
    let Some(&format) = DIRECT.get() else {
        return fallback();
    };
    if !tracing::enabled!(target: "keygate::audit", tracing::Level::INFO) {
        return;
    }
    let mut out = Vec::with_capacity(320);
    render(&mut out, format, &timestamp_now(), fields);
    // As with the formatter's lines: only failing to write stderr itself
    // (no log thread) loses a line, and the log cannot report that.
    let _ = crate::logwriter::append(&out);
}

/// The time as the log's formatter writes it: RFC 3339, UTC, microseconds.
fn timestamp_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut s = String::with_capacity(27);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    );
    s
}

/// One line, ending in a newline.
fn render(out: &mut Vec<u8>, format: Format, timestamp: &str, fields: &[(&str, Value<'_>)]) {
    match format {
        Format::Text => {
            out.extend_from_slice(timestamp.as_bytes());
            out.extend_from_slice(b"  INFO keygate::audit: ");
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                write_value(out, *value, debug_str);
            }
        }
        Format::Json => {
            out.extend_from_slice(b"{\"timestamp\":\"");
            out.extend_from_slice(timestamp.as_bytes());
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{");
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                write_value(out, *value, serde_str);
            }
            out.extend_from_slice(b"},\"target\":\"keygate::audit\"}");
        }
    }
    out.push(b'\n');
}

/// A field's value: a string as the format quotes it (`quote`), the
/// others alike in text and JSON.
fn write_value(out: &mut Vec<u8>, value: Value<'_>, quote: fn(&mut Vec<u8>, &str)) {
    match value {
        Value::Str(s) => quote(out, s),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Int(n) => crate::v2::json::write_i64(out, n),
        Value::Uint(n) => crate::v2::json::write_u64(out, n),
    }
}

/// `s` quoted as `{:?}` quotes it; printable ASCII without quotes or
/// backslashes is copied as it is.
fn debug_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let mut q = String::with_capacity(s.len() + 8);
        let _ = write!(q, "{s:?}");
        out.extend_from_slice(q.as_bytes());
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes it: quotes,
/// backslashes and control characters only.
fn serde_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests;
