//! Change detection by content on the receiving side (FEATURE_CHECKSUM, `--checksum`, and the
//! confirmation `--verify full` makes of files it would skip): the BLAKE3 of each file at the
//! destination that could be the sender's, hashed in parallel while the sender's SUMS come in.
//! Only a regular file of the entry's size can be equal, so only those are read; with
//! SUMS_CONFIRM only those the size and mtime check would keep.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{Mode, OFlags};

use super::dest_refused;
use crate::sched::cpus;
use crate::sys::beneath::DirCache;
use crate::vfile::index::{Index, Kind};
use crate::wire::frame;

/// Bytes per second the slowest side is allowed to hash its tree at (a disk that reads 8
/// MiB/s): how long one end of a `--checksum` transfer may wait for the other's digests.
pub const SLOWEST_HASHING: u64 = 8 << 20;

/// What comparing costs a node per index entry while both sides' digests are held.
pub const PER_ENTRY: u64 = 2 * std::mem::size_of::<Option<[u8; 32]>>() as u64;

/// Which files the destination holds already, as decided by the sender's SUMS.
pub struct Held {
    /// `frame::SUMS_*`.
    pub mode: u8,
    /// By entry: the file at the destination has the sender's BLAKE3 (empty for SUMS_STAMP).
    pub same: Vec<bool>,
}

impl Held {
    /// The sender's digests against the destination's.
    pub fn matched(mode: u8, theirs: &[Option<[u8; 32]>], ours: &[Option<[u8; 32]>]) -> Held {
        let same = theirs.iter().zip(ours).map(|(t, o)| t.is_some() && t == o).collect();
        Held { mode, same }
    }

    /// Whether the mode decides by content (the files' BLAKE3) rather than by size and mtime.
    pub fn by_content(&self) -> bool {
        self.mode != frame::SUMS_STAMP
    }

    /// Bytes of the files found equal.
    pub fn bytes(&self, index: &Index) -> u64 {
        index.entries().iter().zip(&self.same).filter(|(_, &s)| s).map(|(e, _)| e.size).sum()
    }
}

/// Whether entry `i` is one the sender's SUMS carry a digest of: a non-empty file.
pub fn summed(index: &Index, i: usize) -> bool {
    index.entries().get(i).is_some_and(|e| e.kind == Kind::File && e.size > 0)
}

/// The BLAKE3 of every file under `dest` that could equal the index's entry of the same path
/// (None for the others, and for all when the destination does not exist yet). Read beneath
/// `dest`, no symlink followed; a file that cannot be read is simply not equal.
///
/// `stop`: the exchange gave up (the peer left, a deadline passed, the node closes): the
/// workers take no further file.
pub fn own_digests(dest: Option<BorrowedFd<'_>>, index: &Index, mode: u8, stop: &(dyn Fn() -> bool + Sync)) -> Vec<Option<[u8; 32]>> {
    if mode == frame::SUMS_STAMP {
        return Vec::new();
    }
    let entries = index.entries();
    let mut out = vec![None; entries.len()];
    let Some(dest) = dest else { return out };
    let files: Vec<usize> = (0..entries.len()).filter(|&i| summed(index, i)).collect();
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, [u8; 32])>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cpus().clamp(1, 4))
            .map(|_| {
                s.spawn(|| {
                    let mut found = Vec::new();
                    let mut dirs = DirCache::default();
                    while let Some(&i) = files.get(next.fetch_add(1, Ordering::Relaxed)).filter(|_| !stop()) {
                        let e = &entries[i];
                        let Ok((dir, name)) = dirs.parent(dest, &e.path, dest_refused) else { continue };
                        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                        let Ok(file) = rustix::fs::openat(dir, name, flags, Mode::empty()).map(File::from) else { continue };
                        let Ok(st) = rustix::fs::fstat(&file) else { continue };
                        let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
                        let mtime = st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128;
                        if !regular || st.st_size as u64 != e.size || (mode == frame::SUMS_CONFIRM && mtime != e.mtime_ns as i128) {
                            continue;
                        }
                        if let Ok(d) = crate::hash::blake3_file(&file, e.size) {
                            found.push((i, d));
                        }
                    }
                    found
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    for (i, d) in parts.into_iter().flatten() {
        out[i] = Some(d);
    }
    out
}
