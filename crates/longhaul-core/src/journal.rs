//! The resume journal of a push: which blocks a node has written and verified, so that a
//! transfer cut short (a dropped connection, a killed sender or node) resumes without sending
//! them again.
//!
//! One file per transfer, `ROOT/.longhaul/journal/<key>.jnl`, where the key is a BLAKE3 of the
//! destination, the block size and the encoded content index: the same push (same tree, same
//! sizes and mtimes) finds its journal again, a changed tree does not. The file is a header
//! followed by one 24-byte record per block, appended by the disk writer right after the
//! block's bytes were written (one `write` on an `O_APPEND` descriptor, no fsync): a crash of
//! the node process loses at most the blocks in flight at that moment, never a recorded one.
//! The record carries the block's XXH3, and a resuming node reads each recorded block back and
//! checks it, so a machine crash that lost page-cache data the journal already names costs a
//! resend, not a corrupt file. A torn or garbled record fails its own check and is ignored.
//!
//! The temporary files of a journaled transfer are named after the key, not the session, so
//! the next attempt finds them.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::frame::hex;
use crate::hash::xxh3;

const MAGIC: &[u8; 8] = b"LHJRNL01";
const RECORD: usize = 24;

/// The journal key of a push.
pub fn key(dest: &[u8], block_size: u32, index: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&(dest.len() as u64).to_le_bytes());
    h.update(dest);
    h.update(&block_size.to_le_bytes());
    h.update(index);
    hex(&h.finalize().as_bytes()[..16])
}

/// The prefix of the temporary files of a journaled transfer (`.lh-<12 hex digits>-`).
pub fn temp_prefix(key: &str) -> String {
    format!(".lh-{}-", &key[..12])
}

fn record(block: u64, hash: u64) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..8].copy_from_slice(&block.to_le_bytes());
    r[8..16].copy_from_slice(&hash.to_le_bytes());
    let check = xxh3(&r[..16]);
    r[16..].copy_from_slice(&check.to_le_bytes());
    r
}

/// An open journal that writers append to.
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// What an earlier attempt left: the blocks it recorded, each with its XXH3.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Previous {
    pub blocks: Vec<(u64, u64)>,
}

impl Journal {
    /// Opens the journal `key` in `dir` for a transfer of `nblocks` blocks into `dest`. With
    /// `resume`, the records of an earlier attempt are returned and kept; without, any earlier
    /// journal is discarded.
    pub fn open(dir: &Path, key: &str, dest: &[u8], nblocks: u64, resume: bool) -> Result<(Journal, Previous)> {
        fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", b".longhaul/journal", e))?;
        let path = dir.join(format!("{key}.jnl"));
        let header = header(dest, nblocks);
        let previous = if resume { read(&path, &header, nblocks)? } else { None };
        let file = match previous {
            Some(_) => OpenOptions::new().append(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path),
            None => {
                let _ = fs::remove_file(&path);
                OpenOptions::new().append(true).create_new(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(&path)
            }
        }
        .map_err(|e| Error::io("open journal", path.as_os_str().as_encoded_bytes(), e))?;
        let journal = Journal { file, path };
        if previous.is_none() {
            (&journal.file).write_all(&header).map_err(|e| Error::io("write journal", b"", e))?;
        }
        Ok((journal, previous.unwrap_or_default()))
    }

    /// Records that block `block`, whose XXH3 is `hash`, is written.
    pub fn record(&self, block: u64, hash: u64) -> Result<()> {
        (&self.file).write_all(&record(block, hash)).map_err(|e| Error::io("write journal", b"", e))
    }

    /// The transfer completed: the journal goes.
    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn header(dest: &[u8], nblocks: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(20 + dest.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&nblocks.to_le_bytes());
    h.extend_from_slice(&(dest.len() as u32).to_le_bytes());
    h.extend_from_slice(dest);
    h
}

/// The records of the journal at `path`, if it exists and starts with `header`.
fn read(path: &Path, header: &[u8], nblocks: u64) -> Result<Option<Previous>> {
    let mut f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open journal", path.as_os_str().as_encoded_bytes(), e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| Error::io("read journal", b"", e))?;
    if !bytes.starts_with(header) {
        return Ok(None);
    }
    Ok(Some(parse_records(&bytes[header.len()..], nblocks)))
}

/// Records that pass their check, for blocks below `nblocks`, the last of each block winning.
fn parse_records(bytes: &[u8], nblocks: u64) -> Previous {
    let mut blocks = Vec::with_capacity(bytes.len() / RECORD);
    for r in bytes.chunks_exact(RECORD) {
        let block = u64::from_le_bytes(r[..8].try_into().expect("8"));
        let hash = u64::from_le_bytes(r[8..16].try_into().expect("8"));
        if u64::from_le_bytes(r[16..].try_into().expect("8")) == xxh3(&r[..16]) && block < nblocks {
            blocks.push((block, hash));
        }
    }
    blocks.sort_by_key(|&(b, _)| b);
    blocks.dedup_by_key(|&mut (b, _)| b);
    Previous { blocks }
}

/// Where a journal says its transfer was going, for removing its temporary files.
fn dest_of(path: &Path) -> Option<Vec<u8>> {
    let mut f = File::open(path).ok()?;
    let mut head = [0u8; 20];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != MAGIC {
        return None;
    }
    let n = u32::from_le_bytes(head[16..20].try_into().expect("4")) as usize;
    if n > 4096 {
        return None;
    }
    let mut dest = vec![0u8; n];
    f.read_exact(&mut dest).ok()?;
    Some(dest)
}

/// What `remove_stale` removed: journals, and the temporary files of their transfers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub journals: usize,
    pub files: u64,
    pub bytes: u64,
}

/// Removes journals in `dir` not written to for `older_than`, and the temporary files of their
/// transfers under `root/<dest>`; a journal whose key `claim` refuses (a push is using it) stays.
pub fn remove_stale(root: &Path, dir: &Path, older_than: Duration, claim: &mut dyn FnMut(&str) -> bool) -> Removed {
    let mut removed = Removed::default();
    let Ok(entries) = fs::read_dir(dir) else { return removed };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let path = e.path();
        let Some(key) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jnl")).map(str::to_owned) else {
            continue;
        };
        let age = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| now.duration_since(t).ok());
        if key.len() < 12 || age.is_none_or(|a| a < older_than) || !claim(&key) {
            continue;
        }
        if let Some(dest) = dest_of(&path) {
            if crate::index::check_path(&dest).is_ok() || dest.is_empty() {
                remove_temps_under(&root.join(std::ffi::OsStr::from_bytes(&dest)), &temp_prefix(&key), &mut removed);
            }
        }
        if fs::remove_file(&path).is_ok() {
            removed.journals += 1;
        }
    }
    removed
}

fn remove_temps_under(dir: &Path, prefix: &str, removed: &mut Removed) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let name = e.file_name();
        if t.is_dir() {
            remove_temps_under(&e.path(), prefix, removed);
        } else if t.is_file() && name.to_str().is_some_and(|n| n.starts_with(prefix) && n.ends_with(".part")) {
            // Measured before it goes: the node's account gives back what it counted.
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(e.path()).is_ok() {
                removed.files += 1;
                removed.bytes += size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    fn scratch(name: &str) -> Scratch {
        Scratch::new(&format!("journal-{name}"))
    }

    #[test]
    fn records_survive_a_reopen_and_garbage_is_ignored() {
        let dir = scratch("reopen");
        let k = key(b"in", 4096, b"index");
        let (j, prev) = Journal::open(&dir, &k, b"in", 10, true).unwrap();
        assert_eq!(prev, Previous::default());
        j.record(3, 33).unwrap();
        j.record(1, 11).unwrap();
        j.record(3, 33).unwrap();
        j.record(12, 5).unwrap(); // past the end: ignored on reading
        drop(j);
        // A torn record (half written) and a zeroed one (lost data after a machine crash).
        let path = dir.join(format!("{k}.jnl"));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&record(7, 77)[..10]).unwrap();
        drop(f);
        let (j, prev) = Journal::open(&dir, &k, b"in", 10, true).unwrap();
        assert_eq!(prev.blocks, vec![(1, 11), (3, 33)]);
        drop(j);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; RECORD]);
        fs::write(&path, &bytes).unwrap();
        let (_, prev) = Journal::open(&dir, &k, b"in", 10, true).unwrap();
        assert_eq!(prev.blocks, vec![(1, 11), (3, 33)]);
    }

    #[test]
    fn a_fresh_start_or_another_transfer_finds_nothing() {
        let dir = scratch("fresh");
        let k = key(b"in", 4096, b"index");
        let (j, _) = Journal::open(&dir, &k, b"in", 10, true).unwrap();
        j.record(2, 22).unwrap();
        drop(j);
        // Same key, other block count (cannot happen with one index, but must not be trusted).
        let (_, prev) = Journal::open(&dir, &k, b"in", 9, true).unwrap();
        assert!(prev.blocks.is_empty());
        let (j, _) = Journal::open(&dir, &k, b"in", 10, true).unwrap();
        j.record(2, 22).unwrap();
        drop(j);
        let (j, prev) = Journal::open(&dir, &k, b"in", 10, false).unwrap();
        assert!(prev.blocks.is_empty(), "no-resume discards the journal");
        j.remove();
        assert!(fs::read_dir(&dir).unwrap().next().is_none());
        assert_ne!(key(b"in", 4096, b"index"), key(b"in", 8192, b"index"));
        assert_ne!(key(b"in", 4096, b"index"), key(b"i", 4096, b"nindex"));
    }

    #[test]
    fn stale_journals_go_with_their_temporary_files() {
        let root = scratch("stale");
        let jdir = root.join(".longhaul/journal");
        let k = key(b"in", 4096, b"index");
        let (j, _) = Journal::open(&jdir, &k, b"in", 10, true).unwrap();
        drop(j);
        fs::create_dir_all(root.join("in/sub")).unwrap();
        let temp = root.join(format!("in/sub/{}3.part", temp_prefix(&k)));
        let other = root.join("in/sub/.lh-000000000000-3.part");
        fs::write(&temp, b"x").unwrap();
        fs::write(&other, b"x").unwrap();
        let mut yes = |_: &str| true;
        assert_eq!(remove_stale(&root, &jdir, Duration::from_secs(3600), &mut yes), Removed::default(), "fresh journals stay");
        assert_eq!(remove_stale(&root, &jdir, Duration::ZERO, &mut |_| false), Removed::default(), "a journal in use stays");
        assert!(temp.exists());
        assert_eq!(remove_stale(&root, &jdir, Duration::ZERO, &mut yes), Removed { journals: 1, files: 1, bytes: 1 });
        assert!(!temp.exists());
        assert!(other.exists(), "another transfer's temporary file stays");
    }
}
