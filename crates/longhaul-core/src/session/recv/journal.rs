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
//!
//! Every journal file is opened, made and removed relative to the journal directory's
//! descriptor (state_dir.rs), with O_NOFOLLOW, and a new one with O_EXCL: a symlink planted
//! under a journal's name is neither read nor written through.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::{Error, Result};
use crate::hash::xxh3;
use crate::sys::beneath;
use crate::util::hex;

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
    dir: Arc<OwnedFd>,
    name: String,
}

/// What an earlier attempt left: the blocks it recorded, each with its XXH3.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Previous {
    pub blocks: Vec<(u64, u64)>,
}

impl Journal {
    /// Opens the journal `key` in the journal directory `dir` for a transfer of `nblocks`
    /// blocks into `dest`. With `resume`, the records of an earlier attempt are returned and
    /// kept; without, any earlier journal is discarded.
    pub fn open(dir: &Arc<OwnedFd>, key: &str, dest: &[u8], nblocks: u64, resume: bool) -> Result<(Journal, Previous)> {
        let name = format!("{key}.jnl");
        let header = header(dest, nblocks);
        let previous = if resume { read(dir.as_fd(), &name, &header, nblocks)? } else { None };
        let file = match previous {
            Some(_) => {
                rustix::fs::openat(dir, name.as_str(), OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            }
            None => {
                let _ = rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty());
                let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                rustix::fs::openat(dir, name.as_str(), flags, Mode::from_raw_mode(0o600))
            }
        }
        .map(File::from)
        .map_err(|e| Error::io("open journal", name.as_bytes(), e.into()))?;
        let journal = Journal { file, dir: Arc::clone(dir), name };
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
        let _ = rustix::fs::unlinkat(&*self.dir, self.name.as_str(), AtFlags::empty());
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

/// Opens the regular file `name` in `dir` for reading, following no symlink (O_NONBLOCK: a
/// FIFO planted there must not hold the open).
fn open_read(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<File> {
    let f =
        File::from(rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())?);
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        _ => Err(rustix::io::Errno::INVAL),
    }
}

/// The records of the journal `name` in `dir`, if it exists and starts with `header`.
fn read(dir: BorrowedFd<'_>, name: &str, header: &[u8], nblocks: u64) -> Result<Option<Previous>> {
    let mut f = match open_read(dir, OsStr::new(name)) {
        Ok(f) => f,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        // A symlink, a FIFO, a directory under a journal's name: not a journal; it is
        // replaced by a new one.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::INVAL | rustix::io::Errno::ISDIR) => return Ok(None),
        Err(e) => return Err(Error::io("open journal", name.as_bytes(), e.into())),
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
fn dest_of(dir: BorrowedFd<'_>, name: &OsStr) -> Option<Vec<u8>> {
    let mut f = open_read(dir, name).ok()?;
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

/// Removes journals in the journal directory `dir` not written to for `older_than`, and the
/// temporary files of their transfers under `root/<dest>` (found through directories opened
/// beneath the root, so a symlink planted on the way leads nowhere); a journal whose key
/// `claim` refuses (a push is using it) stays.
pub fn remove_stale(root: BorrowedFd<'_>, dir: BorrowedFd<'_>, older_than: Duration, claim: &mut dyn FnMut(&str) -> bool) -> Removed {
    let mut removed = Removed::default();
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else { return removed };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let name = OsStr::from_bytes(e.file_name().to_bytes()).to_owned();
        let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".jnl")).map(str::to_owned) else {
            continue;
        };
        let age = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW).ok().and_then(|st| {
            let modified = SystemTime::UNIX_EPOCH + Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
            now.duration_since(modified).ok()
        });
        if key.len() < 12 || age.is_none_or(|a| a < older_than) || !claim(&key) {
            continue;
        }
        if let Some(dest) = dest_of(dir, &name) {
            if crate::vfile::index::check_path(&dest).is_ok() || dest.is_empty() {
                if let Ok(d) = beneath::open_dir(root, &dest, beneath::root_refused) {
                    remove_temps_under(d, &temp_prefix(&key), 0, &mut removed);
                }
            }
        }
        if rustix::fs::unlinkat(dir, &name, AtFlags::empty()).is_ok() {
            removed.journals += 1;
        }
    }
    removed
}

/// How deep `remove_temps_under` goes: deeper trees keep their temporary files (a bound on the
/// descriptors a walk holds, one per level).
const MAX_DEPTH: usize = 256;

/// Removes the temporary files named `prefix*.part` in the directory `dir` and below it, opening
/// each subdirectory from its parent without following symlinks.
fn remove_temps_under(dir: OwnedFd, prefix: &str, depth: usize, removed: &mut Removed) {
    let Ok(entries) = rustix::fs::Dir::read_from(&dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let kind = match e.file_type() {
            // Some file systems leave the type out of the directory entry.
            rustix::fs::FileType::Unknown => match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => rustix::fs::FileType::from_raw_mode(st.st_mode),
                Err(_) => continue,
            },
            t => t,
        };
        match kind {
            rustix::fs::FileType::Directory if depth < MAX_DEPTH => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                if let Ok(sub) = rustix::fs::openat(&dir, name, flags, Mode::empty()) {
                    remove_temps_under(sub, prefix, depth + 1, removed);
                }
            }
            rustix::fs::FileType::RegularFile if name.to_str().is_some_and(|n| n.starts_with(prefix) && n.ends_with(".part")) => {
                // Measured before it goes: the node's account gives back what it counted.
                let size = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|st| st.st_size as u64).unwrap_or(0);
                if rustix::fs::unlinkat(&dir, name, AtFlags::empty()).is_ok() {
                    removed.files += 1;
                    removed.bytes += size;
                }
            }
            _ => {}
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

    fn dir_fd(p: &std::path::Path) -> Arc<OwnedFd> {
        std::fs::create_dir_all(p).unwrap();
        Arc::new(rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap())
    }

    #[test]
    fn records_survive_a_reopen_and_garbage_is_ignored() {
        let dir = scratch("reopen");
        let fd = dir_fd(&dir);
        let k = key(b"in", 4096, b"index");
        let (j, prev) = Journal::open(&fd, &k, b"in", 10, true).unwrap();
        assert_eq!(prev, Previous::default());
        j.record(3, 33).unwrap();
        j.record(1, 11).unwrap();
        j.record(3, 33).unwrap();
        j.record(12, 5).unwrap(); // past the end: ignored on reading
        drop(j);
        // A torn record (half written) and a zeroed one (lost data after a machine crash).
        let path = dir.join(format!("{k}.jnl"));
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&record(7, 77)[..10]).unwrap();
        drop(f);
        let (j, prev) = Journal::open(&fd, &k, b"in", 10, true).unwrap();
        assert_eq!(prev.blocks, vec![(1, 11), (3, 33)]);
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; RECORD]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, prev) = Journal::open(&fd, &k, b"in", 10, true).unwrap();
        assert_eq!(prev.blocks, vec![(1, 11), (3, 33)]);
    }

    #[test]
    fn a_fresh_start_or_another_transfer_finds_nothing() {
        let dir = scratch("fresh");
        let fd = dir_fd(&dir);
        let k = key(b"in", 4096, b"index");
        let (j, _) = Journal::open(&fd, &k, b"in", 10, true).unwrap();
        j.record(2, 22).unwrap();
        drop(j);
        // Same key, other block count (cannot happen with one index, but must not be trusted).
        let (_, prev) = Journal::open(&fd, &k, b"in", 9, true).unwrap();
        assert!(prev.blocks.is_empty());
        let (j, _) = Journal::open(&fd, &k, b"in", 10, true).unwrap();
        j.record(2, 22).unwrap();
        drop(j);
        let (j, prev) = Journal::open(&fd, &k, b"in", 10, false).unwrap();
        assert!(prev.blocks.is_empty(), "no-resume discards the journal");
        j.remove();
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
        assert_ne!(key(b"in", 4096, b"index"), key(b"in", 8192, b"index"));
        assert_ne!(key(b"in", 4096, b"index"), key(b"i", 4096, b"nindex"));
    }

    #[test]
    fn stale_journals_go_with_their_temporary_files() {
        let root = scratch("stale");
        let jdir = dir_fd(&root.join(".longhaul/journal"));
        let rootfd = dir_fd(&root);
        let k = key(b"in", 4096, b"index");
        let (j, _) = Journal::open(&jdir, &k, b"in", 10, true).unwrap();
        drop(j);
        std::fs::create_dir_all(root.join("in/sub")).unwrap();
        let temp = root.join(format!("in/sub/{}3.part", temp_prefix(&k)));
        let other = root.join("in/sub/.lh-000000000000-3.part");
        std::fs::write(&temp, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        let mut yes = |_: &str| true;
        let (r, j) = (rootfd.as_fd(), jdir.as_fd());
        assert_eq!(remove_stale(r, j, Duration::from_secs(3600), &mut yes), Removed::default(), "fresh journals stay");
        assert_eq!(remove_stale(r, j, Duration::ZERO, &mut |_| false), Removed::default(), "a journal in use stays");
        assert!(temp.exists());
        assert_eq!(remove_stale(r, j, Duration::ZERO, &mut yes), Removed { journals: 1, files: 1, bytes: 1 });
        assert!(!temp.exists());
        assert!(other.exists(), "another transfer's temporary file stays");
    }

    /// Issue 29: a journal's destination reached through a symlink planted inside the root
    /// leads nowhere: temporary files outside the root stay.
    #[test]
    fn stale_journals_do_not_follow_a_planted_link() {
        let root = scratch("stale-link");
        let outside = scratch("stale-link-outside");
        let jdir = dir_fd(&root.join(".longhaul/journal"));
        let rootfd = dir_fd(&root);
        let k = key(b"in", 4096, b"index");
        drop(Journal::open(&jdir, &k, b"in", 10, true).unwrap());
        std::os::unix::fs::symlink(&*outside, root.join("in")).unwrap();
        let victim = outside.join(format!("{}3.part", temp_prefix(&k)));
        std::fs::write(&victim, b"x").unwrap();
        // And a planted link under a journal's own name is not read through.
        std::os::unix::fs::symlink(&victim, root.join(".longhaul/journal/0123456789abcdef0123.jnl")).unwrap();
        let removed = remove_stale(rootfd.as_fd(), jdir.as_fd(), Duration::ZERO, &mut |_| true);
        assert_eq!(removed, Removed { journals: 2, files: 0, bytes: 0 });
        assert!(victim.exists(), "nothing outside the root is removed");
    }
}
