//! The lines written here are the lines `tracing-subscriber` writes for
//! the same fields (its formatters as `cli` installs them, colours off).

use std::sync::{Arc, Mutex};

use super::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the formatter writes for `emit`, in `format`.
fn traced(format: Format, emit: impl FnOnce()) -> String {
    let cap = Capture::default();
    let writer = {
        let cap = cap.clone();
        move || cap.clone()
    };
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(writer);
    match format {
        Format::Json => tracing::subscriber::with_default(builder.json().finish(), emit),
        Format::Text => tracing::subscriber::with_default(builder.finish(), emit),
    }
    let bytes = cap.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

/// The line written here, with the formatter's line's timestamp.
fn direct(format: Format, theirs: &str, fields: &[(&'static str, Value<'_>)]) -> String {
    let ts = match format {
        Format::Text => theirs[..27].to_string(),
        Format::Json => {
            let v: serde_json::Value = serde_json::from_str(theirs).unwrap();
            v["timestamp"].as_str().unwrap().to_string()
        }
    };
    let mut out = Vec::new();
    render(&mut out, format, &ts, fields);
    String::from_utf8(out).unwrap()
}

const AWKWARD: &[&str] = &[
    "",
    "/team-a/plain",
    "/a\"quote\\back\nnl\rcr\ttab",
    "/ctl\u{1}\u{8}\u{c}\u{1b}\u{1f}\u{7f}",
    "/é✓\u{2028}\u{2029}\u{200b}\u{301}😀",
    "/x\n2026-01-01T00:00:00.000000Z  INFO keygate::audit: decision=\"allow\"",
];

#[test]
fn decision_lines_are_the_formatters_lines() {
    for format in [Format::Text, Format::Json] {
        for (i, s) in AWKWARD.iter().enumerate() {
            let d = Decision {
                cn: s,
                uri: AWKWARD[(i + 1) % AWKWARD.len()],
                fingerprint: "8087a1f6a0009054",
                method: "PUT",
                key: AWKWARD[(i + 2) % AWKWARD.len()],
                recursive: i % 2 == 0,
                wait: i % 3 == 0,
                decision: if i % 2 == 0 { "allow" } else { "deny" },
                bind: if i % 2 == 0 { i as i64 } else { -1 },
                role: "team-a",
                prefix: s,
                status: 201 + i as u16,
                latency_us: 1000 * i as u64 + 7,
            };
            let theirs = traced(format, || d.trace(format == Format::Json));
            assert_eq!(
                direct(format, &theirs, &d.fields()),
                theirs,
                "{format:?} {s:?}"
            );
            assert_eq!(theirs.matches('\n').count(), 1, "{theirs}");
        }
    }
}

#[test]
fn watch_end_lines_are_the_formatters_lines() {
    for format in [Format::Text, Format::Json] {
        for s in AWKWARD {
            let theirs = traced(format, || {
                trace_watch_end(s, "/k\"ey", format == Format::Json)
            });
            let fields = [
                ("event", Value::Str("watch_end")),
                ("cn", Value::Str(s)),
                ("key", Value::Str("/k\"ey")),
            ];
            assert_eq!(direct(format, &theirs, &fields), theirs, "{format:?} {s:?}");
        }
    }
    // JSON lines carry the strings themselves, not their quoted forms.
    let theirs = traced(Format::Json, || trace_watch_end("ops", "/k", true));
    let v: serde_json::Value = serde_json::from_str(&theirs).unwrap();
    assert_eq!(v["fields"]["cn"], "ops");
    assert_eq!(v["fields"]["key"], "/k");
}

#[test]
fn timestamps_have_the_formatters_shape() {
    let theirs = traced(Format::Text, || trace_watch_end("a", "/k", false));
    let ours = timestamp_now();
    assert_eq!(ours.len(), 27, "{ours}");
    assert_eq!(ours.len(), theirs.find(' ').unwrap(), "{ours} vs {theirs}");
    for (a, b) in ours.bytes().zip(theirs.bytes()) {
        assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "{ours} vs {theirs}");
    }
    // Taken within the same minute, barring a minute's turn.
    assert_eq!(&ours[..14], &theirs[..14]);
}
