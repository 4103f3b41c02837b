//! The receiving side of one transfer session on a node.
//!
//! Threads: one network-receiver per data connection reads a block into a pooled buffer,
//! checks its XXH3 and hands it to `writers` disk-writer threads, which pwrite each piece at the
//! offset the index gives. A file that arrives whole in one block is written into an unnamed
//! O_TMPFILE in its directory and linked in under its final name once its mode and mtime are
//! set (one directory operation where a temporary name and a rename take three). Other files
//! are written under a temporary name (`.lh-<tag>-<n>.part` in their final directory; the tag
//! is the journal key's for a push, which keeps them for a resume, the session token's
//! otherwise) and renamed to their final name only when all of their bytes have been written
//! and verified; mode and mtime are set on the open file before the rename. A push journals
//! each block after writing it (journal.rs). Empty files and symlinks are made at the end,
//! directories get their modes and mtimes last (deepest first), so a read-only directory does
//! not block its own children.
//!
//! Directories are created up front, and so are files of a block or more (with fallocate, so a
//! destination that is too small fails before data flows). Smaller files are created by the
//! writer that first has bytes for them: creating and writing in one open saves an open and a
//! close per file, which is most of the cost of a small file.
//!
//! Nothing is written outside the destination: the index decoder already refused absolute
//! paths, `..` and paths through the index's own symlinks, and no top-level entry may be the
//! state directory `.longhaul` (a node's account and journals, a pulling client's journal).
//! The destination is opened from the base (a node's root, a client's DEST) one component at
//! a time, created where missing, never through a symlink (`beneath::make_dirs`); every
//! directory, file, link, rename, mode, removal and resume read is then made relative to a
//! directory descriptor opened from the destination's without following a symlink
//! (`beneath::open_dir`), so a directory swapped for a symlink while the transfer runs is
//! refused, not followed. No path of the receiver's is ever resolved from `/`.
//!
//! `Receive` is this file's facade (`prepare` and the public calls); each job lives in a file of
//! its own, with the fields it owns gathered in a struct `Receive` holds:
//! - stream.rs: the data connections' loop, block receipt and checksums (`Receipt`: blocks
//!   seen, bytes and blocks counted, the throttle);
//! - state.rs: the session state machine (`Life`: the state, its condvar, the stop flag, the
//!   sockets to shut down), the control connection's watch and the wait for the end;
//! - files.rs: file naming and writing (`Files`: the per-file slots, temporary names,
//!   O_TMPFILE, the account; `Digests`: whole-file verification; `Writers`: the disk writers);
//! - tree.rs: making the tree up front and finishing it at the end;
//! - resume.rs: earlier attempts and what a session keeps for later ones (`Resume`: the
//!   journal, what was carried over); journal.rs and conflict.rs as before.
//!
//! The OS operations are in sys/: write.rs (chunked pwrite, fallocate), tmpfile.rs (O_TMPFILE
//! and its link), beneath.rs (directory descriptors).

pub mod conflict;
pub mod journal;
pub mod sums;

mod discard;
mod disk;
mod files;
mod resume;
mod slot;
mod state;
mod stream;
#[cfg(test)]
mod tests;
mod tree;
mod unchanged;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::error::{lossy, Error, Result};
use crate::ledger::Grant;
use crate::place::placement::Placement;
use crate::pool::Pool;
use crate::rate::Throttle;
use crate::sys::beneath;
use crate::sys::tmpfile::Tmpfile;
use crate::util::hex;
use crate::vfile::blocks::BlockPlan;
use crate::vfile::blockset::BlockSet;
use crate::vfile::index::Index;
use crate::wire::frame::Token;
use disk::DiskTimes;
use files::{Digests, Files, Writers};
use journal::Journal;
use resume::{carried_over, Carried, Resume};
pub(crate) use resume::{own_part, ExistingDirs};
use slot::{FileSlot, STAGE_NONE, UNCOUNTED};
use state::Life;
use stream::{Receipt, WriteJob};

/// When the receiver makes written data durable (`fsync`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fsync {
    /// Leave it to the kernel's writeback, like cp, rsync and GridFTP (the default).
    #[default]
    None,
    /// fsync each file before it takes its final name.
    File,
    /// One syncfs of the destination's file system before the transfer is reported complete.
    End,
}

impl Fsync {
    pub fn parse(s: &str) -> Result<Fsync> {
        match s {
            "none" => Ok(Fsync::None),
            "file" => Ok(Fsync::File),
            "end" => Ok(Fsync::End),
            _ => Err(Error::Usage(format!("fsync must be none, file or end, not {s:?}"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Fsync::None => "none",
            Fsync::File => "file",
            Fsync::End => "end",
        }
    }
}

/// A journaled session (a push to a node): where its journal lives and whether to pick up an
/// earlier attempt's work.
pub struct ResumeParams {
    /// The journal directory (`.longhaul/journal`, state_dir.rs), held open.
    pub dir: Arc<OwnedFd>,
    pub key: String,
    /// Use the journal of an earlier attempt and skip files already at the destination with
    /// the index's size and mtime; otherwise start over.
    pub use_previous: bool,
    /// What the sender's SUMS decided (FEATURE_CHECKSUM): by content, a file is held when its
    /// BLAKE3 is the sender's, whatever its mtime; confirmed, when its size, mtime and BLAKE3
    /// are. None: by size and mtime.
    pub held: Option<sums::Held>,
    /// FEATURE_PIECES: blocks the destination holds in part come as PIECEs of what it lacks,
    /// and HELD tells the sender which files it holds.
    pub pieces: bool,
}

/// What a MANIFEST asked for, once checked against the node's limits.
pub struct SessionParams {
    /// Destination directory, relative to the base (the node's root, the client's DEST).
    pub dest: Vec<u8>,
    pub streams: u16,
    pub block_size: u32,
    pub writers: usize,
    pub token: Token,
    pub placement: Placement,
    pub idle_timeout: Duration,
    /// Bandwidth limits the blocks pass through (a node's total and the peer's).
    pub throttle: Throttle,
    /// Counts the bytes received and verified, for whoever watches progress.
    pub counter: Arc<AtomicU64>,
    pub fsync: Fsync,
    /// Read every file back once written and compare its BLAKE3 with the sender's
    /// (FILE_DIGESTS) before it takes its final name.
    pub verify_full: bool,
    /// Journal the session so that a later attempt can resume it (None: temporary files are
    /// removed on failure and nothing is remembered).
    pub resume: Option<ResumeParams>,
    /// Give files and directories the setuid and setgid bits the index asks for; otherwise
    /// they are cleared (see `Receive::mode`).
    pub keep_setid: bool,
    /// Where the session counts the space its files take and give back (a node's account,
    /// ledger.rs); None where nobody keeps one (a client's pull).
    pub space: Option<Arc<Grant>>,
}

pub struct Receive {
    pub token: Token,
    index: Index,
    /// The destination directory, held open: writers open the directories under it from here.
    dest_fd: OwnedFd,
    /// The virtual file's blocks: how many, and how long each is.
    plan: BlockPlan,
    streams: u16,
    pool: Arc<Pool>,
    /// The session's state and its stop (state.rs).
    life: Life,
    /// Blocks received and counted (stream.rs).
    receipt: Receipt,
    /// The disk writers and their queue (files.rs).
    writers: Writers,
    /// Each file's slot, name and account (files.rs).
    files: Files,
    /// Whole-file verification (files.rs).
    digests: Digests,
    /// Earlier attempts and the journal (resume.rs).
    resume: Resume,
    started: Instant,
    placement: Placement,
    idle_timeout: Duration,
    fsync: Fsync,
    /// Where the writers' and receivers' time went (disk.rs).
    disk: DiskTimes,
    /// A bench session (discard.rs): blocks are checked, counted and dropped.
    discard: bool,
    /// CPU microseconds the session's receiver threads used (a bench reports it).
    cpu_us: AtomicU64,
}

/// Permission bits a receiver sets by default: all but setuid and setgid (0o6000), which from
/// a peer's index would let whoever can write the index make a program that runs as the
/// receiver's user (root, for many nodes). The sticky bit stays: on a directory it only
/// restricts who may delete in it, and Linux ignores it on files.
const SETID_CLEARED: u32 = 0o1777;

impl Receive {
    /// Checks the destination, creates the directories and the large files, starts the writers.
    /// `base` is the directory `params.dest` is relative to: a node's root, a client's DEST.
    pub fn prepare(base: BorrowedFd<'_>, index: Index, params: SessionParams, pool: Arc<Pool>) -> Result<Arc<Receive>> {
        let SessionParams {
            dest,
            streams,
            block_size,
            writers,
            token,
            placement,
            idle_timeout,
            throttle,
            counter,
            fsync,
            verify_full,
            resume,
            keep_setid,
            space,
        } = params;
        let dest = dest.as_slice();
        check_state_dir(dest, &index)?;
        // Before anything is created, so that a tree refused leaves nothing behind.
        crate::session::recv::conflict::check(base, dest, &index)?;
        if !dest.is_empty() {
            crate::vfile::index::check_path(dest)?;
        }
        let dest_fd = beneath::make_dirs(base, dest, 0o777, existing_refused)?;
        let dest_id = rustix::fs::fstat(&dest_fd).map_err(|e| Error::io("stat", dest, e.into()))?;
        let dest_id = {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(dest_id.st_dev as u64).to_le_bytes());
            id[8..].copy_from_slice(&(dest_id.st_ino as u64).to_le_bytes());
            id
        };
        let plan = BlockPlan::new(index.total(), block_size as u64);
        // An earlier attempt's temporary files may outlast this session (a file it had one for
        // that comes whole this time, or one not taken up without resume): looked for at the end.
        let earlier = resume
            .as_ref()
            .is_some_and(|r| rustix::fs::statat(&*r.dir, format!("{}.jnl", r.key).as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok());
        let mode_mask = if keep_setid { 0o7777 } else { SETID_CLEARED };
        let mut meta = unchanged::MetaSync::new(&index, mode_mask, true);
        let pieces = resume.as_ref().is_some_and(|r| r.pieces && r.use_previous);
        let (tag, journal, carried) = match resume {
            None => (hex(&token)[..12].to_owned(), None, Carried::default()),
            Some(r) => {
                let (journal, previous) = Journal::open(&r.dir, &r.key, dest, plan.count(), r.use_previous)?;
                let tag = r.key[..12].to_owned();
                let carried = if r.use_previous {
                    carried_over(&index, dest_fd.as_fd(), &tag, plan, &previous, r.held.as_ref(), Some(&mut meta))
                } else {
                    Carried::default()
                };
                (tag, Some(journal), carried)
            }
        };
        let mut carried = carried;
        carried.add_holes(&index, plan);
        let pieced = if pieces { carried.add_pieces(&index, plan) } else { Default::default() };
        let slots = index
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| FileSlot {
                remaining: AtomicU64::new(carried.remaining.get(i).copied().unwrap_or(e.size)),
                fd: Mutex::new(None),
                stage: AtomicU8::new(carried.stages.get(i).copied().unwrap_or(STAGE_NONE)),
                writing: Mutex::new(()),
                part: AtomicU64::new(UNCOUNTED),
            })
            .collect();
        let mut seen = BlockSet::default();
        for &(first, end) in &carried.ranges {
            for b in first..end {
                seen.insert(b);
            }
        }
        for &b in carried.hole_blocks.iter().chain(&carried.all_held) {
            seen.insert(b);
        }
        let (tx, rx) = bounded::<WriteJob>(pool.count());
        // With verify_full a file waits for the sender's digest under a name.
        let verify_named = "verify full keeps each file under a temporary name until its digest is checked";
        let tmpfile = Tmpfile::probe(dest_fd.as_fd(), verify_full.then(|| verify_named.to_owned()));
        let digests = Digests::new(verify_full, index.entries().len());
        let recv = Arc::new(Receive {
            token,
            index,
            dest_fd,
            plan,
            streams,
            pool,
            life: Life::new(),
            receipt: Receipt {
                seen: Mutex::new(seen),
                pieces: Mutex::new(pieced.into_iter().map(|(b, runs)| (b, stream::Wanted::new(runs))).collect()),
                bytes: counter,
                blocks: AtomicU64::new(0),
                throttle,
                twice: Default::default(),
            },
            writers: Writers { tx: Mutex::new(Some(tx)), handles: Mutex::new(Vec::new()), failed: AtomicBool::new(false) },
            files: Files {
                slots,
                tag,
                tmpfile,
                linked: AtomicU64::new(0),
                renamed: AtomicU64::new(0),
                mode_mask,
                chown: rustix::process::geteuid().is_root(),
                owner_missed: AtomicU64::new(meta.owner_missed),
                xattrs_missed: AtomicU64::new(meta.xattrs_missed),
                space,
                dest_id,
            },
            digests,
            resume: Resume { journal, carried, earlier, pieces },
            started: Instant::now(),
            placement,
            idle_timeout,
            fsync,
            disk: DiskTimes::default(),
            discard: false,
            cpu_us: AtomicU64::new(0),
        });
        if let Err(e) = recv.make_tree().and_then(|()| recv.finish_carried()) {
            recv.discard_temps();
            return Err(e);
        }
        recv.start_writers(rx, writers)?;
        Ok(recv)
    }

    /// The blocks this session will not receive because an earlier attempt left them, as
    /// `[first, end)` ranges (PLAN).
    pub fn plan(&self) -> Vec<(u64, u64)> {
        self.resume.carried.ranges.clone()
    }

    /// With pieces: the file entries the destination held whole when the session began, as
    /// HELD's `[first, end)` ranges.
    pub fn held_ranges(&self) -> Option<Vec<(u32, u32)>> {
        let pieces = self.resume.pieces;
        pieces.then(|| crate::vfile::held::held_ranges(&self.index, &self.resume.carried.held()))
    }

    /// The index the session receives.
    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn nblocks(&self) -> u64 {
        self.plan.count()
    }

    /// Bytes an earlier attempt left that this session does not receive again.
    pub fn carried_bytes(&self) -> u64 {
        self.resume.carried.bytes
    }

    /// The non-empty files found already at the destination and not received again, and their
    /// bytes (UNCHANGED).
    pub fn unchanged(&self) -> (u64, u64) {
        let stages = &self.resume.carried.stages;
        let held = self.index.entries().iter().zip(stages).filter(|(e, &st)| st == slot::STAGE_FINAL && e.size > 0);
        held.fold((0, 0), |(n, b), (e, _)| (n + 1, b + e.size))
    }

    /// Whether one-piece files are written with O_TMPFILE, or why not.
    pub fn tmpfile(&self) -> Result<(), String> {
        self.files.tmpfile.status()
    }

    /// Files given their final name so far: (linked in from O_TMPFILE, renamed from a
    /// temporary name).
    pub fn files_named(&self) -> (u64, u64) {
        (self.files.linked.load(Ordering::Relaxed), self.files.renamed.load(Ordering::Relaxed))
    }

    pub fn bytes_received(&self) -> u64 {
        self.receipt.bytes.load(Ordering::Relaxed)
    }
}

/// For a dry run: by entry, whether a receiver taking `index` into `dest` now would find the
/// file already there and not receive it (what `prepare` decides with resume), deciding by
/// `held` and by its metadata as it would (a file it would chown is received again), and
/// whether such a file's mode, mtime or attributes would be set in place. Nothing is written;
/// no earlier attempt's journal is read.
pub fn held_files(
    index: &Index,
    dest: BorrowedFd<'_>,
    block_size: u32,
    held: Option<&sums::Held>,
    keep_setid: bool,
) -> (Vec<bool>, Vec<bool>) {
    let plan = BlockPlan::new(index.total(), block_size as u64);
    let mode_mask = if keep_setid { 0o7777 } else { SETID_CLEARED };
    let mut meta = unchanged::MetaSync::new(index, mode_mask, false);
    let carried = carried_over(index, dest, "", plan, &journal::Previous::default(), held, Some(&mut meta));
    let mut in_place = vec![false; index.entries().len()];
    for &i in &meta.in_place {
        in_place[i as usize] = true;
    }
    (carried.stages.iter().map(|&st| st == slot::STAGE_FINAL).collect(), in_place)
}

/// How the receiver names a failed open under the destination: a component that is no longer a
/// directory was swapped (for a symlink, most likely) after the tree was made and checked.
fn dest_refused(dir: &[u8], e: rustix::io::Errno) -> Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::XDEV => {
            Error::PathEscape { path: lossy(dir), why: "a directory was replaced during the transfer" }
        }
        e => Error::io("open", dir, e.into()),
    }
}

/// How the receiver names a failed open of a directory it is about to create or enter: an
/// existing symlink (or a file) in the way.
fn existing_refused(dir: &[u8], e: rustix::io::Errno) -> Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
            Error::PathEscape { path: lossy(dir), why: "an existing symlink is in the way" }
        }
        rustix::io::Errno::NOTDIR => Error::io("mkdir", dir, std::io::Error::from_raw_os_error(libc::ENOTDIR)),
        e => Error::io("open", dir, e.into()),
    }
}

/// The state directory (`.longhaul`, a node's account and journals, a pulling client's
/// journal) is no destination: neither `dest`'s first component nor, when the tree arrives at
/// the base itself, any entry's.
pub(crate) fn check_state_dir(dest: &[u8], index: &Index) -> Result<()> {
    let state = crate::sys::state_dir::STATE_DIR.as_bytes();
    let named = if dest.is_empty() {
        index.entries().iter().map(|e| &e.path[..]).find(|p| beneath::starts_with_component(p, state))
    } else {
        Some(dest).filter(|d| beneath::starts_with_component(d, state))
    };
    match named {
        Some(p) => Err(Error::PathEscape { path: lossy(p), why: "the state directory .longhaul is not a destination" }),
        None => Ok(()),
    }
}
