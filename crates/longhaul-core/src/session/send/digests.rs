//! `verify: full` on the sending side: a BLAKE3 of every whole file, read while the blocks flow.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::Result;
use crate::panic;
use crate::sched::cpus;
use crate::sys::beneath::DirCache;
use crate::sys::source::{open_source, source_read_error};
use crate::vfile::index::{Index, Kind};
use crate::vfile::scan::{Scan, Stamp};

use super::engine::check_unchanged;

/// A file entry's number and its BLAKE3.
pub(crate) type FileDigest = (u32, [u8; 32]);

/// What a sender offers as SUMS (`--checksum`, and `verify: full`'s confirmation): the BLAKE3 of
/// every non-empty file of `scan` (an empty file needs none: its size says it all). Every
/// file's digest is kept in `all`, so that `verify: full` sends them without reading the tree
/// again. The client pushing and the node answering a pull both offer this way.
pub(crate) fn summed(scan: &Scan, all: &OnceLock<Vec<FileDigest>>, stopped: &(dyn Fn() -> bool + Sync)) -> Result<Vec<FileDigest>> {
    let every = file_digests(&scan.index, &scan.stamps, scan.base_fd.as_fd(), stopped)?;
    let entries = scan.index.entries();
    let non_empty = every.iter().filter(|&&(i, _)| entries[i as usize].size > 0).copied().collect();
    let _ = all.set(every);
    Ok(non_empty)
}

/// `verify: full`: the BLAKE3 of every regular file of the index, read from the source while
/// the blocks flow (one thread per CPU, up to 4, taking files in turn). A file shorter than it
/// was at the scan, or changed since (`check_unchanged`), is a changed source rather than a
/// digest mismatch at the receiver.
pub(super) fn file_digests(
    index: &Index,
    stamps: &[Stamp],
    base: BorrowedFd<'_>,
    stopped: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<FileDigest>> {
    let entries = index.entries();
    let files: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].kind == Kind::File).collect();
    let next = AtomicUsize::new(0);
    let threads = cpus().clamp(1, 4);
    let parts: Vec<Result<Vec<FileDigest>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    panic::catch("digester", || {
                        let mut out = Vec::new();
                        let mut dirs = DirCache::default();
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = files.get(k) else { return Ok(out) };
                            if stopped() {
                                return Ok(out);
                            }
                            let e = &entries[i];
                            let file = open_source(base, &mut dirs, &e.path)?;
                            let digest = crate::hash::blake3_file(&file, e.size).map_err(|err| source_read_error(&e.path, err))?;
                            check_unchanged(index, stamps, &file, i)?;
                            out.push((i as u32, digest));
                        }
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| Err(panic::from_payload("digester", p)))).collect()
    });
    let mut all = Vec::with_capacity(files.len());
    for p in parts {
        all.extend(p?);
    }
    all.sort_unstable_by_key(|&(i, _)| i);
    Ok(all)
}
