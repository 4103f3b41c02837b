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

pub mod conflict;
pub mod journal;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use rustix::fs::{Mode, OFlags};

use crate::error::{lossy, Error, Result};
use crate::hash::{blake3_file, xxh3, Xxh3};
use crate::ledger::Grant;
use crate::place::placement::{bind_current_thread, Placement, Role};
use crate::pool::{Pool, PoolBuf};
use crate::rate::Throttle;
use crate::sys::beneath::{self, DirCache};
use crate::sys::net::Deadline;
use crate::util::hex;
use crate::vfile::blockset::BlockSet;
use crate::vfile::index::{Index, Kind};
use crate::wire::frame::{self, Msg, SummaryMsg, Token};
use journal::{Journal, Previous};

const STAGE_NONE: u8 = 0;
const STAGE_TEMP: u8 = 1;
const STAGE_FINAL: u8 = 2;
/// `verify: full`: all bytes written, the file read back and hashed; it waits under its
/// temporary name for the sender's digest.
const STAGE_WRITTEN: u8 = 3;
/// How much of a block is read (and hashed) at a time: small enough to stay in L2.
const HASH_CHUNK: usize = 256 * 1024;
/// The most one pwrite into the page cache takes. The kernel sizes the page-cache folios of a
/// buffered write by its length (ext4 has large folios since Linux 6.16), and on these VMs a
/// 1 MiB write cost 2.5x the CPU of four 256 KiB ones (fio, 2 GiB: 1.04-1.21 against
/// 0.41-0.47 CPU s; bench/RESULTS.md, "page-cache writes"). Where large folios are cheap, the
/// three more syscalls per MiB are microseconds against the ~0.2 ms a MiB takes to copy.
const WRITE_CHUNK: usize = 256 * 1024;

/// Writes all of `data` at `offset`, WRITE_CHUNK at a time.
fn write_chunked(fd: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    for piece in data.chunks(WRITE_CHUNK) {
        fd.write_all_at(piece, offset + done)?;
        done += piece.len() as u64;
    }
    Ok(())
}

struct FileSlot {
    remaining: AtomicU64,
    fd: Mutex<Option<Arc<File>>>,
    stage: AtomicU8,
    /// Held while a piece of a file larger than its piece is written (see `write`).
    writing: Mutex<()>,
    /// What its temporary file is counted at in the node's account (`UNCOUNTED`: not by this
    /// session).
    part: AtomicU64,
}

const UNCOUNTED: u64 = u64::MAX;

struct WriteJob {
    buf: PoolBuf,
    offset: u64,
    hash: u64,
}

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
}

fn closed_early() -> Error {
    Error::Protocol("a data connection closed before its STREAM_END".into())
}

const CLOSED_INSIDE_BLOCK: &str = "a data connection closed inside a block";

/// Whether a data connection's error is the connection breaking (closed inside a block, reset):
/// what a receiver sees when the sender stops for a reason of its own, which its ERROR on the
/// control connection says.
fn broken(e: &Error) -> bool {
    matches!(e, Error::Net { .. }) || matches!(e, Error::Protocol(m) if m == CLOSED_INSIDE_BLOCK)
}

/// How long a broken data connection waits for the sender's ERROR before failing the session
/// with its own, less telling, error.
const EXPLAIN_GRACE: Duration = Duration::from_secs(1);

/// How a data connection's loop ended without an error.
enum StreamExit {
    /// Its STREAM_END arrived, or the session had already stopped.
    End,
    /// The sender closed it before its STREAM_END.
    Closed,
}

#[derive(Default)]
struct State {
    attached: u16,
    ended: u16,
    /// Data connections that closed before their STREAM_END (see `stream_closed`).
    closed: u16,
    /// The control connection closed without DONE: the sender was killed or cancelled.
    sender_gone: bool,
    client_done: Option<u64>,
    failure: Option<Error>,
}

impl State {
    /// The sender went away and every data connection it attached has closed or ended: nothing
    /// more will arrive, and the session fails (`Cancelled`) with what it has journaled.
    fn sender_finished(&self) -> bool {
        self.sender_gone && self.closed + self.ended >= self.attached
    }
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

/// What an earlier attempt left that this session will not receive again.
#[derive(Default)]
struct Carried {
    /// Blocks already held, as sorted `[first, end)` ranges (what PLAN tells the sender).
    ranges: Vec<(u64, u64)>,
    blocks: u64,
    bytes: u64,
    /// Per file: bytes still to come.
    remaining: Vec<u64>,
    stages: Vec<u8>,
}

pub struct Receive {
    pub token: Token,
    index: Index,
    /// The destination directory, held open: writers open the directories under it from here.
    dest_fd: OwnedFd,
    /// The destination directory's device and inode: what names it for the account's name
    /// locks, the same for every session writing into it.
    dest_id: [u8; 16],
    block_size: u64,
    nblocks: u64,
    streams: u16,
    pool: Arc<Pool>,
    files: Vec<FileSlot>,
    seen: Mutex<BlockSet>,
    write_tx: Mutex<Option<Sender<WriteJob>>>,
    writers: Mutex<Vec<JoinHandle<()>>>,
    state: Mutex<State>,
    cond: Condvar,
    stop: AtomicBool,
    /// A write failed: the writers drop what is queued.
    disk_failed: AtomicBool,
    sockets: Mutex<Vec<TcpStream>>,
    bytes: Arc<AtomicU64>,
    throttle: Throttle,
    blocks: AtomicU64,
    started: Instant,
    placement: Placement,
    idle_timeout: Duration,
    /// Names the temporary files: the journal key's first digits, or the session token's.
    tag: String,
    journal: Option<Journal>,
    carried: Carried,
    fsync: Fsync,
    verify_full: bool,
    /// The sender's whole-file digests, by entry (`verify_full` only).
    sender_digests: Mutex<Vec<Option<[u8; 32]>>>,
    /// The BLAKE3 of each file as read back from the disk, by entry (`verify_full` only: a
    /// slot of every file would cost 40 bytes a file on every transfer).
    read_back: Vec<OnceLock<[u8; 32]>>,
    /// Files whose read-back digest matched the sender's.
    verified: AtomicU64,
    /// How a file that arrives in one piece is made: `TMPFILE_*`.
    tmpfile: AtomicU8,
    /// Why files are made under a temporary name instead (None: O_TMPFILE is used).
    tmpfile_fallback: Mutex<Option<String>>,
    /// Files linked in from O_TMPFILE, and files renamed from a temporary name.
    linked: AtomicU64,
    renamed: AtomicU64,
    /// The permission bits the index may set (`keep_setid`).
    mode_mask: u32,
    space: Option<Arc<Grant>>,
    /// An earlier attempt's journal was there when the session began.
    earlier: bool,
}

/// One-piece files are written into an unnamed O_TMPFILE and linked in under their final name
/// once complete (no temporary name, no rename); linked through the descriptor itself
/// (AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH before Linux 6.10)...
const TMPFILE_EMPTY_PATH: u8 = 0;
/// ... or through /proc/self/fd/N.
const TMPFILE_PROC: u8 = 1;
/// Not available: temporary name and rename, like larger files.
const TMPFILE_OFF: u8 = 2;

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
        let nblocks = index.total().div_ceil(block_size as u64);
        // An earlier attempt's temporary files may outlast this session (a file it had one for
        // that comes whole this time, or one not taken up without resume): looked for at the end.
        let earlier = resume
            .as_ref()
            .is_some_and(|r| rustix::fs::statat(&*r.dir, format!("{}.jnl", r.key).as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok());
        let (tag, journal, carried) = match resume {
            None => (hex(&token)[..12].to_owned(), None, Carried::default()),
            Some(r) => {
                let (journal, previous) = Journal::open(&r.dir, &r.key, dest, nblocks, r.use_previous)?;
                let tag = r.key[..12].to_owned();
                let carried = if r.use_previous {
                    carried_over(&index, dest_fd.as_fd(), &tag, block_size as u64, &previous)
                } else {
                    Carried::default()
                };
                (tag, Some(journal), carried)
            }
        };
        let files = index
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
        let (tx, rx) = bounded::<WriteJob>(pool.count());
        let index_len = index.entries().len();
        let recv = Arc::new(Receive {
            token,
            nblocks,
            index,
            dest_fd,
            dest_id,
            block_size: block_size as u64,
            streams,
            pool,
            files,
            seen: Mutex::new(seen),
            write_tx: Mutex::new(Some(tx)),
            writers: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
            disk_failed: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            bytes: counter,
            throttle,
            blocks: AtomicU64::new(0),
            started: Instant::now(),
            placement,
            idle_timeout,
            tag,
            journal,
            fsync,
            verify_full,
            sender_digests: Mutex::new(if verify_full { vec![None; index_len] } else { Vec::new() }),
            read_back: if verify_full { (0..index_len).map(|_| OnceLock::new()).collect() } else { Vec::new() },
            verified: AtomicU64::new(0),
            tmpfile: AtomicU8::new(TMPFILE_OFF),
            tmpfile_fallback: Mutex::new(None),
            linked: AtomicU64::new(0),
            renamed: AtomicU64::new(0),
            mode_mask: if keep_setid { 0o7777 } else { SETID_CLEARED },
            carried,
            space,
            earlier,
        });
        recv.probe_tmpfile();
        if let Err(e) = recv.make_tree().and_then(|()| recv.finish_carried()) {
            recv.discard_temps();
            return Err(e);
        }
        let mut handles = recv.writers.lock().expect("writers lock");
        for i in 0..writers.max(1) {
            let (r, rx) = (Arc::clone(&recv), rx.clone());
            let h = std::thread::Builder::new()
                .name(format!("lh-wr-{i}"))
                .spawn(move || {
                    let wrote = crate::panic::catch("writer", || {
                        if let Some(cpu) = r.placement.cpu_for(Role::Disk, i) {
                            let _ = bind_current_thread(cpu);
                        }
                        let mut dirs = DirCache::default();
                        for job in rx {
                            // A failed journaled session still writes the verified blocks it has
                            // queued (at most the pool): the next attempt need not send them again.
                            if r.stop.load(Ordering::Relaxed) && (r.journal.is_none() || r.disk_failed.load(Ordering::Relaxed)) {
                                continue;
                            }
                            let (block, hash) = (job.offset / r.block_size, job.hash);
                            let written = r.write(job, &mut dirs);
                            if let Err(e) = written.and_then(|()| r.journal.as_ref().map_or(Ok(()), |j| j.record(block, hash))) {
                                r.disk_failed.store(true, Ordering::Relaxed);
                                r.fail(e);
                            }
                        }
                        Ok(())
                    });
                    // What a panicked writer held is unknown: nothing more is written.
                    if let Err(e) = wrote {
                        r.disk_failed.store(true, Ordering::Relaxed);
                        r.fail(e);
                    }
                })
                .map_err(|e| Error::io("spawn writer", b"", e))?;
            handles.push(h);
        }
        drop(handles);
        Ok(recv)
    }

    /// The mode entry `e` is given: the index's bits, less setuid and setgid unless kept.
    fn mode(&self, e: &crate::vfile::index::Entry) -> u32 {
        e.mode & self.mode_mask
    }

    /// The name file `i` has in its directory until it is complete.
    fn temp_name(&self, i: usize) -> String {
        format!(".lh-{}-{i}.part", self.tag)
    }

    /// Files an earlier attempt wrote in full but was stopped before renaming.
    fn finish_carried(&self) -> Result<()> {
        let mut dirs = DirCache::default();
        for (i, slot) in self.files.iter().enumerate() {
            if slot.stage.load(Ordering::SeqCst) == STAGE_TEMP && slot.remaining.load(Ordering::SeqCst) == 0 {
                self.finalize(i, &mut dirs)?;
            }
        }
        Ok(())
    }

    /// The blocks this session will not receive because an earlier attempt left them, as
    /// `[first, end)` ranges (PLAN).
    pub fn plan(&self) -> Vec<(u64, u64)> {
        self.carried.ranges.clone()
    }

    pub fn nblocks(&self) -> u64 {
        self.nblocks
    }

    /// Bytes an earlier attempt left that this session does not receive again.
    pub fn carried_bytes(&self) -> u64 {
        self.carried.bytes
    }

    fn make_tree(&self) -> Result<()> {
        let mut dirs = DirCache::default();
        for (i, e) in self.index.entries().iter().enumerate() {
            match e.kind {
                Kind::Dir => {
                    let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
                    drop(beneath::make_dir(dir, name, 0o777, &e.path, existing_refused)?);
                }
                Kind::File if e.size >= self.block_size && self.files[i].stage.load(Ordering::SeqCst) != STAGE_FINAL => {
                    let f = self.open_temp(i, &mut dirs)?;
                    match rustix::fs::fallocate(f.as_fd(), rustix::fs::FallocateFlags::empty(), 0, e.size) {
                        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {}
                        Err(err) => return Err(Error::io("fallocate", &e.path, err.into())),
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens (creating it if need be) file `i`'s temporary file in its directory.
    fn open_temp(&self, i: usize, dirs: &mut DirCache) -> Result<File> {
        let e = &self.index.entries()[i];
        let (dir, _) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        // verify_full reads the file back through the same descriptor.
        let access = if self.verify_full { OFlags::RDWR } else { OFlags::WRONLY };
        let flags = access | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // O_EXCL tells a new temporary file from one an earlier attempt kept, which the account
        // holds already at its size.
        let count = self.space.is_some() && self.files[i].part.load(Ordering::SeqCst) == UNCOUNTED;
        let temp = self.temp_name(i);
        let create = || rustix::fs::openat(dir, temp.as_str(), flags | OFlags::EXCL, Mode::from_raw_mode(0o600));
        let (f, kept) = match create() {
            Err(rustix::io::Errno::EXIST) => {
                // Taken over only if it is what a receiver makes (`own_part`); anything else
                // under the name (a hard link to a file elsewhere, a FIFO, another user's
                // file) is unlinked and a new one made: no write lands in an inode the
                // receiver did not create.
                let existing = rustix::fs::openat(dir, temp.as_str(), (flags - OFlags::CREATE) | OFlags::NONBLOCK, Mode::empty())
                    .ok()
                    .and_then(|f| rustix::fs::fstat(&f).ok().filter(own_part).map(|st| (f, st.st_size as u64)));
                match existing {
                    Some((f, size)) => (f, Some(size)),
                    None => {
                        let _ = rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty());
                        (create().map_err(|err| Error::io("create", &e.path, err.into()))?, None)
                    }
                }
            }
            r => (r.map_err(|err| Error::io("create", &e.path, err.into()))?, None),
        };
        self.files[i].stage.store(STAGE_TEMP, Ordering::SeqCst);
        if count {
            self.count_part(i, kept);
        }
        Ok(File::from(f))
    }

    /// Counts file `i`'s temporary file at its full size from now (it is allocated to it, or
    /// will be): a new one, or one kept by an earlier attempt at `kept` bytes.
    fn count_part(&self, i: usize, kept: Option<u64>) {
        let Some(g) = &self.space else { return };
        let size = self.index.entries()[i].size;
        match kept {
            None => g.part_made(size),
            Some(was) => g.part_resized(was, size),
        }
        self.files[i].part.store(size, Ordering::SeqCst);
    }

    /// The lock on file `i`'s final name while what it replaces is measured and replaced
    /// (ledger.rs); none where no account is kept.
    fn name_lock(&self, i: usize) -> Option<std::sync::MutexGuard<'_, ()>> {
        let g = self.space.as_ref()?;
        Some(g.ledger().name_lock(&[&self.dest_id, &self.index.entries()[i].path]))
    }

    /// Bytes of the regular file that `name` in `dir` is now, which a rename to it replaces;
    /// looked at only where an account is kept. Call with the name's lock held.
    fn replaced(&self, dir: std::os::fd::BorrowedFd<'_>, name: &OsStr) -> u64 {
        if self.space.is_none() {
            return 0;
        }
        match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile => st.st_size as u64,
            _ => 0,
        }
    }

    /// File `i` (`size` bytes; from its temporary file or not) took its final name over `old`
    /// bytes.
    fn count_named(&self, i: usize, size: u64, old: u64) {
        let Some(g) = &self.space else { return };
        let part = self.files[i].part.swap(UNCOUNTED, Ordering::SeqCst);
        g.named((part != UNCOUNTED).then_some(part), size, old);
    }

    /// File `i`'s temporary file was removed: its bytes (as counted, or as `on_disk` when an
    /// earlier attempt counted it) leave the account.
    fn count_removed(&self, i: usize, on_disk: Option<u64>) {
        let Some(g) = &self.space else { return };
        match self.files[i].part.swap(UNCOUNTED, Ordering::SeqCst) {
            UNCOUNTED => {
                if let Some(b) = on_disk {
                    g.part_removed(b)
                }
            }
            counted => g.part_removed(counted),
        }
    }

    fn slot_fd(&self, i: usize, dirs: &mut DirCache) -> Result<Arc<File>> {
        let mut fd = self.files[i].fd.lock().expect("slot lock");
        if let Some(f) = fd.as_ref() {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(self.open_temp(i, dirs)?);
        *fd = Some(Arc::clone(&f));
        Ok(f)
    }

    /// Decides whether one-piece files go through O_TMPFILE: not with `verify_full` (the file
    /// waits for the sender's digest under a name), not when LONGHAUL_NO_TMPFILE is set, and
    /// only where the destination's file system makes one.
    fn probe_tmpfile(&self) {
        let why = if self.verify_full {
            Some("verify full keeps each file under a temporary name until its digest is checked".to_owned())
        } else {
            crate::sys::probe::tmpfile(self.dest_fd.as_fd()).err()
        };
        match why {
            None => self.tmpfile.store(TMPFILE_EMPTY_PATH, Ordering::Relaxed),
            Some(why) => *self.tmpfile_fallback.lock().expect("tmpfile lock") = Some(why),
        }
    }

    /// Whether one-piece files are written with O_TMPFILE, or why not.
    pub fn tmpfile(&self) -> Result<(), String> {
        match self.tmpfile_fallback.lock().expect("tmpfile lock").clone() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Files given their final name so far: (linked in from O_TMPFILE, renamed from a
    /// temporary name).
    pub fn files_named(&self) -> (u64, u64) {
        (self.linked.load(Ordering::Relaxed), self.renamed.load(Ordering::Relaxed))
    }

    /// Writes file `i`, all of it in `data`, into an unnamed file in its directory, sets its
    /// mode and mtime and links it in under its final name: the name appears complete or not
    /// at all. Works from the directory's descriptor (`dirs`), so no path is walked per file.
    /// Returns false (nothing done) where the link cannot be made; the caller then takes the
    /// temporary-name path.
    fn write_whole(&self, i: usize, data: &[u8], dirs: &mut DirCache) -> Result<bool> {
        use rustix::fs::{linkat, openat, renameat, unlinkat, AtFlags, CWD};
        let e = &self.index.entries()[i];
        let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        let perm = e.mode & 0o777;
        let fd = match openat(dir, ".", OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::from_raw_mode(perm)) {
            Ok(fd) => File::from(fd),
            Err(err) => return Err(Error::io("create", &e.path, err.into())),
        };
        write_chunked(&fd, data, 0).map_err(|err| Error::io("write", &e.path, err))?;
        // open() applied the umask: set the mode only where that changed it.
        self.set_metadata(&fd, i, self.mode(e) != perm & !crate::sys::probe::umask().unwrap_or(0o777))?;
        let link = |to: &OsStr| -> rustix::io::Result<()> {
            loop {
                match self.tmpfile.load(Ordering::Relaxed) {
                    TMPFILE_EMPTY_PATH => match linkat(&fd, "", dir, to, AtFlags::EMPTY_PATH) {
                        Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => self.tmpfile.store(TMPFILE_PROC, Ordering::Relaxed),
                        r => return r,
                    },
                    TMPFILE_PROC => {
                        let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
                        match linkat(CWD, proc.as_str(), dir, to, AtFlags::SYMLINK_FOLLOW) {
                            Err(rustix::io::Errno::NOENT) if fs::symlink_metadata(&proc).is_err() => {
                                self.tmpfile.store(TMPFILE_OFF, Ordering::Relaxed);
                                *self.tmpfile_fallback.lock().expect("tmpfile lock") =
                                    Some("O_TMPFILE files cannot be linked in: no CAP_DAC_READ_SEARCH and no /proc".into());
                            }
                            r => return r,
                        }
                    }
                    _ => return Err(rustix::io::Errno::NOTSUP),
                }
            }
        };
        let held = self.name_lock(i);
        match link(name) {
            Ok(()) => self.count_named(i, e.size, 0),
            // Replacing a file: link under the temporary name and rename over the old one.
            Err(rustix::io::Errno::EXIST) => {
                let temp = self.temp_name(i);
                // An earlier attempt's temporary file there leaves the account with it.
                let stale = self.replaced(dir, OsStr::new(&temp));
                if unlinkat(dir, temp.as_str(), AtFlags::empty()).is_ok() {
                    self.count_removed(i, Some(stale));
                }
                link(OsStr::new(&temp)).map_err(|err| Error::io("link", &e.path, err.into()))?;
                let old = self.replaced(dir, name);
                renameat(dir, temp.as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
                self.count_named(i, e.size, old);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(false),
            Err(err) => return Err(Error::io("link", &e.path, err.into())),
        }
        drop(held);
        self.files[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
        self.linked.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    fn write(&self, job: WriteJob, dirs: &mut DirCache) -> Result<()> {
        for p in self.index.pieces(job.offset, job.buf.len() as u64) {
            let stage = self.files[p.entry].stage.load(Ordering::SeqCst);
            if stage == STAGE_FINAL {
                // Resumed: an earlier attempt completed this file; the block is here for others.
                continue;
            }
            let at = p.range_offset as usize;
            if stage == STAGE_NONE
                && p.len == self.index.entries()[p.entry].size
                && self.tmpfile.load(Ordering::Relaxed) != TMPFILE_OFF
                && self.write_whole(p.entry, &job.buf[at..at + p.len as usize], dirs)?
            {
                self.files[p.entry].remaining.store(0, Ordering::SeqCst);
                continue;
            }
            let fd = self.slot_fd(p.entry, dirs)?;
            // Buffered writes to one file take turns on its inode lock in the kernel, where a
            // waiting writer spins (on one 4 GiB file with 4 writers: 10% of the node's CPU in
            // rwsem_spin_on_owner). Waiting here sleeps instead and leaves the CPU to the
            // receiving threads. A file within one piece has no other writer.
            let _turn = (p.len < self.index.entries()[p.entry].size).then(|| self.files[p.entry].writing.lock().expect("write lock"));
            write_chunked(&fd, &job.buf[at..at + p.len as usize], p.file_offset)
                .map_err(|e| Error::io("write", &self.index.entries()[p.entry].path, e))?;
            drop(fd);
            if self.files[p.entry].remaining.fetch_sub(p.len, Ordering::AcqRel) == p.len {
                self.finalize(p.entry, dirs)?;
            }
        }
        Ok(())
    }

    /// Gives the open file `i` its mode (where `chmod`) and mtime, and fsyncs it under the
    /// `file` policy: what a file needs before it takes its final name.
    fn set_metadata(&self, fd: &File, i: usize, chmod: bool) -> Result<()> {
        let e = &self.index.entries()[i];
        if chmod {
            fd.set_permissions(fs::Permissions::from_mode(self.mode(e))).map_err(|err| Error::io("chmod", &e.path, err))?;
        }
        let t = timestamp(e.mtime_ns);
        rustix::fs::futimens(fd.as_fd(), &rustix::fs::Timestamps { last_access: t, last_modification: t })
            .map_err(|err| Error::io("set mtime", &e.path, err.into()))?;
        if self.fsync == Fsync::File {
            fd.sync_all().map_err(|err| Error::io("fsync", &e.path, err))?;
        }
        Ok(())
    }

    /// Gives file `i`, complete under its temporary name, its final name.
    fn rename_final(&self, i: usize, dirs: &mut DirCache) -> Result<()> {
        let e = &self.index.entries()[i];
        let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        let held = self.name_lock(i);
        let old = self.replaced(dir, name);
        rustix::fs::renameat(dir, self.temp_name(i).as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
        self.count_named(i, e.size, old);
        drop(held);
        self.files[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
        self.renamed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// All of file `i` is written and its blocks verified: set its metadata and give it its
    /// final name; with `verify_full`, read it back and hash it first, and leave the rename to
    /// `promote` once the sender's digest is in.
    fn finalize(&self, i: usize, dirs: &mut DirCache) -> Result<()> {
        let e = &self.index.entries()[i];
        let fd = self.files[i].fd.lock().expect("slot lock").take();
        let fd = match fd {
            Some(f) => f,
            None => Arc::new(self.open_temp(i, dirs)?),
        };
        self.set_metadata(&fd, i, true)?;
        if self.verify_full {
            let digest = blake3_file(&fd, e.size).map_err(|err| Error::io("read back", &e.path, err))?;
            let _ = self.read_back[i].set(digest);
            self.files[i].stage.store(STAGE_WRITTEN, Ordering::SeqCst);
            return Ok(());
        }
        drop(fd);
        self.rename_final(i, dirs)?;
        Ok(())
    }

    /// `verify_full`: file `i` was read back; compare with the sender's digest and rename it.
    /// A mismatch removes the temporary file, so that a later attempt sends the file again.
    fn promote(&self, i: usize, dirs: &mut DirCache) -> Result<()> {
        let e = &self.index.entries()[i];
        let theirs = self.sender_digests.lock().expect("digests lock").get(i).copied().flatten();
        let Some(theirs) = theirs else {
            return Err(Error::Protocol(format!("the sender sent no digest for {:?}", lossy(&e.path))));
        };
        if self.read_back[i].get() != Some(&theirs) {
            if self.remove_temp(i, dirs) {
                self.count_removed(i, None);
            }
            self.files[i].stage.store(STAGE_NONE, Ordering::SeqCst);
            return Err(Error::FileDigest { path: lossy(&e.path) });
        }
        self.rename_final(i, dirs)?;
        self.verified.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// FILE_DIGESTS from the sender: each names a file entry once.
    fn take_digests(&self, digests: Vec<(u32, [u8; 32])>) -> Result<()> {
        if !self.verify_full {
            return Err(Error::Protocol("FILE_DIGESTS in a session without whole-file verification".into()));
        }
        let entries = self.index.entries();
        let mut held = self.sender_digests.lock().expect("digests lock");
        for (entry, d) in digests {
            let i = entry as usize;
            if entries.get(i).is_none_or(|e| e.kind != Kind::File) {
                return Err(Error::Protocol(format!("FILE_DIGESTS names entry {entry}, which is not a file")));
            }
            if held[i].replace(d).is_some() {
                return Err(Error::Protocol(format!("FILE_DIGESTS names entry {entry} twice")));
            }
        }
        Ok(())
    }

    /// Runs one data connection until its STREAM_END (or a failure).
    pub fn run_stream(self: &Arc<Self>, sock: TcpStream) {
        if let Err(e) = crate::panic::catch("receiver", || {
            self.stream(sock);
            Ok(())
        }) {
            self.fail(e);
        }
    }

    fn stream(self: &Arc<Self>, mut sock: TcpStream) {
        let attached = {
            let mut st = self.state.lock().expect("state lock");
            st.attached += 1;
            st.attached
        };
        if attached > self.streams {
            return self.fail(Error::Protocol(format!("more data connections than the {} agreed", self.streams)));
        }
        let _ = rustix::thread::set_name(c"lh-rx");
        if let Some(cpu) = self.placement.cpu_for(Role::Net, attached as usize - 1) {
            let _ = bind_current_thread(cpu);
        }
        if let Ok(c) = sock.try_clone() {
            self.sockets.lock().expect("sockets lock").push(c);
        }
        let tx = match self.write_tx.lock().expect("tx lock").clone() {
            Some(tx) => tx,
            None => return,
        };
        match self.stream_loop(&mut sock, &tx) {
            Ok(StreamExit::End) => {}
            Ok(StreamExit::Closed) if self.journal.is_some() => self.stream_closed(),
            Ok(StreamExit::Closed) => self.fail_unless_explained(closed_early()),
            // A bad block may be the sender's file changing between its hash and its send
            // (sendfile reads it twice): the sender finds that at once and says so.
            Err(e) if broken(&e) || matches!(e, Error::Checksum { .. }) => self.fail_unless_explained(e),
            Err(e) => {
                if !self.stop.load(Ordering::Relaxed) {
                    self.fail(e);
                }
            }
        }
    }

    /// A data connection of a journaled session closed before its STREAM_END: the sender was
    /// killed or cancelled, and its kernel closes each connection only after delivering what it
    /// had sent. Unless the sender has said DONE (then it had nothing more to deliver, and the
    /// close is an error at once: waiting would be for ever, as the idle timeout stops counting
    /// at DONE), the session fails only once the control connection has closed too and every
    /// other stream has closed or ended, so that the blocks still buffered on the other streams
    /// are read, written and journaled, and a resume need not send them again. (Failing at the
    /// first close shut those streams down and threw their buffers away: up to the socket buffers
    /// of every stream per kill when the node's disk was slow.)
    fn stream_closed(&self) {
        let mut st = self.state.lock().expect("state lock");
        st.closed += 1;
        let failure = if st.client_done.is_some() {
            Some(closed_early())
        } else if st.sender_finished() {
            Some(Error::Cancelled)
        } else {
            None
        };
        self.cond.notify_all();
        drop(st);
        if let Some(e) = failure {
            self.fail(e);
        }
    }

    /// The control connection closed without DONE. Without a journal nothing the streams still
    /// hold would be kept: fail at once. With one, let them deliver it first (`stream_closed`).
    fn sender_gone(&self) {
        if self.journal.is_none() {
            return self.fail(Error::Cancelled);
        }
        self.update_state(|st| st.sender_gone = true);
    }

    /// Changes the session's state under its lock, wakes its waiters, and fails the session
    /// when the change leaves it with a sender gone and no data connection open.
    fn update_state(&self, change: impl FnOnce(&mut State)) {
        let mut st = self.state.lock().expect("state lock");
        change(&mut st);
        let finished = st.sender_finished();
        self.cond.notify_all();
        drop(st);
        if finished {
            self.fail(Error::Cancelled);
        }
    }

    fn stream_loop(&self, sock: &mut TcpStream, tx: &Sender<WriteJob>) -> Result<StreamExit> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(StreamExit::End);
            }
            let msg = frame::read_msg(&mut Deadline::new(sock, self.idle_timeout), 0);
            match msg? {
                None => return Ok(StreamExit::Closed),
                Some(Msg::Block { offset, len, xxh3: want }) => {
                    let buf = self.receive_block(sock, offset, len, want, None)?;
                    if tx.send(WriteJob { buf, offset, hash: want }).is_err() {
                        return Ok(StreamExit::End);
                    }
                }
                Some(Msg::BlockB3 { offset, len, xxh3: want, blake3 }) => {
                    let buf = self.receive_block(sock, offset, len, want, Some(&blake3))?;
                    if tx.send(WriteJob { buf, offset, hash: want }).is_err() {
                        return Ok(StreamExit::End);
                    }
                }
                Some(Msg::StreamEnd { .. }) => {
                    // The last of a gone sender's streams may end rather than close.
                    self.update_state(|st| st.ended += 1);
                    return Ok(StreamExit::End);
                }
                Some(m) => return Err(Error::Protocol(format!("unexpected {:?} frame on a data connection", m.frame_type()))),
            }
        }
    }

    fn receive_block(&self, sock: &mut TcpStream, offset: u64, len: u32, want: u64, blake3: Option<&[u8; 32]>) -> Result<PoolBuf> {
        let total = self.index.total();
        if !offset.is_multiple_of(self.block_size) || offset >= total {
            return Err(Error::Protocol(format!("block offset {offset} is not a block of this transfer")));
        }
        let expect = self.block_size.min(total - offset);
        if len as u64 != expect {
            return Err(Error::Protocol(format!("block at {offset} has length {len}, expected {expect}")));
        }
        if !self.seen.lock().expect("seen lock").insert(offset / self.block_size) {
            return Err(Error::Protocol(format!("block at {offset} received twice")));
        }
        if !self.throttle.take(len as u64, &self.stop) {
            return Err(Error::Cancelled);
        }
        let mut buf = self.pool.take(&self.stop)?;
        buf.set_len(len as usize);
        // Each read is hashed as it lands, while it is still in the CPU's cache: hashing the
        // whole 4 MiB block afterwards read it back from memory (17% of the node's CPU on a
        // large file, against ~9% this way).
        let mut sum = Xxh3::new();
        let mut b3 = blake3.map(|_| blake3::Hasher::new());
        let mut got = 0;
        let mut src = Deadline::new(sock, self.idle_timeout);
        while got < buf.len() {
            let end = buf.len().min(got + HASH_CHUNK);
            let n = match src.read(&mut buf[got..end]) {
                Ok(0) => return Err(Error::Protocol(CLOSED_INSIDE_BLOCK.into())),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::net("receiving a block")(e)),
            };
            sum.update(&buf[got..got + n]);
            if let Some(h) = b3.as_mut() {
                h.update(&buf[got..got + n]);
            }
            got += n;
        }
        if sum.finish() != want || blake3.zip(b3).is_some_and(|(want, h)| h.finalize().as_bytes() != want) {
            return Err(Error::Checksum { offset, len });
        }
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.blocks.fetch_add(1, Ordering::Relaxed);
        Ok(buf)
    }

    /// The sender said DONE: it has sent `bytes` in all.
    pub fn client_done(&self, bytes: u64) {
        let mut st = self.state.lock().expect("state lock");
        st.client_done = Some(bytes);
        // DONE after a data connection closed without its STREAM_END: that stream's blocks
        // will never come.
        let early = st.closed > 0;
        self.cond.notify_all();
        drop(st);
        if early {
            self.fail(closed_early());
        }
    }

    /// Records the first failure and stops every thread of the session.
    pub fn fail(&self, e: Error) {
        let mut st = self.state.lock().expect("state lock");
        if st.failure.is_none() {
            st.failure = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.cond.notify_all();
        drop(st);
        for s in self.sockets.lock().expect("sockets lock").iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// A data connection broke: the sender may have stopped for a reason it is sending on the
    /// control connection (a source file that changed, a read that failed), which says more
    /// than the broken connection does. Waits for it (or any other failure) a moment first,
    /// unless the control connection has closed already: then no ERROR is coming, and a retry
    /// of the same push must not find this session still running.
    fn fail_unless_explained(&self, e: Error) {
        let st = self.state.lock().expect("state lock");
        let (st, _) = self.cond.wait_timeout_while(st, EXPLAIN_GRACE, |st| st.failure.is_none() && !st.sender_gone).expect("state lock");
        let explained = st.failure.is_some();
        drop(st);
        if !explained {
            self.fail(e);
        }
    }

    /// Watches the sender's control connection on a thread of its own while data flows: DONE,
    /// an ERROR, or the sender going away (a cancel).
    pub fn watch_control(self: &Arc<Self>, control: &TcpStream) -> Result<()> {
        let mut sock = control.try_clone().map_err(Error::net("cloning a socket"))?;
        let r = Arc::clone(self);
        std::thread::Builder::new()
            .name("lh-control".into())
            .spawn(move || {
                let watched = crate::panic::catch("control watcher", || loop {
                    match frame::read_msg(&mut sock, 0) {
                        Ok(Some(Msg::FileDigests { digests })) => match r.take_digests(digests) {
                            Ok(()) => continue,
                            Err(e) => r.fail(e),
                        },
                        Ok(Some(Msg::Done { bytes, .. })) => r.client_done(bytes),
                        Ok(Some(Msg::Error { code, message })) => r.fail(Error::remote(&code, &message)),
                        Ok(Some(m)) => r.fail(Error::Protocol(format!("unexpected {:?} frame on the control connection", m.frame_type()))),
                        Ok(None) => r.sender_gone(),
                        Err(e) => r.fail(e),
                    }
                    break Ok(());
                });
                if let Err(e) = watched {
                    r.fail(e);
                }
            })
            .map_err(|e| Error::io("spawn", b"control watcher", e))?;
        Ok(())
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Waits for the end of the session, then either completes the tree or removes every
    /// temporary file it made.
    pub fn wait_and_finish(&self) -> Result<SummaryMsg> {
        {
            // Progress is bytes arriving or streams attaching and ending; none for the idle
            // timeout means the sender is gone or stuck, and the session must not hold its
            // buffers and threads any longer.
            let progress = |st: &State| (self.bytes.load(Ordering::Relaxed), st.attached, st.ended);
            let mut st = self.state.lock().expect("state lock");
            let mut last = (progress(&st), Instant::now());
            while st.failure.is_none() && !(st.client_done.is_some() && st.ended == self.streams) {
                st = self.cond.wait_timeout(st, Duration::from_millis(200)).expect("state lock").0;
                let now = progress(&st);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if st.client_done.is_none() && last.1.elapsed() >= self.idle_timeout {
                    drop(st);
                    self.fail(Error::Timeout("no data from the sender within the idle timeout"));
                    st = self.state.lock().expect("state lock");
                }
            }
        }
        // No more jobs: let the writers drain what is queued, then wait for them.
        self.write_tx.lock().expect("tx lock").take();
        let handles = std::mem::take(&mut *self.writers.lock().expect("writers lock"));
        for h in handles {
            if let Err(p) = h.join() {
                self.fail(crate::panic::from_payload("writer", p));
            }
        }
        let result = self.check_and_finish();
        if let Err(e) = result {
            self.fail(e);
        }
        let failure = self.state.lock().expect("state lock").failure.take();
        if let Some(e) = failure {
            // A source that changed gives the next attempt another index, which this journal
            // cannot serve: its temporary files would only be left behind.
            let stale = e.code() == "E_SOURCE_CHANGED";
            match &self.journal {
                Some(j) if !stale => {
                    // Kept for the next attempt, which the journal tells what they hold; with
                    // none kept, the journal has nothing a next attempt could use.
                    self.close_temps();
                    if !self.keep_temps() {
                        j.remove();
                    }
                }
                _ => self.discard_temps(),
            }
            return Err(e);
        }
        if self.earlier {
            self.remove_leftovers();
        }
        if let Some(j) = &self.journal {
            j.remove();
        }
        Ok(SummaryMsg {
            bytes: self.bytes.load(Ordering::Relaxed),
            files: self.index.count(Kind::File) as u64,
            dirs: self.index.count(Kind::Dir) as u64,
            symlinks: self.index.count(Kind::Symlink) as u64,
            blocks: self.blocks.load(Ordering::Relaxed),
            micros: self.started.elapsed().as_micros() as u64,
            verified: self.verified.load(Ordering::Relaxed),
        })
    }

    fn check_and_finish(&self) -> Result<()> {
        let (client_bytes, failed) = {
            let st = self.state.lock().expect("state lock");
            (st.client_done, st.failure.is_some())
        };
        if failed {
            return Ok(());
        }
        let got = self.bytes.load(Ordering::Relaxed);
        let expect = self.index.total() - self.carried.bytes;
        if client_bytes != Some(expect) || got != expect || self.blocks.load(Ordering::Relaxed) + self.carried.blocks != self.nblocks {
            return Err(Error::Protocol(format!(
                "transfer ended with {got} of {expect} bytes received (sender reported {client_bytes:?})"
            )));
        }
        let entries = self.index.entries();
        let mut dirs = DirCache::default();
        for (i, e) in entries.iter().enumerate() {
            match e.kind {
                Kind::File => {
                    if e.size == 0 {
                        drop(self.open_temp(i, &mut dirs)?);
                        self.finalize(i, &mut dirs)?;
                    }
                    match self.files[i].stage.load(Ordering::SeqCst) {
                        STAGE_FINAL => {}
                        STAGE_WRITTEN => self.promote(i, &mut dirs)?,
                        _ => return Err(Error::Protocol(format!("{:?} did not complete", lossy(&e.path)))),
                    }
                }
                Kind::Symlink => {
                    let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
                    let temp = self.temp_name(i);
                    // A killed earlier attempt may have left it.
                    let _ = rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty());
                    rustix::fs::symlinkat(OsStr::from_bytes(&e.target), dir, temp.as_str())
                        .map_err(|err| Error::io("symlink", &e.path, err.into()))?;
                    self.files[i].stage.store(STAGE_TEMP, Ordering::SeqCst);
                    let t = timestamp(e.mtime_ns);
                    let _ = rustix::fs::utimensat(
                        dir,
                        temp.as_str(),
                        &rustix::fs::Timestamps { last_access: t, last_modification: t },
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    );
                    let held = self.name_lock(i);
                    let old = self.replaced(dir, name);
                    rustix::fs::renameat(dir, temp.as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
                    self.count_named(i, 0, old);
                    drop(held);
                    self.files[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
                }
                Kind::Dir => {}
            }
        }
        for e in entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
            let fd = beneath::open_dir(self.dest_fd.as_fd(), &e.path, dest_refused)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode(e))).map_err(|err| Error::io("chmod", &e.path, err.into()))?;
            let t = timestamp(e.mtime_ns);
            rustix::fs::futimens(&fd, &rustix::fs::Timestamps { last_access: t, last_modification: t })
                .map_err(|err| Error::io("set mtime", &e.path, err.into()))?;
        }
        if self.fsync == Fsync::End {
            rustix::fs::syncfs(&self.dest_fd).map_err(|err| Error::io("syncfs", b"destination", err.into()))?;
        }
        Ok(())
    }

    /// Closes the temporary files a failed journaled session keeps for its next attempt.
    fn close_temps(&self) {
        for slot in &self.files {
            slot.fd.lock().expect("slot lock").take();
        }
    }

    /// A journaled session failed: of its temporary files, those that hold data stay for the
    /// next attempt, counted at their size on disk; those that hold none (a session that ended
    /// before its data came) are removed and leave the account. Whether any stayed.
    fn keep_temps(&self) -> bool {
        let mut dirs = DirCache::default();
        let mut kept = false;
        for (i, (slot, e)) in self.files.iter().zip(self.index.entries()).enumerate() {
            let stage = slot.stage.load(Ordering::SeqCst);
            if !matches!(stage, STAGE_TEMP | STAGE_WRITTEN) {
                continue;
            }
            let holds = stage == STAGE_WRITTEN || slot.remaining.load(Ordering::SeqCst) < e.size;
            let Ok((dir, _)) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused) else {
                kept = true;
                continue;
            };
            let temp = self.temp_name(i);
            let on_disk = rustix::fs::statat(dir, temp.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok().map(|st| st.st_size as u64);
            if holds {
                kept = true;
                let counted = slot.part.swap(UNCOUNTED, Ordering::SeqCst);
                if let (Some(g), Some(size), true) = (&self.space, on_disk, counted != UNCOUNTED) {
                    g.part_resized(counted, size);
                }
            } else if rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty()).is_ok() {
                self.count_removed(i, on_disk);
                slot.stage.store(STAGE_NONE, Ordering::SeqCst);
            }
        }
        kept
    }

    /// The session completed after an earlier attempt: temporary files of that attempt that
    /// this one did not take up would have no journal left to find them by. Removed, and out
    /// of the account.
    fn remove_leftovers(&self) {
        let mut dirs = DirCache::default();
        for (i, e) in self.index.entries().iter().enumerate().filter(|(_, e)| e.kind == Kind::File) {
            let Ok((dir, _)) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused) else { continue };
            let temp = self.temp_name(i);
            let Ok(st) = rustix::fs::statat(dir, temp.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
                && rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty()).is_ok()
            {
                self.count_removed(i, Some(st.st_size as u64));
            }
        }
    }

    /// Removes every temporary file of the session, and its journal, and gives their space
    /// back to the account.
    fn discard_temps(&self) {
        if self.space.is_some() {
            let mut dirs = DirCache::default();
            for (i, (slot, e)) in self.files.iter().zip(self.index.entries()).enumerate() {
                if matches!(slot.stage.load(Ordering::SeqCst), STAGE_TEMP | STAGE_WRITTEN) {
                    let on_disk = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused).ok().and_then(|(dir, _)| {
                        rustix::fs::statat(dir, self.temp_name(i).as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()
                    });
                    self.count_removed(i, on_disk.map(|st| st.st_size as u64));
                }
            }
        }
        self.remove_temps();
        if let Some(j) = &self.journal {
            j.remove();
        }
    }

    /// Removes every temporary file of the session; files already under their final name are
    /// complete and stay.
    fn remove_temps(&self) {
        let mut dirs = DirCache::default();
        for (i, slot) in self.files.iter().enumerate() {
            if matches!(slot.stage.load(Ordering::SeqCst), STAGE_TEMP | STAGE_WRITTEN) {
                slot.fd.lock().expect("slot lock").take();
                let _ = self.remove_temp(i, &mut dirs);
            }
        }
    }

    /// Removes file `i`'s temporary file, through its directory's descriptor; whether it went.
    fn remove_temp(&self, i: usize, dirs: &mut DirCache) -> bool {
        dirs.parent(self.dest_fd.as_fd(), &self.index.entries()[i].path, dest_refused)
            .is_ok_and(|(dir, _)| rustix::fs::unlinkat(dir, self.temp_name(i).as_str(), rustix::fs::AtFlags::empty()).is_ok())
    }
}

/// What an earlier attempt (its journal, its temporary files) and the destination already hold
/// of this transfer. A file already at the destination with the index's size and mtime is
/// complete (rsync's quick check); a journaled block counts when every file it touches is
/// complete or has its temporary file, and its bytes, read back, still have the recorded XXH3.
/// Blocks made only of complete files count too, so the sender skips them.
fn carried_over(index: &Index, dest: BorrowedFd<'_>, tag: &str, block_size: u64, previous: &Previous) -> Carried {
    let entries = index.entries();
    let temp_name = |i: usize| format!(".lh-{tag}-{i}.part");
    let mut stages = vec![STAGE_NONE; entries.len()];
    // A file whose directory is missing has neither name: one open per directory, for the
    // common push into a new destination.
    let mut held = ExistingDirs::new(dest);
    let mut dirs = DirCache::default();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.kind == Kind::File && e.size > 0) {
        if !held.hold(&e.path) {
            continue;
        }
        let Ok((dir, name)) = dirs.parent(dest, &e.path, dest_refused) else { continue };
        let stat = |name: &OsStr| rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok();
        let regular = |st: &rustix::fs::Stat| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        let complete = stat(name).is_some_and(|st| {
            regular(&st)
                && st.st_size as u64 == e.size
                && st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128 == e.mtime_ns as i128
        });
        stages[i] = if complete {
            STAGE_FINAL
        } else if stat(OsStr::new(&temp_name(i))).is_some_and(|st| own_part(&st) && st.st_size as u64 <= e.size) {
            STAGE_TEMP
        } else {
            STAGE_NONE
        };
    }
    let total = index.total();
    let nblocks = total.div_ceil(block_size);
    let block_len = |b: u64| block_size.min(total - b * block_size);
    let recorded: std::collections::HashMap<u64, u64> = previous.blocks.iter().copied().collect();
    let mut buf = Vec::new();
    let mut done = Vec::new();
    for b in 0..nblocks {
        let pieces: Vec<_> = index.pieces(b * block_size, block_len(b)).collect();
        if pieces.iter().all(|p| stages[p.entry] == STAGE_FINAL) {
            done.push(b);
            continue;
        }
        let Some(&want) = recorded.get(&b) else { continue };
        if pieces.iter().any(|p| stages[p.entry] == STAGE_NONE) {
            continue;
        }
        buf.resize(block_len(b) as usize, 0);
        let read_back = pieces.iter().all(|p| {
            let Ok((dir, name)) = dirs.parent(dest, &entries[p.entry].path, dest_refused) else { return false };
            let temp = temp_name(p.entry);
            let from = if stages[p.entry] == STAGE_FINAL { name } else { OsStr::new(&temp) };
            let at = p.range_offset as usize;
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            rustix::fs::openat(dir, from, flags, Mode::empty())
                .map(File::from)
                .is_ok_and(|f| f.read_exact_at(&mut buf[at..at + p.len as usize], p.file_offset).is_ok())
        });
        if read_back && xxh3(&buf) == want {
            done.push(b);
        }
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &b in &done {
        match ranges.last_mut() {
            Some((_, end)) if *end == b => *end = b + 1,
            _ => ranges.push((b, b + 1)),
        }
    }
    // PLAN fits one control frame; blocks past its last range are simply sent again.
    if ranges.len() > crate::wire::frame::MAX_PLAN_RANGES {
        ranges.truncate(crate::wire::frame::MAX_PLAN_RANGES);
        let end = ranges[ranges.len() - 1].1;
        done.retain(|&b| b < end);
    }
    let mut remaining: Vec<u64> = entries.iter().zip(&stages).map(|(e, &st)| if st == STAGE_FINAL { 0 } else { e.size }).collect();
    let mut bytes = 0;
    for &b in &done {
        for p in index.pieces(b * block_size, block_len(b)) {
            if stages[p.entry] == STAGE_TEMP {
                remaining[p.entry] -= p.len;
            }
        }
        bytes += block_len(b);
    }
    Carried { blocks: done.len() as u64, ranges, bytes, remaining, stages }
}

/// Whether the directories that index paths name under `dest` exist: one open per directory
/// (beneath `dest`, no symlink followed), from the index's bytes, remembered (a tree of
/// 100,000 files in 1,000 directories made a path and hashed it for every file: 70-120 ms
/// before the first byte could flow).
pub(crate) struct ExistingDirs<'a, 'f> {
    dest: BorrowedFd<'f>,
    seen: std::collections::HashMap<&'a [u8], bool>,
    last: Option<(&'a [u8], bool)>,
}

impl<'a, 'f> ExistingDirs<'a, 'f> {
    pub(crate) fn new(dest: BorrowedFd<'f>) -> Self {
        ExistingDirs { dest, seen: std::collections::HashMap::new(), last: None }
    }

    /// Whether the directory holding `path` (relative to `dest`) is a real directory, reached
    /// without a symlink.
    pub(crate) fn hold(&mut self, path: &'a [u8]) -> bool {
        let parent = crate::vfile::index::parent_of(path).unwrap_or(b"");
        if let Some((last, there)) = self.last {
            if last == parent {
                return there;
            }
        }
        let dest = self.dest;
        let there = *self.seen.entry(parent).or_insert_with(|| beneath::open_dir(dest, parent, dest_refused).is_ok());
        self.last = Some((parent, there));
        there
    }
}

fn timestamp(ns: i64) -> rustix::fs::Timespec {
    rustix::fs::Timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) as _ }
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

/// Whether `st` is a temporary file a receiver made and may take over: a regular file with one
/// link, owned by this process's user. A local user who put a hard link to another file (or a
/// FIFO) under a `.part` name would otherwise have the receiver write into it and chmod it.
pub(crate) fn own_part(st: &rustix::fs::Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        && st.st_nlink == 1
        && st.st_uid == rustix::process::geteuid().as_raw()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use std::path::Path;

    fn scratch(name: &str) -> Scratch {
        Scratch::new(&format!("receive-{name}"))
    }

    fn open_dir(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    /// Which directory a descriptor is, as its device and inode.
    fn ino(fd: BorrowedFd<'_>) -> (u64, u64) {
        let st = rustix::fs::fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    fn ino_of(p: &Path) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn write_chunked_puts_a_piece_of_several_chunks_at_its_offset() {
        let root = scratch("chunked");
        let path = root.join("f");
        let (at, len) = (1000u64, WRITE_CHUNK * 2 + WRITE_CHUNK / 2 + 7);
        fs::write(&path, vec![0xAA; at as usize + len + 10]).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let fd = fs::OpenOptions::new().write(true).open(&path).unwrap();
        write_chunked(&fd, &data, at).unwrap();
        let got = fs::read(&path).unwrap();
        assert_eq!(got.len(), at as usize + len + 10, "nothing written past the piece");
        assert!(got[..at as usize].iter().all(|&b| b == 0xAA), "nothing written before the piece");
        assert!(got[at as usize..at as usize + len] == data[..], "the piece, byte for byte");
        assert!(got[at as usize + len..].iter().all(|&b| b == 0xAA), "the bytes after it untouched");
    }

    #[test]
    fn dir_cache_opens_the_parent_and_keeps_it_while_files_share_it() {
        let root = scratch("dircache");
        fs::create_dir_all(root.join("a/b")).unwrap();
        let dest = open_dir(&root);
        let mut dirs = DirCache::default();

        let (fd, name) = dirs.parent(dest.as_fd(), b"top.txt", dest_refused).unwrap();
        assert_eq!((ino(fd), name), (ino_of(&root), OsStr::new("top.txt")));
        let (fd, name) = dirs.parent(dest.as_fd(), b"a/b/one", dest_refused).unwrap();
        assert_eq!((ino(fd), name), (ino_of(&root.join("a/b")), OsStr::new("one")));
        let first = dirs.held().unwrap();
        let (fd, name) = dirs.parent(dest.as_fd(), b"a/b/two", dest_refused).unwrap();
        assert_eq!((ino(fd), name), (ino_of(&root.join("a/b")), OsStr::new("two")));
        assert_eq!(dirs.held().unwrap(), first, "the same directory is not opened again");
        let (fd, _) = dirs.parent(dest.as_fd(), b"a/three", dest_refused).unwrap();
        assert_eq!(ino(fd), ino_of(&root.join("a")));
    }

    #[test]
    fn dir_cache_refuses_a_directory_replaced_by_a_symlink() {
        let root = scratch("dircache-swap");
        let outside = scratch("dircache-outside");
        fs::create_dir_all(root.join("a/b")).unwrap();
        let dest = open_dir(&root);
        let mut dirs = DirCache::default();
        dirs.parent(dest.as_fd(), b"a/b/one", dest_refused).unwrap();
        // Swapped after the index was checked and the tree made: a path walk would follow it.
        fs::remove_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/b")).unwrap();
        // The open directory is still the one made under the root (now unlinked), not `outside`.
        let (fd, _) = dirs.parent(dest.as_fd(), b"a/b/two", dest_refused).unwrap();
        assert_ne!(ino(fd), ino_of(&outside));
        // Opened afresh (another directory came between), the symlink is refused.
        dirs.parent(dest.as_fd(), b"a/x", dest_refused).unwrap();
        let err = dirs.parent(dest.as_fd(), b"a/b/three", dest_refused).unwrap_err();
        assert_eq!(err.code(), "E_PATH_ESCAPE", "{err}");
        // An intermediate component swapped the same way.
        fs::remove_file(root.join("a/b")).unwrap();
        fs::rename(root.join("a"), root.join("a.old")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        fs::create_dir(outside.join("b")).unwrap();
        let err = dirs.parent(dest.as_fd(), b"a/b/four", dest_refused).unwrap_err();
        assert_eq!(err.code(), "E_PATH_ESCAPE", "{err}");
        assert_eq!(fs::read_dir(outside.join("b")).unwrap().count(), 0);
    }
}
