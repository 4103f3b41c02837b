//! The sending half of a bench (`longhaul bench`): a session like any push, whose one "file"
//! is `size` bytes of a pattern made once in memory. No directory is scanned and no file is
//! read; the node, asked for FEATURE_DISCARD, checks every block and keeps none.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use rustix::fs::{Mode, OFlags};

use super::{send_scanned, Scanned, SendOptions, SendSummary};
use crate::error::{Error, Result};
use crate::session::progress::Watch;
use crate::vfile::index::{Entry, Index, Kind};
use crate::vfile::scan::{Scan, Stamp};

/// The name of the one entry a bench's index holds: the node never makes it.
const NAME: &[u8] = b"bench";

/// The bench data's repeating unit, iperf3's default write size: small enough that the copy
/// into the socket reads it from the CPU's cache. Against a pattern of a whole 1 MiB block,
/// interleaved over loopback on the shared 2-core VM (4 GiB, 1 stream, 4 runs each): the
/// client's CPU 0.26 against 0.29 s/GiB (medians), the rate the same within the noise.
pub(super) const PIECE: usize = 128 << 10;

/// Bench data: bytes from a xorshift generator, so that nothing on the path (a
/// compressing link, a deduplicating NIC) sees a run of zeros it could shortcut.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A bench's content index, the same at both ends (BENCH carries only the size): one file of
/// `size` bytes, which the node never makes.
pub(crate) fn bench_index(size: u64) -> Result<Index> {
    let entry = Entry { path: NAME.into(), kind: Kind::File, mode: 0o600, mtime_ns: 0, size, offset: 0, target: Box::default() };
    Index::from_entries(vec![entry])
}

/// Sends `size` bytes of generated data to the node at `addr`, which discards them.
/// `opts.generated` must be set; change detection, resume and whole-file verification have no
/// files to work on and are refused.
pub fn send_generated(size: u64, addr: &str, opts: &SendOptions, watch: Watch) -> Result<SendSummary> {
    if !opts.generated {
        return Err(Error::Usage("a bench sends generated data (generated: true)".into()));
    }
    if size == 0 {
        return Err(Error::Usage("--size must be at least 1 byte".into()));
    }
    if opts.resume || opts.checksum || opts.verify == super::Verify::Full {
        return Err(Error::Usage("a bench has no files to resume, compare or read back (no --resume, --checksum, --verify full)".into()));
    }
    if opts.delete || opts.dry_run {
        return Err(Error::Usage("a bench writes nothing to delete or plan (no --delete, --dry-run)".into()));
    }
    if opts.verify == super::Verify::None && opts.digest == super::Digest::Blake3 {
        return Err(Error::Usage("--verify none makes no digest: drop --digest blake3".into()));
    }
    let started = Instant::now();
    let index = bench_index(size)?;
    // The engine holds a base directory for its files; a bench opens nothing beneath it.
    let base = PathBuf::from("/");
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let base_fd: OwnedFd = rustix::fs::open(&base, flags, Mode::empty()).map_err(|e| Error::io("open", b"/", e.into()))?;
    let scan =
        Scan { index, base, base_fd, skipped: Vec::new(), excluded: 0, hard_links: 0, sparse_files: 0, stamps: vec![Stamp::default()] };
    send_scanned(Scanned { scan: &scan, started, scan_seconds: 0.0, digests: None }, addr, b"", opts, watch)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pattern_has_the_length_asked_and_is_not_constant() {
        let p = super::pattern(1 << 20);
        assert_eq!(p.len(), 1 << 20);
        assert!(p.windows(2).any(|w| w[0] != w[1]));
        assert_eq!(super::pattern(13).len(), 13);
    }
}
