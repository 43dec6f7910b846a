//! The journal on disk: an append-only log of committed batches.
//!
//! File `keygate.log` in `backend.data_dir` starts with a 16-byte header
//! naming the format version; then one record per committed batch:
//! `"KGR1"`, payload length, its bitwise complement, CRC-32 of the payload
//! (all u32 little-endian), then the payload (JSON: the store index after the
//! batch and its mutations). A batch is acknowledged only after its record
//! was written and the write was synced.
//!
//! Commits write whole 4 KiB blocks with one synchronous write (`O_DSYNC`,
//! and `O_DIRECT` where the filesystem allows): the last partial block
//! again, with the same bytes, then the new records, then zeros. The file
//! is grown ahead of the records in zero-filled steps of 1 MiB (each made
//! durable before use), so a commit only overwrites blocks that exist and
//! its sync never waits for the filesystem's own journal. Zeros after the
//! last record are therefore normal; a clean stop cuts them off.
//!
//! Compaction: when the journal has grown past `compact_bytes` and past the
//! size of the last snapshot, the tree as of the last commit (a persistent
//! version, so the writer goes on meanwhile) is written by a background
//! thread to `keygate.snap.tmp`, synced and renamed to `keygate.snap`. The
//! writer then rewrites the journal as a new file that starts with a base
//! record naming the snapshot's index, followed by the records committed
//! since, and renames it over `keygate.log`. At every moment of this the
//! files on disk recover the same store: the snapshot, then the journal's
//! records above the snapshot's index. A journal whose base record names a
//! snapshot that is missing or older refuses to start.
//!
//! At open, every record is checked before anything is written. A record
//! cut short at the very end of the file (a crash during an append that was
//! therefore never acknowledged) is a torn tail and is cut off, with a
//! warning; trailing zeros are cut off silently. So is a record cut short
//! by the zeros after it when they begin at a sector boundary inside it: a
//! block write torn by a power loss, its first sectors written and the
//! rest still the zeros laid down ahead (the record's last byte, the end
//! of its JSON, is never zero). Any other damage — a bad checksum, a bad
//! header, a length that does not match its complement, zeros that begin
//! inside a record's last sector, a hole of zeros with bytes after it (a
//! torn write whose sectors landed out of order refuses too) — refuses to
//! start: it is never resolved by silently dropping acknowledged writes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tree::Node;
use super::{apply_mutation, Journal, Mutation};
use crate::v2::json::{write_i64, write_str, write_u64};

/// The journal's first bytes: format and version.
pub const HEADER: &[u8; 16] = b"KEYGATE-LOG-V2\n\0";
/// Version 1 journals (no snapshots) read the same way.
const HEADER_V1: &[u8; 16] = b"KEYGATE-LOG-V1\n\0";
/// The snapshot's first bytes.
pub const SNAP_HEADER: &[u8; 16] = b"KEYGATE-SNAP-V1\n";
const MAGIC: &[u8; 4] = b"KGR1";
const RECORD_HEADER: usize = 16;
/// The journal's file name inside `data_dir`.
pub const FILE: &str = "keygate.log";
/// The snapshot's file name inside `data_dir`.
pub const SNAP_FILE: &str = "keygate.snap";
const SNAP_TMP: &str = "keygate.snap.tmp";
/// Locked (exclusively) by whoever has the store open: `serve`, `export`
/// and `import` never share a data directory.
pub const LOCK_FILE: &str = "keygate.lock";
const LOG_TMP: &str = "keygate.log.tmp";
/// Default for `backend.compact_bytes`.
pub const DEFAULT_COMPACT_BYTES: u64 = 64 << 20;
/// At a clean stop, a journal holding more than this beyond its snapshot
/// is compacted.
const CLOSE_COMPACT_BYTES: u64 = 1 << 20;
/// A commit's buffer is kept for the next one up to this size.
const KEEP_BUFFER_BYTES: usize = 1 << 20;
/// Commits write whole blocks of this size, at offsets that are multiples
/// of it (what direct I/O asks for).
const BLOCK: usize = 4096;
/// The unit a disk writes whole: a write torn by a power loss is torn at
/// multiples of it.
const SECTOR: usize = 512;
/// The journal file grows by this much at a time, zero-filled ahead of
/// the records: a commit then writes blocks that already exist, and its
/// sync never has to change the file's size (a journal commit of the
/// filesystem's own, which costs several times the write).
const PREALLOC_BYTES: u64 = 1 << 20;
/// Snapshot records hold about this many payload bytes.
const SNAP_CHUNK: usize = 1 << 20;

#[derive(serde::Deserialize)]
struct Batch {
    index: u64,
    m: Vec<Mutation>,
    /// In a journal's first record: the index of the snapshot it follows.
    #[serde(default)]
    base: Option<u64>,
}

#[derive(serde::Serialize)]
struct BatchRef<'a> {
    index: u64,
    m: &'a [Mutation],
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<u64>,
}

/// One node of a snapshot: key, createdIndex, modifiedIndex, expiration,
/// value (`None` for a directory). Parents come before their children.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapNode<'a>(
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    u64,
    u64,
    Option<i64>,
    #[serde(borrow)] Option<std::borrow::Cow<'a, str>>,
);

/// A snapshot record: its nodes, or (last record) the store index and the
/// number of nodes, which proves the snapshot complete.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapRecord<'a> {
    #[serde(borrow, default)]
    n: Vec<SnapNode<'a>>,
    #[serde(default)]
    end: Option<(u64, u64)>,
}

/// The durable journal.
pub struct LogJournal {
    dir: PathBuf,
    /// The journal, for reading and resizing.
    file: File,
    /// The journal again, for commits: every write is synchronous
    /// (`O_DSYNC`) and, where the filesystem allows, bypasses the page
    /// cache (`O_DIRECT`).
    out: File,
    /// A commit's record.
    buf: Vec<u8>,
    /// Bytes of records in the journal file (zeros follow).
    len: u64,
    /// Bytes in the journal file: `len` and the zero-filled space after it.
    allocated: u64,
    /// The records in the journal's last, partial block (rewritten, with
    /// the next records after them, by the next commit).
    tail: Vec<u8>,
    /// Storage for the block-aligned buffer that a commit writes.
    scratch: Vec<u8>,
    /// Bytes of the header and base record (what compaction cannot shrink).
    base_len: u64,
    /// Size of the last snapshot.
    snap_bytes: u64,
    compact_bytes: u64,
    /// A snapshot being written.
    pending: Option<PendingSnapshot>,
    /// After a compaction failed: the journal length it must reach before
    /// the next is tried (0: none failed).
    retry_len: u64,
    /// Snapshots started, for tests.
    #[cfg(test)]
    snapshots_started: u32,
    /// Why the journal can no longer promise durability.
    broken: Option<String>,
    /// The data directory's lock, held while the journal is open.
    _lock: File,
}

struct PendingSnapshot {
    index: u64,
    /// Journal length after the record with `index`.
    offset: u64,
    done: std::sync::mpsc::Receiver<std::io::Result<u64>>,
}

/// A store recovered from disk.
pub struct Recovered {
    /// The tree.
    pub root: Arc<Node>,
    /// The store index (never goes back).
    pub index: u64,
    /// Records replayed.
    pub records: u64,
    /// Bytes of a torn tail that were cut off.
    pub torn_bytes: u64,
    /// The index of the snapshot the store was loaded from, if any.
    pub snapshot_index: Option<u64>,
}

/// Framing of one record; `None` when `rest` does not start with a whole
/// record (the caller decides whether that is a torn tail).
enum Frame<'a> {
    Whole(&'a [u8], usize),
    Torn,
    Bad(&'static str),
}

/// The payload length a whole record header gives, if it matches its
/// complement.
fn checked_len(header: &[u8]) -> Option<u32> {
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let not_len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    (len == !not_len).then_some(len)
}

fn frame(rest: &[u8]) -> Frame<'_> {
    if rest.len() < RECORD_HEADER {
        if MAGIC.starts_with(&rest[..rest.len().min(4)]) {
            return Frame::Torn;
        }
        return Frame::Bad("bad record header");
    }
    if &rest[..4] != MAGIC {
        return Frame::Bad("bad record header");
    }
    let Some(len) = checked_len(&rest[..RECORD_HEADER]) else {
        return Frame::Bad("record length does not match its check");
    };
    let crc = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]);
    let end = RECORD_HEADER + len as usize;
    if rest.len() < end {
        return Frame::Torn;
    }
    let payload = &rest[RECORD_HEADER..end];
    if crc32fast::hash(payload) != crc {
        return Frame::Bad("checksum mismatch");
    }
    Frame::Whole(payload, end)
}

/// Encodes a commit's record payload: the JSON that serde writes for
/// [`BatchRef`] (and [`Batch`] reads), written directly, since it is on the
/// path of every write. Strings are escaped as Go does, which is valid
/// JSON for any reader.
fn encode_batch(out: &mut Vec<u8>, index: u64, mutations: &[Mutation]) {
    fn opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
        match v {
            Some(v) => write_i64(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn opt_str(out: &mut Vec<u8>, v: Option<&str>) {
        match v {
            Some(v) => write_str(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"{\"index\":");
    write_u64(out, index);
    out.extend_from_slice(b",\"m\":[");
    for (i, m) in mutations.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match m {
            Mutation::Put {
                key,
                created,
                modified,
                expiration,
                value,
            } => {
                out.extend_from_slice(b"{\"Put\":{\"key\":");
                write_str(out, key);
                out.extend_from_slice(b",\"created\":");
                write_u64(out, *created);
                out.extend_from_slice(b",\"modified\":");
                write_u64(out, *modified);
                out.extend_from_slice(b",\"expiration\":");
                opt_i64(out, *expiration);
                out.extend_from_slice(b",\"value\":");
                opt_str(out, value.as_deref());
            }
            Mutation::Touch {
                key,
                value,
                modified,
                expiration,
            } => {
                out.extend_from_slice(b"{\"Touch\":{\"key\":");
                write_str(out, key);
                out.extend_from_slice(b",\"value\":");
                opt_str(out, value.as_deref());
                out.extend_from_slice(b",\"modified\":");
                write_u64(out, *modified);
                out.extend_from_slice(b",\"expiration\":");
                opt_i64(out, *expiration);
            }
            Mutation::Remove { key } => {
                out.extend_from_slice(b"{\"Remove\":{\"key\":");
                write_str(out, key);
            }
        }
        out.extend_from_slice(b"}}");
    }
    out.extend_from_slice(b"]}");
}

fn put_record(buf: &mut Vec<u8>, payload: &[u8]) -> std::io::Result<()> {
    put_record_with(buf, |buf| buf.extend_from_slice(payload))
}

/// Appends a record whose payload `write` appends in place; the header
/// (magic, length, its complement, CRC) is filled in after it.
fn put_record_with(buf: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
    let at = buf.len();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&[0; 12]);
    write(buf);
    let payload = &buf[at + 16..];
    let Ok(len) = u32::try_from(payload.len()) else {
        buf.truncate(at);
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "record too large",
        ));
    };
    let crc = crc32fast::hash(payload);
    buf[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    buf[at + 8..at + 12].copy_from_slice(&(!len).to_le_bytes());
    buf[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn read_all(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot open: {e}", path.display())),
    }
}

fn snap_damaged(path: &Path, offset: usize, what: &str) -> String {
    format!(
        "{}: damaged at byte {offset} ({what}): keygate will not start on a store whose acknowledged writes cannot be read back; restore {} and {} together from a backup",
        path.display(),
        SNAP_FILE,
        FILE
    )
}

/// Loads `keygate.snap`: the tree and its index.
fn load_snapshot(path: &Path, bytes: &[u8]) -> Result<(Arc<Node>, u64), String> {
    if bytes.len() < SNAP_HEADER.len() || &bytes[..SNAP_HEADER.len()] != SNAP_HEADER {
        if bytes.starts_with(b"KEYGATE-SNAP-") {
            return Err(format!(
                "{}: written by an incompatible keygate version: use that version to export the store, then import it here",
                path.display()
            ));
        }
        return Err(snap_damaged(path, 0, "not a keygate snapshot header"));
    }
    let mut root = Arc::new(Node::dir(0, None));
    let mut at = SNAP_HEADER.len();
    let mut nodes = 0u64;
    loop {
        let (payload, end) = match frame(&bytes[at..]) {
            Frame::Whole(p, e) => (p, e),
            // A snapshot is renamed into place only once complete and
            // synced: anything short is damage.
            Frame::Torn => return Err(snap_damaged(path, at, "cut short")),
            Frame::Bad(what) => return Err(snap_damaged(path, at, what)),
        };
        let rec: SnapRecord = serde_json::from_slice(payload)
            .map_err(|e| snap_damaged(path, at, &format!("unreadable record: {e}")))?;
        for SnapNode(key, created, modified, expiration, value) in rec.n {
            apply_mutation(
                &mut root,
                &Mutation::Put {
                    key: key.into_owned(),
                    created,
                    modified,
                    expiration,
                    value: value.map(|v| Arc::from(&*v)),
                },
            );
            nodes += 1;
        }
        at += end;
        if let Some((index, count)) = rec.end {
            if count != nodes {
                return Err(snap_damaged(path, at, "node count does not match"));
            }
            if at != bytes.len() {
                return Err(snap_damaged(path, at, "bytes after the end record"));
            }
            return Ok((root, index));
        }
    }
}

/// Appends one snapshot node, as serde writes a [`SnapNode`]: `[key,
/// createdIndex, modifiedIndex, expiration or null, value or null]`.
fn encode_snap_node(out: &mut Vec<u8>, key: &str, node: &Node) {
    out.push(b'[');
    write_str(out, key);
    out.push(b',');
    write_u64(out, node.created);
    out.push(b',');
    write_u64(out, node.modified);
    out.push(b',');
    match node.expiration {
        Some(e) => write_i64(out, e),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b',');
    match node.value_str() {
        Some(v) => write_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b']');
}

/// Writes the tree as `keygate.snap` (through a synced temporary file and
/// a rename). Returns its size.
///
/// Depth first, parents before their children, children in name order;
/// one path buffer grows and shrinks along the walk, and the nodes are
/// read through references (no reference count is touched).
pub fn write_snapshot(dir: &Path, root: &Arc<Node>, index: u64) -> std::io::Result<u64> {
    use super::tree::Kind;
    let tmp = dir.join(SNAP_TMP);
    let mut out = std::io::BufWriter::with_capacity(SNAP_CHUNK, File::create(&tmp)?);
    out.write_all(SNAP_HEADER)?;
    let mut size = SNAP_HEADER.len() as u64;
    let mut chunk: Vec<u8> = Vec::with_capacity(SNAP_CHUNK + 4096);
    let mut record = Vec::with_capacity(SNAP_CHUNK + 4096);
    let mut flush = |chunk: &mut Vec<u8>, end: Option<(u64, u64)>| -> std::io::Result<()> {
        // chunk holds `,`-separated node arrays.
        record.clear();
        put_record_with(&mut record, |buf| {
            buf.extend_from_slice(b"{\"n\":[");
            buf.extend_from_slice(chunk);
            buf.push(b']');
            if let Some((i, n)) = end {
                buf.extend_from_slice(b",\"end\":[");
                write_u64(buf, i);
                buf.push(b',');
                write_u64(buf, n);
                buf.push(b']');
            }
            buf.push(b'}');
        })?;
        out.write_all(&record)?;
        size += record.len() as u64;
        chunk.clear();
        Ok(())
    };
    let mut nodes = 0u64;
    let mut path = String::new();
    // The directories being walked: their remaining children, and the
    // length of their own path.
    let mut stack = Vec::new();
    if let Kind::Dir(children) = &root.kind {
        stack.push((children.iter(), 0));
    }
    while let Some((children, dir_len)) = stack.last_mut() {
        let dir_len = *dir_len;
        let Some((name, node)) = children.next() else {
            stack.pop();
            continue;
        };
        path.truncate(dir_len);
        path.push('/');
        path.push_str(name);
        if !chunk.is_empty() {
            chunk.push(b',');
        }
        encode_snap_node(&mut chunk, &path, node);
        nodes += 1;
        if chunk.len() >= SNAP_CHUNK {
            flush(&mut chunk, None)?;
        }
        if let Kind::Dir(children) = &node.kind {
            stack.push((children.iter(), path.len()));
        }
    }
    flush(&mut chunk, Some((index, nodes)))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(SNAP_FILE))?;
    sync_dir(dir)?;
    Ok(size)
}

/// Whether the record at `at`, cut short at `records_end` (where the
/// file's trailing zeros begin), is the torn tail of a write that never
/// completed: cut by the end of the file, or by zeros that begin at a
/// sector boundary inside it. Zeros that begin inside the record's last
/// sector are not explained by a torn write (its bytes up to the end of
/// its JSON would be there), so they are damage.
fn torn_write(bytes: &[u8], at: usize, records_end: usize) -> bool {
    let rest = &bytes[at..];
    // The record's end as its header claims it, when the whole header is
    // there and consistent; otherwise the header's own end.
    let claimed = match rest.get(..RECORD_HEADER) {
        Some(h) if &h[..4] == MAGIC => checked_len(h).map_or(0, |len| len as usize),
        _ => 0,
    } + RECORD_HEADER;
    let end = at + claimed;
    end > bytes.len() || end > records_end.div_ceil(SECTOR) * SECTOR
}

fn damaged(path: &Path, offset: usize, what: &str) -> String {
    format!(
        "{}: damaged at byte {offset} ({what}): keygate will not start on a store whose acknowledged writes cannot be read back; restore {} from a backup (or move it away to start empty)",
        path.display(),
        path.display()
    )
}

/// Opens (or creates) the journal in `data_dir` and replays it over the
/// snapshot, if there is one. `compact_bytes`: see [`LogJournal`].
pub fn open(data_dir: &Path, compact_bytes: u64) -> Result<(Recovered, LogJournal), String> {
    let lock = lock_dir(data_dir)?;
    let path: PathBuf = data_dir.join(FILE);
    let snap_path = data_dir.join(SNAP_FILE);
    let snap_bytes = read_all(&snap_path)?;
    let snap_len = snap_bytes.as_ref().map_or(0, |b| b.len() as u64);
    let (mut root, snapshot_index) = match &snap_bytes {
        Some(b) => {
            let (root, index) = load_snapshot(&snap_path, b)?;
            (root, Some(index))
        }
        None => (Arc::new(Node::dir(0, None)), None),
    };
    drop(snap_bytes);
    let bytes = read_all(&path)?.unwrap_or_default();
    if bytes.is_empty() && data_dir.join("cluster-id").exists() {
        return Err(format!(
            "{}: missing or empty, but {} shows that this store held data: restore {} from a backup (or remove cluster-id to start a new, empty store)",
            path.display(),
            data_dir.join("cluster-id").display(),
            FILE
        ));
    }
    // Where the zeros after the last non-zero byte begin (the journal's
    // header ends with a zero byte).
    let records_end = (bytes.len() - bytes.iter().rev().take_while(|b| **b == 0).count())
        .max(HEADER.len())
        .min(bytes.len());
    let mut index = snapshot_index.unwrap_or(0);
    let mut records = 0u64;
    let mut good = 0usize;
    let mut base_len = HEADER.len() as u64;
    if !bytes.is_empty() {
        if bytes.len() < HEADER.len()
            || (&bytes[..HEADER.len()] != HEADER && &bytes[..HEADER.len()] != HEADER_V1)
        {
            if bytes.len() < HEADER.len() {
                return Err(damaged(&path, 0, "journal header cut short"));
            }
            if bytes.starts_with(b"KEYGATE-LOG-") {
                return Err(format!(
                    "{}: written by an incompatible keygate version: use that version to export it, then import it here",
                    path.display()
                ));
            }
            return Err(damaged(&path, 0, "not a keygate journal header"));
        }
        good = HEADER.len();
        let mut last = 0u64;
        loop {
            // Records are read up to the zeros after the last of them.
            let rest = &bytes[good..records_end];
            if rest.is_empty() {
                break;
            }
            let (payload, end) = match frame(rest) {
                Frame::Whole(p, e) => (p, e),
                Frame::Torn => {
                    if torn_write(&bytes, good, records_end) {
                        break;
                    }
                    return Err(damaged(
                        &path,
                        good,
                        "a record ends in zeros that a torn write does not explain",
                    ));
                }
                Frame::Bad(what) => return Err(damaged(&path, good, what)),
            };
            let batch: Batch = serde_json::from_slice(payload)
                .map_err(|e| damaged(&path, good, &format!("unreadable record: {e}")))?;
            if batch.index < last {
                return Err(damaged(&path, good, "the index goes back"));
            }
            last = batch.index;
            if let Some(base) = batch.base {
                if records > 0 || good != HEADER.len() {
                    return Err(damaged(&path, good, "a base record after the first"));
                }
                if snapshot_index.is_none_or(|s| s < base) {
                    return Err(format!(
                        "{}: follows a snapshot at index {base}, but {} is {}: restore both files together from a backup",
                        path.display(),
                        snap_path.display(),
                        match snapshot_index {
                            None => "missing".to_string(),
                            Some(s) => format!("older (index {s})"),
                        }
                    ));
                }
                base_len = (good + end) as u64;
            }
            // Records the snapshot already holds are skipped.
            if snapshot_index.is_none_or(|s| batch.index > s) {
                for m in &batch.m {
                    apply_mutation(&mut root, m);
                }
                index = index.max(batch.index);
            }
            records += 1;
            good += end;
        }
    }
    // What follows the last record: zeros (the space a running journal
    // fills ahead of its records), after a torn tail or not.
    let torn_bytes = records_end.saturating_sub(good.max(HEADER.len())) as u64;
    // Everything is checked: only now write (remove what an interrupted
    // compaction left, cut a torn tail, or start a new file).
    for tmp in [SNAP_TMP, LOG_TMP] {
        let _ = std::fs::remove_file(data_dir.join(tmp));
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: cannot open for writing: {e}", path.display()))?;
    if bytes.is_empty() {
        file.write_all(HEADER)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        let _ = sync_dir(data_dir);
        good = HEADER.len();
    } else if good < bytes.len() {
        if torn_bytes > 0 {
            tracing::warn!(
                file = %path.display(),
                bytes = torn_bytes,
                "cutting off the torn tail of an interrupted, never acknowledged write"
            );
        }
        // The zeros go too: the space ahead is made again when needed.
        file.set_len(good as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: cannot cut the torn tail: {e}", path.display()))?;
    }
    let out = open_for_commits(&path)
        .map_err(|e| format!("{}: cannot open for writing: {e}", path.display()))?;
    let tail = if bytes.is_empty() {
        HEADER.to_vec()
    } else {
        bytes[good / BLOCK * BLOCK..good].to_vec()
    };
    drop(bytes);
    Ok((
        Recovered {
            root,
            index,
            records,
            torn_bytes,
            snapshot_index,
        },
        LogJournal {
            dir: data_dir.to_path_buf(),
            file,
            out,
            buf: Vec::new(),
            len: good as u64,
            allocated: good as u64,
            tail,
            scratch: Vec::new(),
            base_len,
            snap_bytes: snap_len,
            retry_len: 0,
            #[cfg(test)]
            snapshots_started: 0,
            compact_bytes,
            pending: None,
            broken: None,
            _lock: lock,
        },
    ))
}

/// Takes the data directory's lock, or says who holds it. Another process
/// that opened the store (a running `serve`, an `export` or `import`)
/// would otherwise read records being written as a torn tail, and cut
/// them off. Released when the file closes, and by the system when the
/// process dies.
fn lock_dir(data_dir: &Path) -> Result<File, String> {
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: cannot open: {e} (backend.data_dir)", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{}: the store is in use by another keygate (serve, export or import): stop it first (backend.data_dir)",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!(
            "{}: cannot lock: {e} (backend.data_dir)",
            path.display()
        )),
    }
}

/// Makes the entries of directory `dir` (files created or renamed in it)
/// durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens the journal for commits: synchronous writes, and direct I/O
/// where the filesystem offers it.
fn open_for_commits(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags: i32| {
        OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_DSYNC | libc::O_DIRECT) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(libc::O_DSYNC),
        r => r,
    }
}

/// `len` bytes of `scratch`, starting at a multiple of [`BLOCK`] in memory.
fn aligned(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len + BLOCK {
        scratch.resize(len + BLOCK, 0);
    }
    let at = scratch.as_ptr().align_offset(BLOCK);
    &mut scratch[at..at + len]
}

impl LogJournal {
    /// Writes the record in `buf` after the last, with one synchronous
    /// write of whole blocks: the last partial block again (the same
    /// bytes), the record, zeros to the block's end.
    fn write_record(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let start = self.len - self.tail.len() as u64;
        let used = self.tail.len() + self.buf.len();
        let padded = used.div_ceil(BLOCK) * BLOCK;
        let res = self.reserve(start + padded as u64).and_then(|()| {
            let block = aligned(&mut self.scratch, padded);
            block[..self.tail.len()].copy_from_slice(&self.tail);
            block[self.tail.len()..used].copy_from_slice(&self.buf);
            block[used..].fill(0);
            // The commit point: nothing of the batch is visible before it.
            self.out.write_all_at(block, start)
        });
        match res {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                let keep = (self.len % BLOCK as u64) as usize;
                let block = aligned(&mut self.scratch, padded);
                self.tail.clear();
                self.tail.extend_from_slice(&block[used - keep..used]);
            }
            Err(_) => {
                // The batch is answered as failed: do not let it come back
                // at the next start (best effort; a failed write is
                // not retried).
                let _ = self.file.set_len(self.len);
                let _ = self.file.sync_all();
                self.allocated = self.len;
            }
        }
        res
    }

    /// Makes the file at least `end` bytes long, zero-filled, and durably
    /// so: a step of [`PREALLOC_BYTES`], or only what is needed when the
    /// disk has no room for the step.
    fn reserve(&mut self, end: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if end <= self.allocated {
            return Ok(());
        }
        let step = (self.allocated + PREALLOC_BYTES).max(end);
        let zeros = [0u8; 64 << 10];
        // Err((error, whether it was the sync that failed)).
        let fill = |to: u64| -> Result<u64, (std::io::Error, bool)> {
            let mut at = self.allocated;
            while at < to {
                let n = (to - at).min(zeros.len() as u64) as usize;
                self.file
                    .write_all_at(&zeros[..n], at)
                    .map_err(|e| (e, false))?;
                at += n as u64;
            }
            self.file.sync_data().map(|()| to).map_err(|e| (e, true))
        };
        // A step the disk has no room for: only what is needed. A failed
        // sync is not tried again (SPEC §5: never retry a failed fsync).
        let res = fill(step).or_else(|(e, sync_failed)| {
            if sync_failed {
                return Err(e);
            }
            let _ = self.file.set_len(self.allocated);
            fill(end).map_err(|(e, _)| e)
        });
        match res {
            Ok(to) => {
                self.allocated = to;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.allocated);
                Err(e)
            }
        }
    }

    /// Writes a snapshot of `root` at `index` (the journal's last record)
    /// now, and cuts the journal after it.
    pub fn compact_now(&mut self, root: &Arc<Node>, index: u64) -> std::io::Result<()> {
        self.snap_bytes = write_snapshot(&self.dir, root, index)?;
        self.rewrite_after(index, self.len)
    }
    /// Whether the journal has outgrown its snapshot.
    fn wants_compaction(&self) -> bool {
        self.len >= self.retry_len
            && self.len - self.base_len > self.compact_bytes.max(self.snap_bytes)
    }

    /// A compaction failed (the snapshot, its thread, or the journal's
    /// rewrite after it): the next is tried once the journal has grown as
    /// much again, not at the next commit, which would write the whole
    /// tree again (and log its failure) at every commit.
    fn compaction_failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        let _ = std::fs::remove_file(self.dir.join(SNAP_TMP));
        let _ = std::fs::remove_file(self.dir.join(LOG_TMP));
        self.retry_len = self.len + (self.len - self.base_len);
        tracing::warn!(
            %error,
            retry_at_journal_bytes = self.retry_len,
            "{what}; the journal keeps growing"
        );
    }

    /// Starts writing a snapshot of `root` (the tree after the commit of
    /// `index`, the last record in the journal) on its own thread.
    fn start_snapshot(&mut self, root: &Arc<Node>, index: u64) {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = self.dir.clone();
        let root = root.clone();
        let started = std::thread::Builder::new()
            .stack_size(super::tree::STACK_BYTES)
            .name("keygate-snapshot".into())
            .spawn(move || {
                let _ = tx.send(write_snapshot(&dir, &root, index));
            });
        match started {
            Ok(_) => {
                #[cfg(test)]
                {
                    self.snapshots_started += 1;
                }
                self.pending = Some(PendingSnapshot {
                    index,
                    offset: self.len,
                    done: rx,
                })
            }
            Err(e) => self.compaction_failed("cannot start the snapshot thread", &e),
        }
    }

    /// Rewrites the journal to hold only what follows the snapshot at
    /// `index`, written when the journal was `offset` bytes long.
    fn rewrite_after(&mut self, index: u64, offset: u64) -> std::io::Result<()> {
        let tmp = self.dir.join(LOG_TMP);
        let mut tail = vec![0u8; (self.len - offset) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut tail, offset)?;
        let payload = serde_json::to_vec(&BatchRef {
            index,
            m: &[],
            base: Some(index),
        })
        .map_err(std::io::Error::other)?;
        let mut head = HEADER.to_vec();
        put_record(&mut head, &payload)?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)?;
        file.write_all(&head)?;
        file.write_all(&tail)?;
        file.sync_all()?;
        // Opened before the rename: once it is done, nothing can fail
        // that would leave commits going to the replaced file.
        let out = open_for_commits(&tmp)?;
        std::fs::rename(&tmp, self.dir.join(FILE))?;
        // From here the new file is the journal.
        self.file = file;
        self.out = out;
        self.base_len = head.len() as u64;
        self.len = self.base_len + tail.len() as u64;
        self.allocated = self.len;
        let last = (self.len as usize) / BLOCK * BLOCK;
        self.tail.clear();
        if last >= head.len() {
            self.tail.extend_from_slice(&tail[last - head.len()..]);
        } else {
            self.tail.extend_from_slice(&head[last..]);
            self.tail.extend_from_slice(&tail);
        }
        if let Err(e) = sync_dir(&self.dir) {
            // The rename may not survive a crash, and with it the commits
            // that would follow: refuse them, as a failed commit.
            self.broken = Some(format!(
                "cannot sync {} after replacing the journal: {e}",
                self.dir.display()
            ));
            return Err(e);
        }
        Ok(())
    }

    /// Compaction's bookkeeping after each commit: finish a snapshot that
    /// is done, or start one when the journal has outgrown the last.
    fn maintain(&mut self, root: &Arc<Node>, index: u64, wait: bool) {
        if let Some(p) = &self.pending {
            let done = if wait {
                p.done.recv().map_err(|_| ())
            } else {
                match p.done.try_recv() {
                    Ok(r) => Ok(r),
                    Err(std::sync::mpsc::TryRecvError::Empty) => return,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(()),
                }
            };
            let Some(p) = self.pending.take() else {
                return;
            };
            match done {
                Ok(Ok(size)) => {
                    self.snap_bytes = size;
                    let before = self.len;
                    match self.rewrite_after(p.index, p.offset) {
                        Ok(()) => {
                            self.retry_len = 0;
                            tracing::info!(
                                index = p.index,
                                snapshot_bytes = size,
                                journal_bytes_before = before,
                                journal_bytes = self.len,
                                "journal compacted"
                            )
                        }
                        Err(e) => self.compaction_failed(
                            "cannot rewrite the journal after a snapshot; keeping it whole",
                            &e,
                        ),
                    }
                }
                Ok(Err(e)) => self.compaction_failed("cannot write a snapshot", &e),
                Err(()) => self.compaction_failed("the snapshot thread failed", &"it panicked"),
            }
            return;
        }
        if !wait && self.wants_compaction() {
            self.start_snapshot(root, index);
        }
    }
}

impl Journal for LogJournal {
    fn broken(&self) -> Option<String> {
        self.broken.clone()
    }

    fn commit(&mut self, mutations: &[Mutation], index: u64) -> std::io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(why.clone()));
        }
        self.buf.clear();
        put_record_with(&mut self.buf, |buf| encode_batch(buf, index, mutations))?;
        let res = self.write_record();
        if self.buf.capacity() > KEEP_BUFFER_BYTES {
            // An import's one large record: do not keep its buffers.
            self.buf = Vec::new();
            self.scratch = Vec::new();
        }
        res
    }

    fn committed(&mut self, root: &Arc<Node>, index: u64) {
        self.maintain(root, index, false);
    }

    fn close(&mut self, root: &Arc<Node>, index: u64) {
        self.maintain(root, index, true);
        // A clean stop leaves a snapshot, so the next start need not
        // replay much (a stop cut short leaves a temporary file that the
        // next start removes).
        if self.len - self.base_len > CLOSE_COMPACT_BYTES {
            let t = std::time::Instant::now();
            match self.compact_now(root, index) {
                Ok(()) => tracing::info!(
                    index,
                    snapshot_bytes = self.snap_bytes,
                    ms = t.elapsed().as_millis() as u64,
                    "snapshot written at stop"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot write a snapshot at stop"),
            }
        }
        // The zeros kept ahead of the records are not needed until the
        // next start's first commit (either length reads the same).
        if self.allocated > self.len && self.broken.is_none() {
            let _ = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_all());
        }
    }
}

/// What an import file holds, as mutations for an empty store.
pub struct Import {
    /// `Put`s in pre-order (parents first).
    pub mutations: Vec<Mutation>,
    /// The store index to set.
    pub index: u64,
    /// Nodes imported.
    pub nodes: u64,
    /// Nodes skipped because they had already expired.
    pub expired: u64,
}

/// JSON nesting an import may have: an export of a key as deep as a
/// request can name (about 8,000 levels) nests two levels a key level.
const MAX_IMPORT_NESTING: usize = 2 * 10_000 + 16;

/// The largest index an import may set: far below where adding to it
/// could wrap.
const MAX_IMPORT_INDEX: u64 = i64::MAX as u64;

/// How deep `bytes` nest arrays and objects (outside strings), counted up
/// to `limit + 1`.
fn nesting(bytes: &[u8], limit: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    break;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads an export, or a recursive GET of `/` taken from any etcd v2, into
/// mutations. Parsing runs on a thread with a large stack, so a key 8,000
/// levels deep imports; anything nested deeper than such an export is
/// refused before parsing (parsing, and dropping what it made, recurse
/// once a level).
pub fn read_import(bytes: Vec<u8>, now: i64) -> Result<Import, String> {
    let deepest = nesting(&bytes, MAX_IMPORT_NESTING);
    if deepest > MAX_IMPORT_NESTING {
        return Err(format!(
            "nested more than {MAX_IMPORT_NESTING} levels deep: deeper than any export (a key has at most about 8,000 levels)"
        ));
    }
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || {
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            de.disable_recursion_limit();
            let v: serde_json::Value =
                serde::Deserialize::deserialize(&mut de).map_err(|e| format!("not JSON: {e}"))?;
            let res = import_value(&v, now);
            drop(v);
            res
        })
        .map_err(|e| format!("cannot start the import thread: {e}"))?
        .join()
        .map_err(|_| "the import thread failed".to_string())?
}

fn import_value(v: &serde_json::Value, now: i64) -> Result<Import, String> {
    use serde_json::Value;
    let root = v
        .get("node")
        .ok_or("no \"node\": expected the answer to GET /v2/keys/?recursive=true&sorted=true")?;
    let index = match v.get("etcdIndex") {
        None => 0,
        Some(i) => i
            .as_u64()
            .filter(|i| *i <= MAX_IMPORT_INDEX)
            .ok_or_else(|| {
                format!("\"etcdIndex\" is not an integer from 0 to {MAX_IMPORT_INDEX}")
            })?,
    };
    let mut out = Import {
        mutations: Vec::new(),
        index,
        nodes: 0,
        expired: 0,
    };
    // Each key once: a second node with a key would replace the first
    // (and with it, a directory's children) without a word.
    let mut seen = std::collections::HashSet::new();
    if root
        .get("key")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "/")
    {
        return Err("\"node\" is not the root: export a recursive GET of /".into());
    }
    let mut stack: Vec<(&Value, String)> = Vec::new();
    fn children(n: &serde_json::Value) -> Result<Vec<&serde_json::Value>, String> {
        match n.get("nodes") {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) => Ok(a.iter().collect()),
            Some(_) => Err("\"nodes\" is not a list".into()),
        }
    }
    for c in children(root)?.into_iter().rev() {
        stack.push((c, String::new()));
    }
    while let Some((n, parent)) = stack.pop() {
        let key = n.get("key").and_then(Value::as_str).ok_or_else(|| {
            format!(
                "a node below {:?} has no \"key\"",
                if parent.is_empty() { "/" } else { &parent }
            )
        })?;
        key.strip_prefix(&parent)
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| !r.is_empty() && !r.contains('/') && *r != "." && *r != "..")
            .ok_or_else(|| {
                format!(
                    "node {key:?} is not a child of {:?}",
                    if parent.is_empty() { "/" } else { &parent }
                )
            })?;
        if !seen.insert(key) {
            return Err(format!("node {key:?} is listed twice"));
        }
        // Every node etcd writes has indexes of 1 or more; one of 0 would
        // be listed without it (as etcd omits it), and that export would
        // not import again.
        let index = |name: &str| {
            n.get(name)
                .and_then(Value::as_u64)
                .filter(|i| (1..=MAX_IMPORT_INDEX).contains(i))
                .ok_or_else(|| {
                    format!("node {key:?}: no {name} (an integer from 1 to {MAX_IMPORT_INDEX})")
                })
        };
        let created = index("createdIndex")?;
        let modified = index("modifiedIndex")?;
        // etcd changes a node at or after the write that created it.
        if created > modified {
            return Err(format!(
                "node {key:?}: createdIndex {created} is above modifiedIndex {modified}"
            ));
        }
        let dir = n.get("dir").and_then(Value::as_bool).unwrap_or(false);
        if !dir && !children(n)?.is_empty() {
            return Err(format!(
                "node {key:?}: \"nodes\" below a key (a directory says \"dir\": true)"
            ));
        }
        let expiration = match n.get("expiration") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                crate::v2::json::parse_rfc3339(s)
                    .ok_or_else(|| format!("node {key:?}: bad expiration {s:?}"))?,
            ),
            Some(_) => return Err(format!("node {key:?}: bad expiration")),
        };
        if expiration.is_some_and(|e| e <= now) {
            out.expired += 1;
            continue;
        }
        let value = if dir {
            None
        } else {
            Some(
                n.get("value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("node {key:?}: a key without a string \"value\""))?
                    .into(),
            )
        };
        out.index = out.index.max(modified).max(created);
        out.nodes += 1;
        out.mutations.push(Mutation::Put {
            key: key.to_string(),
            created,
            modified,
            expiration,
            value,
        });
        if dir {
            for c in children(n)?.into_iter().rev() {
                stack.push((c, key.to_string()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written record payload reads back, through serde, as the
    /// same batch, and is the same JSON document serde writes: every ASCII
    /// character, U+2028/9, non-ASCII text, both options, each mutation.
    #[test]
    fn a_commit_payload_is_what_serde_writes_and_reads() {
        let ascii: String = (0u8..128).map(char::from).collect();
        let texts = [
            String::new(),
            ascii.clone(),
            "\u{2028}\u{2029}\u{e2}\u{e9}\u{1f600}</script>&".to_string(),
            format!("/dir/{ascii}"),
        ];
        let mut m = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let i = i as u64;
            m.push(Mutation::Put {
                key: format!("/k{t}"),
                created: i,
                modified: u64::MAX - i,
                expiration: [None, Some(i64::MIN), Some(-1), Some(i64::MAX)][i as usize % 4],
                value: i.is_multiple_of(2).then(|| Arc::from(t.as_str())),
            });
            m.push(Mutation::Touch {
                key: format!("/t{t}"),
                value: (!i.is_multiple_of(2)).then(|| Arc::from(t.as_str())),
                modified: i,
                expiration: [Some(7), None][i as usize % 2],
            });
            m.push(Mutation::Remove { key: t.clone() });
        }
        for batch in [&m[..], &m[..1], &[]] {
            let mut ours = Vec::new();
            encode_batch(&mut ours, 42, batch);
            let read: Batch = serde_json::from_slice(&ours).expect("reads back");
            assert_eq!((read.index, read.base, &read.m[..]), (42, None, batch));
            let theirs = serde_json::to_vec(&BatchRef {
                index: 42,
                m: batch,
                base: None,
            })
            .unwrap();
            assert_same_json(&ours, &theirs);
        }
    }

    /// Both byte strings are the same JSON document.
    fn assert_same_json(ours: &[u8], theirs: &[u8]) {
        let ours: serde_json::Value = serde_json::from_slice(ours).unwrap();
        let theirs: serde_json::Value = serde_json::from_slice(theirs).unwrap();
        assert_eq!(ours, theirs);
    }

    /// A hand-written snapshot node reads back, through serde, as the same
    /// node, and is the same JSON document serde writes.
    #[test]
    fn a_snapshot_node_is_what_serde_writes_and_reads() {
        let ascii: String = (0u8..128).map(char::from).collect();
        let texts = [
            String::new(),
            ascii.clone(),
            "\u{2028}\u{2029}\u{e2}\u{e9}\u{1f600}</script>&".to_string(),
        ];
        for (i, t) in texts.iter().enumerate() {
            for (j, expiration) in [None, Some(i64::MIN), Some(-1), Some(i64::MAX)]
                .into_iter()
                .enumerate()
            {
                let (created, modified) = (i as u64, u64::MAX - j as u64);
                let mut value = Node::value(created, Arc::from(t.as_str()), expiration);
                value.modified = modified;
                let mut dir = Node::dir(created, expiration);
                dir.modified = modified;
                for node in [value, dir] {
                    let key = format!("/k{t}");
                    let mut ours = Vec::new();
                    encode_snap_node(&mut ours, &key, &node);
                    let read: SnapNode = serde_json::from_slice(&ours).expect("reads back");
                    let want_value = node.value_str().map(|v| v.to_string());
                    assert_eq!(
                        (
                            read.0.as_ref(),
                            read.1,
                            read.2,
                            read.3,
                            read.4.as_deref().map(str::to_string)
                        ),
                        (
                            key.as_str(),
                            created,
                            modified,
                            expiration,
                            want_value.clone()
                        )
                    );
                    let theirs = serde_json::to_vec(&SnapNode(
                        key.as_str().into(),
                        created,
                        modified,
                        expiration,
                        want_value.as_deref().map(Into::into),
                    ))
                    .unwrap();
                    assert_same_json(&ours, &theirs);
                }
            }
        }
    }

    fn put(i: u64) -> Mutation {
        Mutation::Put {
            key: format!("/d{}/k{i}", i % 7),
            created: i,
            modified: i,
            expiration: i
                .is_multiple_of(5)
                .then_some(4_000_000_000_000_000_000 + i as i64),
            value: Some(format!("value {i} \"quoted\" \u{e9}").into()),
        }
    }

    /// key, created, modified, expiration, value.
    type Row = (String, u64, u64, Option<i64>, Option<String>);

    /// The tree as sorted rows.
    fn rows(root: &Arc<Node>) -> Vec<Row> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), root.clone())];
        while let Some((key, n)) = stack.pop() {
            out.push((
                key.clone(),
                n.created,
                n.modified,
                n.expiration,
                n.value_str().map(|v| v.to_string()),
            ));
            if let Some(c) = n.children() {
                for (name, child) in c.iter() {
                    stack.push((format!("{key}/{name}"), child.clone()));
                }
            }
        }
        out.sort();
        out
    }

    /// Commits mutations 1..=n one per commit, calling the compaction hook
    /// after each; returns the tree they make.
    fn fill(j: &mut LogJournal, from: u64, to: u64, root: &mut Arc<Node>) {
        for i in from..=to {
            let m = put(i);
            j.commit(std::slice::from_ref(&m), i).unwrap();
            apply_mutation(root, &m);
            j.committed(root, i);
        }
    }

    #[test]
    fn compaction_keeps_every_commit_and_bounds_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 4096).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        fill(&mut j, 1, 3000, &mut root);
        j.close(&root, 3000);
        let log_len = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        let snap_len = std::fs::metadata(dir.path().join(SNAP_FILE)).unwrap().len();
        assert!(
            log_len <= 2 * snap_len.max(4096) + 4096,
            "journal {log_len} bytes beside a {snap_len}-byte snapshot"
        );
        drop(j);
        let (rec, _) = open(dir.path(), 4096).unwrap();
        assert_eq!(rec.index, 3000);
        assert!(rec.snapshot_index.is_some_and(|s| s > 2000));
        assert_eq!(rows(&rec.root), rows(&root));
        assert!(!dir.path().join(SNAP_TMP).exists());
    }

    /// An import that would lose nodes without a word, or set an index
    /// that cannot grow, is refused; so is one nested deeper than any
    /// export, before parsing (which recursed once a level and overflowed
    /// its stack).
    #[test]
    fn an_import_that_would_lose_or_wrap_anything_is_refused() {
        let refused = |text: &[u8], says: &str| {
            let e = read_import(text.to_vec(), 0)
                .err()
                .unwrap_or_else(|| panic!("imported: {}", String::from_utf8_lossy(text)));
            assert!(e.contains(says), "{e}");
        };
        let key = |k: &str, i: u64| {
            format!(r#"{{"key":"{k}","value":"v","createdIndex":{i},"modifiedIndex":{i}}}"#)
        };
        refused(
            format!(
                r#"{{"node":{{"dir":true,"nodes":[{{"key":"/a","dir":true,"createdIndex":1,"modifiedIndex":1,"nodes":[{}]}},{{"key":"/a","dir":true,"createdIndex":3,"modifiedIndex":3}}]}}}}"#,
                key("/a/b", 2)
            )
            .as_bytes(),
            "\"/a\" is listed twice",
        );
        refused(
            format!(
                r#"{{"node":{{"dir":true,"nodes":[{{"key":"/a","value":"v","createdIndex":1,"modifiedIndex":1,"nodes":[{}]}}]}}}}"#,
                key("/a/b", 2)
            )
            .as_bytes(),
            "\"nodes\" below a key",
        );
        for index in ["\"1000\"", "-1", "1e3", "18446744073709551615"] {
            let text = format!(r#"{{"etcdIndex":{index},"node":{{"dir":true}}}}"#);
            refused(text.as_bytes(), "\"etcdIndex\" is not an integer");
        }
        let text = format!(
            r#"{{"node":{{"dir":true,"nodes":[{}]}}}}"#,
            key("/a", 9_223_372_036_854_775_808)
        );
        refused(text.as_bytes(), "no createdIndex");
        refused(&vec![b'['; 20_000_000], "nested more than");
        // As deep as an export may be: parsed (and refused for what it is).
        let deepest = format!(
            "{}{}",
            "[".repeat(MAX_IMPORT_NESTING),
            "]".repeat(MAX_IMPORT_NESTING)
        );
        refused(deepest.as_bytes(), "no \"node\"");
        // Brackets in strings (escaped quotes too) are not nesting.
        let value = format!("\\\"{}", "[".repeat(2 * MAX_IMPORT_NESTING));
        let text = format!(
            r#"{{"etcdIndex":9223372036854775807,"node":{{"dir":true,"nodes":[{{"key":"/a","value":"{value}","createdIndex":1,"modifiedIndex":1}}]}}}}"#
        );
        let import = read_import(text.into_bytes(), 0).unwrap();
        assert_eq!((import.nodes, import.index), (1, i64::MAX as u64));
    }

    /// A compaction that fails (here its snapshot's temporary file cannot
    /// be created) is tried again once the journal has grown as much
    /// again, not at every commit; once it can succeed, it does.
    #[test]
    fn a_failing_compaction_is_tried_again_only_as_the_journal_doubles() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 4096).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        // Each snapshot is waited for, so every start is counted with its
        // result before the next commit.
        let mut fill_waiting = |j: &mut LogJournal, from: u64, to: u64| {
            for i in from..=to {
                let m = put(i);
                j.commit(std::slice::from_ref(&m), i).unwrap();
                apply_mutation(&mut root, &m);
                j.committed(&root, i);
                j.maintain(&root, i, true);
            }
            root.clone()
        };
        std::fs::create_dir(dir.path().join(SNAP_TMP)).unwrap();
        fill_waiting(&mut j, 1, 3000);
        let journal = j.len - j.base_len;
        assert!(journal > 256 << 10, "{journal} bytes of records");
        // From 4 KiB, doubling: 4, 8, ... 256 KiB.
        assert!(
            (5..=9).contains(&j.snapshots_started),
            "{} snapshots started over 3,000 commits",
            j.snapshots_started
        );
        std::fs::remove_dir(dir.path().join(SNAP_TMP)).unwrap();
        let root = fill_waiting(&mut j, 3001, 3000 + 3000);
        assert!(dir.path().join(SNAP_FILE).exists());
        assert!(j.len - j.base_len < journal, "the journal was compacted");
        assert_eq!(j.retry_len, 0);
        drop(j);
        let (rec, _) = open(dir.path(), 4096).unwrap();
        assert_eq!(rec.index, 6000);
        assert!(rec.snapshot_index.is_some());
        assert_eq!(rows(&rec.root), rows(&root));
    }

    /// Commits of every size (one to four mutations each), across
    /// block boundaries, preallocation steps and a compaction; then a
    /// crash (no close): the zeros kept ahead of the records are no torn
    /// tail, and every commit is back.
    #[test]
    fn block_writes_keep_every_commit_across_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 1 << 20).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut index = 0;
        while index < 3000 {
            let before = j.len;
            let mut batch = Vec::new();
            for _ in 0..=next(3) {
                index += 1;
                let m = Mutation::Put {
                    key: format!("/k{}", index % 500),
                    created: index,
                    modified: index,
                    expiration: None,
                    value: Some("x".repeat(next(9000) as usize).into()),
                };
                apply_mutation(&mut root, &m);
                batch.push(m);
            }
            j.commit(&batch, index).unwrap();
            assert!(j.len > before && j.allocated >= j.len);
            assert_eq!(j.tail.len() as u64, j.len % BLOCK as u64);
            j.committed(&root, index);
        }
        // Let a compaction that is under way finish, as a later commit
        // would.
        j.maintain(&root, index, true);
        index += 1;
        let m = put(index);
        j.commit(std::slice::from_ref(&m), index).unwrap();
        apply_mutation(&mut root, &m);
        let file_len = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        assert!(file_len > j.len, "no zeros kept ahead of the records");
        drop(j);
        let (rec, j) = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.index, index);
        assert_eq!(rec.torn_bytes, 0);
        assert!(rec.snapshot_index.is_some());
        assert_eq!(rows(&rec.root), rows(&root));
        assert_eq!(j.allocated, j.len);
    }

    /// A journal of acknowledged commits left by a crash (the zeros kept
    /// ahead of the records after them), whose records end at 8 bytes
    /// before a sector boundary: the directory, the tree, the last index
    /// and where the records end.
    fn crashed_journal() -> (tempfile::TempDir, Arc<Node>, u64, usize) {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 1 << 20).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        fill(&mut j, 1, 20, &mut root);
        // One more commit, sized so that the records end where wanted.
        let record = |index: u64, n: usize| Mutation::Put {
            key: "/pad".into(),
            created: index,
            modified: index,
            expiration: None,
            value: Some("p".repeat(n).into()),
        };
        let mut probe = Vec::new();
        encode_batch(&mut probe, 21, &[record(21, 0)]);
        let size = RECORD_HEADER + probe.len();
        let pad = (SECTOR - 8 + SECTOR - (j.len as usize + size) % SECTOR) % SECTOR;
        let m = record(21, pad);
        j.commit(std::slice::from_ref(&m), 21).unwrap();
        apply_mutation(&mut root, &m);
        let len = j.len as usize;
        assert_eq!(len % SECTOR, SECTOR - 8);
        assert!(j.allocated as usize > len + 4 * SECTOR);
        drop(j);
        (dir, root, 21, len)
    }

    /// The record a 22nd commit would have written (several sectors long).
    fn next_record() -> Vec<u8> {
        let m = Mutation::Put {
            key: "/next".into(),
            created: 22,
            modified: 22,
            expiration: None,
            value: Some("n".repeat(3000).into()),
        };
        let mut payload = Vec::new();
        encode_batch(&mut payload, 22, &[m]);
        let mut rec = Vec::new();
        put_record(&mut rec, &payload).unwrap();
        rec
    }

    fn write_at(dir: &Path, at: usize, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().write(true).open(dir.join(FILE)).unwrap();
        f.write_all_at(bytes, at as u64).unwrap();
    }

    /// A power loss during a commit's block write: the sectors before a
    /// boundary reached the disk, the rest are still the zeros laid down
    /// ahead. The torn record is cut off, every acknowledged one kept.
    #[test]
    fn a_block_write_torn_at_a_sector_boundary_is_cut_off() {
        let rec = next_record();
        // The boundary inside the record's header (8 bytes of it written),
        // then inside its payload (one sector and 8 bytes of it written).
        for kept in [8, 8 + SECTOR] {
            let (dir, root, index, len) = crashed_journal();
            write_at(dir.path(), len, &rec[..kept]);
            let (recovered, j) = open(dir.path(), 1 << 20).unwrap();
            assert_eq!(recovered.index, index, "{kept} bytes written");
            // Counted up to its last byte that is not zero.
            let torn = kept - rec[..kept].iter().rev().take_while(|b| **b == 0).count();
            assert_eq!(recovered.torn_bytes, torn as u64, "{kept} bytes written");
            assert_eq!(rows(&recovered.root), rows(&root));
            assert_eq!(j.len as usize, len);
            let on_disk = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
            assert_eq!(on_disk as usize, len, "the torn tail and the zeros are cut");
        }
    }

    /// Zeros that a torn write does not explain refuse to start: the end of
    /// an acknowledged record zeroed inside its last sector, and a torn
    /// record whose later sector landed while an earlier one did not.
    #[test]
    fn zeros_that_no_torn_write_explains_refuse() {
        let (dir, _, _, len) = crashed_journal();
        write_at(dir.path(), len - 3, &[0, 0, 0]);
        let err = open(dir.path(), 1 << 20).err().expect("refused");
        assert!(err.contains("ends in zeros"), "{err}");

        let (dir, _, _, len) = crashed_journal();
        let rec = next_record();
        // The header's sector and the third one written; the second not.
        write_at(dir.path(), len, &rec[..8]);
        let third = len + 8 + SECTOR;
        write_at(dir.path(), third, &rec[third - len..third - len + SECTOR]);
        let err = open(dir.path(), 1 << 20).err().expect("refused");
        assert!(err.contains(&format!("damaged at byte {len}")), "{err}");
    }

    #[test]
    fn a_clean_stop_leaves_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 1 << 40).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        fill(&mut j, 1, 12_000, &mut root);
        assert!(!dir.path().join(SNAP_FILE).exists());
        j.close(&root, 12_000);
        drop(j);
        let log_len = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        assert!(log_len < 100, "journal of {log_len} bytes after the stop");
        let (rec, _) = open(dir.path(), 1 << 40).unwrap();
        assert_eq!((rec.index, rec.snapshot_index), (12_000, Some(12_000)));
        assert_eq!(rows(&rec.root), rows(&root));
    }

    #[test]
    fn a_snapshot_beside_the_whole_journal_recovers_the_same_store() {
        // The moment between the snapshot's rename and the journal's
        // rewrite: records the snapshot holds are skipped, the rest apply.
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 1 << 30).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        fill(&mut j, 1, 300, &mut root);
        write_snapshot(dir.path(), &root, 300).unwrap();
        fill(&mut j, 301, 400, &mut root);
        // Leftovers of an interrupted compaction are ignored and removed.
        std::fs::write(dir.path().join(SNAP_TMP), b"partial").unwrap();
        std::fs::write(dir.path().join(LOG_TMP), b"partial").unwrap();
        drop(j);
        let (rec, _) = open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.snapshot_index, Some(300));
        assert_eq!(rec.index, 400);
        assert_eq!(rows(&rec.root), rows(&root));
        assert!(!dir.path().join(SNAP_TMP).exists());
        assert!(!dir.path().join(LOG_TMP).exists());
    }

    #[test]
    fn a_journal_whose_snapshot_is_missing_or_damaged_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut j) = open(dir.path(), 1 << 30).unwrap();
        let mut root = Arc::new(Node::dir(0, None));
        fill(&mut j, 1, 200, &mut root);
        j.compact_now(&root, 200).unwrap();
        fill(&mut j, 201, 210, &mut root);
        drop(j);
        let snap = dir.path().join(SNAP_FILE);
        let good = std::fs::read(&snap).unwrap();

        // Every byte flip in the snapshot is detected, and nothing is written.
        let log_before = std::fs::read(dir.path().join(FILE)).unwrap();
        for at in (0..good.len()).step_by(97) {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&snap, &bad).unwrap();
            let err = open(dir.path(), 1 << 30)
                .err()
                .unwrap_or_else(|| panic!("a flip at byte {at} of the snapshot was not detected"));
            assert!(err.contains("keygate.snap"), "{err}");
            assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap(), log_before);
        }
        // Cut short anywhere: refused too (a snapshot is renamed into place
        // only when whole).
        for cut in [good.len() - 1, good.len() / 2, 20] {
            std::fs::write(&snap, &good[..cut]).unwrap();
            let err = open(dir.path(), 1 << 30).err().unwrap();
            assert!(err.contains("keygate.snap"), "{err}");
        }
        // Missing: the journal's base record says it is needed.
        std::fs::remove_file(&snap).unwrap();
        let err = open(dir.path(), 1 << 30).err().unwrap();
        assert!(
            err.contains("keygate.log") && err.contains("keygate.snap is missing"),
            "{err}"
        );
        std::fs::write(&snap, &good).unwrap();
        let (rec, _) = open(dir.path(), 1 << 30).unwrap();
        assert_eq!((rec.index, rec.snapshot_index), (210, Some(200)));
        assert_eq!(rows(&rec.root), rows(&root));
    }
}
