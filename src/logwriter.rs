//! Log lines (audit lines above all) leave the request path at once: the
//! formatted line is appended to a buffer, and a thread of its own writes
//! the buffer to stderr in batches. A request never waits for the log's
//! write, and a busy gateway makes one write for many lines instead of one
//! per line.
//!
//! Nothing is dropped: when the buffer holds [`MAX_BUFFERED`] bytes
//! (stderr slower than the gateway), the caller waits for room. A clean
//! exit flushes; a kill loses at most the lines not yet written.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Bytes buffered before writers wait for stderr themselves.
pub const MAX_BUFFERED: usize = 4 << 20;

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// A batch is being written by the flusher.
    writing: bool,
    /// No flusher thread: callers write their lines themselves.
    direct: bool,
    /// The flusher waits for lines (a line must wake it).
    idle: bool,
}

/// How long the flusher lets lines gather before a write.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// A batch this large is written without lingering.
const BATCH: usize = 64 << 10;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when lines arrive and when a batch has been written.
    cond: Condvar,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.state.lock().unwrap_or_else(|p| p.into_inner())
}

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

fn shared() -> &'static Arc<Shared> {
    SHARED.get_or_init(|| {
        let s = Arc::new(Shared::default());
        let t = s.clone();
        let started = std::thread::Builder::new()
            .name("keygate-log".into())
            .spawn(move || flusher(&t));
        if started.is_err() {
            lock(&s).direct = true;
        }
        s
    })
}

fn flusher(s: &Shared) {
    let mut batch = Vec::new();
    loop {
        {
            let mut st = lock(s);
            st.writing = false;
            s.cond.notify_all();
            while st.buf.is_empty() {
                st.idle = true;
                st = s.cond.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.idle = false;
            if st.buf.len() < BATCH {
                // Let a busy gateway's lines gather: one wake-up and one
                // write for many lines.
                st = s
                    .cond
                    .wait_timeout(st, LINGER)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            std::mem::swap(&mut st.buf, &mut batch);
            st.writing = true;
        }
        let _ = std::io::stderr().lock().write_all(&batch);
        batch.clear();
        if batch.capacity() > MAX_BUFFERED {
            batch = Vec::new();
        }
    }
}

/// The `MakeWriter` for the log.
#[derive(Clone, Copy, Default)]
pub struct Batched;

/// One line's writer.
pub struct Line;

/// Hands whole lines to the log (waiting for room when stderr cannot keep
/// up).
pub fn append(bytes: &[u8]) -> std::io::Result<()> {
    let s = shared();
    let mut st = lock(s);
    if st.direct {
        return std::io::stderr().lock().write_all(bytes);
    }
    // stderr cannot keep up: wait for the flusher to take the buffer.
    while !st.buf.is_empty() && st.buf.len() + bytes.len() > MAX_BUFFERED {
        st = s.cond.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    let wake = st.idle;
    st.buf.extend_from_slice(bytes);
    drop(st);
    if wake {
        s.cond.notify_all();
    }
    Ok(())
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        append(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// Waits until every line handed over so far is written (call before the
/// process exits).
pub fn flush() {
    let Some(s) = SHARED.get() else {
        return;
    };
    let mut st = lock(s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !st.buf.is_empty() || st.writing {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        st = s
            .cond
            .wait_timeout(st, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}
