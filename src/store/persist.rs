//! The journal on disk: an append-only log of committed batches.
//!
//! File `keygate.log` in `backend.data_dir` starts with a 16-byte header
//! naming the format version; then one record per committed batch:
//! `"KGR1"`, payload length, its bitwise complement, CRC-32 of the payload
//! (all u32 little-endian), then the payload (JSON: the store index after the
//! batch and its mutations). A batch is acknowledged only after its record
//! was written and `fdatasync` returned.
//!
//! At open, every record is checked before anything is written. A record
//! cut short at the very end of the file (a crash during an append that was
//! therefore never acknowledged), or trailing zeros, are a torn tail and are
//! cut off. Any other damage — a bad checksum, a bad header, a length that
//! does not match its complement — refuses to start: it is never resolved
//! by silently dropping acknowledged writes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tree::Node;
use super::{apply_mutation, Journal, Mutation};

/// The file's first bytes: format and version.
pub const HEADER: &[u8; 16] = b"KEYGATE-LOG-V1\n\0";
const MAGIC: &[u8; 4] = b"KGR1";
const RECORD_HEADER: usize = 16;
/// The journal's file name inside `data_dir`.
pub const FILE: &str = "keygate.log";

#[derive(serde::Deserialize)]
struct Batch {
    index: u64,
    m: Vec<Mutation>,
}

#[derive(serde::Serialize)]
struct BatchRef<'a> {
    index: u64,
    m: &'a [Mutation],
}

/// The durable journal.
pub struct LogJournal {
    file: File,
    buf: Vec<u8>,
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
}

fn damaged(path: &Path, offset: usize, what: &str) -> String {
    format!(
        "{}: damaged at byte {offset} ({what}): keygate will not start on a store whose acknowledged writes cannot be read back; restore {} from a backup (or move it away to start empty)",
        path.display(),
        path.display()
    )
}

/// Opens (or creates) the journal in `data_dir` and replays it.
pub fn open(data_dir: &Path) -> Result<(Recovered, LogJournal), String> {
    let path: PathBuf = data_dir.join(FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: cannot open: {e}", path.display())),
    }
    if bytes.is_empty() && data_dir.join("cluster-id").exists() {
        return Err(format!(
            "{}: missing or empty, but {} shows that this store held data: restore {} from a backup (or remove cluster-id to start a new, empty store)",
            path.display(),
            data_dir.join("cluster-id").display(),
            FILE
        ));
    }
    let mut root = Arc::new(Node::dir(0, None));
    let mut index = 0u64;
    let mut records = 0u64;
    let mut good = 0usize;
    if !bytes.is_empty() {
        if bytes.len() < HEADER.len() || &bytes[..HEADER.len()] != HEADER {
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
        loop {
            let rest = &bytes[good..];
            if rest.is_empty() {
                break;
            }
            if rest.iter().all(|b| *b == 0) {
                break; // zero-filled tail of an interrupted append
            }
            if rest.len() < RECORD_HEADER {
                if MAGIC.starts_with(&rest[..rest.len().min(4)]) {
                    break; // header cut short at the end: torn
                }
                return Err(damaged(&path, good, "bad record header"));
            }
            if &rest[..4] != MAGIC {
                return Err(damaged(&path, good, "bad record header"));
            }
            let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            let not_len = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
            if len != !not_len {
                return Err(damaged(
                    &path,
                    good,
                    "record length does not match its check",
                ));
            }
            let crc = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]);
            let end = RECORD_HEADER + len as usize;
            if rest.len() < end {
                break; // payload cut short at the very end: torn
            }
            let payload = &rest[RECORD_HEADER..end];
            if crc32fast::hash(payload) != crc {
                return Err(damaged(&path, good, "checksum mismatch"));
            }
            let batch: Batch = serde_json::from_slice(payload)
                .map_err(|e| damaged(&path, good, &format!("unreadable record: {e}")))?;
            if batch.index < index {
                return Err(damaged(&path, good, "the index goes back"));
            }
            for m in &batch.m {
                apply_mutation(&mut root, m);
            }
            index = batch.index;
            records += 1;
            good += end;
        }
    }
    let torn_bytes = bytes.len().saturating_sub(good.max(HEADER.len())) as u64;
    // Everything is checked: only now write (cut a torn tail, or start a
    // new file).
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
        if let Ok(dir) = File::open(data_dir) {
            let _ = dir.sync_all();
        }
    } else if torn_bytes > 0 {
        tracing::warn!(
            file = %path.display(),
            bytes = torn_bytes,
            "cutting off the torn tail of an interrupted, never acknowledged append"
        );
        file.set_len(good as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: cannot cut the torn tail: {e}", path.display()))?;
    }
    file.seek(std::io::SeekFrom::End(0))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((
        Recovered {
            root,
            index,
            records,
            torn_bytes,
        },
        LogJournal {
            file,
            buf: Vec::new(),
        },
    ))
}

impl Journal for LogJournal {
    fn commit(&mut self, mutations: &[Mutation], index: u64) -> std::io::Result<()> {
        let payload = serde_json::to_vec(&BatchRef {
            index,
            m: mutations,
        })
        .map_err(std::io::Error::other)?;
        let len = u32::try_from(payload.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "batch too large")
        })?;
        self.buf.clear();
        self.buf.extend_from_slice(MAGIC);
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&(!len).to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        self.buf.extend_from_slice(&payload);
        let before = self.file.stream_position()?;
        let res = self
            .file
            .write_all(&self.buf)
            // The commit point: nothing of this batch is visible before it.
            .and_then(|()| self.file.sync_data());
        if res.is_err() {
            // The batch is answered as failed: do not let it come back at
            // the next start (best effort; a failed fsync is not retried).
            let _ = self.file.set_len(before);
        }
        res
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

/// Reads an export, or a recursive GET of `/` taken from any etcd v2, into
/// mutations. Parsing runs on a thread with a large stack, so a key 8,000
/// levels deep imports.
pub fn read_import(bytes: Vec<u8>, now: i64) -> Result<Import, String> {
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
    let mut out = Import {
        mutations: Vec::new(),
        index: v.get("etcdIndex").and_then(Value::as_u64).unwrap_or(0),
        nodes: 0,
        expired: 0,
    };
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
        let created = n
            .get("createdIndex")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("node {key:?}: no createdIndex"))?;
        let modified = n
            .get("modifiedIndex")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("node {key:?}: no modifiedIndex"))?;
        let dir = n.get("dir").and_then(Value::as_bool).unwrap_or(false);
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
                    .to_string(),
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
