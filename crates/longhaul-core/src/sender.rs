//! The sending side of a transfer: scan → content index → MANIFEST → blocks over N streams.
//!
//! The block work is the same whatever runs it: READ a block (a block inside one file is hashed
//! through a small scratch buffer and later sent with sendfile; a block of several files is
//! packed into a pooled buffer with one pread per piece), PROCESS it (XXH3 of a packed block,
//! and BLAKE3 when asked), SEND it on a data stream. Two schedulers run that work:
//!
//! - `pipelined` (mdtmFTP): dedicated disk-reader threads, processing threads and one
//!   network-sender thread per stream, joined by bounded queues;
//! - `adaptive` (Vyukov, `adaptive.rs`): interchangeable workers that each READ, PROCESS (and
//!   send on any free stream) or park, by the published rules;
//! - `auto` runs the first blocks with each, measures, and sends the rest with the faster.
//!
//! Prepared blocks wait in queues no longer than the pool, so memory is bounded by the pool.
//! Threads are bound to CPUs when the placement says so (`placement.rs`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use rustix::fs::{Mode, OFlags};

use crate::adaptive::{self, Scheduler, Work};
use crate::beneath::DirCache;
use crate::error::{lossy, Error, Result};
use crate::frame::{self, Msg, SummaryMsg};
use crate::hash::{xxh3, Xxh3};
use crate::index::{Index, Kind};
use crate::net;
use crate::panic;
use crate::placement::{allowed_cpus, bind_current_thread, CoreSpec, PinMode, Placement, Role};
use crate::pool::{Pool, PoolBuf};
use crate::probe;
use crate::rate::Throttle;
use crate::scan::{scan_within, Stamp};
use crate::timeline::{Gauges, Recorder, Sample};
use crate::topology::Topology;
use crate::transfer::{FastPaths, Progress};

/// 1 MiB: large enough that per-block costs (a header, a syscall, a channel hop, a journal
/// record) stay under 1% of a block's time, small enough that a block stays in a core's L2
/// cache between the node's receiving thread (the copy out of the socket, XXH3) and its writer
/// (the copy into the page cache). Against 4 MiB blocks on the 2-core loopback machines
/// (bench/RESULTS.md, "block size"): never slower; one large file 3-14% faster (the node's CPU
/// 2-22% lower), the mixed tree 2-10%, 100,000 small files the same. It also bounds what an
/// interruption resends (a block per stream) and the sender's pool (6 MiB for 2 streams).
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// Chosen by measurement on the 2-core loopback machines (bench/RESULTS.md): beyond 2 streams
/// the extra threads only add CPU where the cores are already busy; 2 streams keep a writer on
/// the far side busy while one block is in flight on the other.
pub const DEFAULT_STREAMS: u16 = 2;
/// Reads through the sendfile path's checksum go through this much scratch per reader: small
/// enough to stay in L2 while it is hashed.
const HASH_CHUNK: usize = 256 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    Pipelined,
    Adaptive,
    #[default]
    Auto,
}

impl SchedulerKind {
    pub fn parse(s: &str) -> Result<SchedulerKind> {
        match s {
            "pipelined" => Ok(SchedulerKind::Pipelined),
            "adaptive" => Ok(SchedulerKind::Adaptive),
            "auto" => Ok(SchedulerKind::Auto),
            _ => Err(Error::Usage(format!("scheduler must be pipelined, adaptive or auto, not {s:?}"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Pipelined => "pipelined",
            SchedulerKind::Adaptive => "adaptive",
            SchedulerKind::Auto => "auto",
        }
    }
}

/// Processing applied to every block besides its XXH3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Digest {
    #[default]
    None,
    /// A BLAKE3 of every block, sent with it and checked by the node. Turns sendfile off: the
    /// bytes must pass through a buffer to be hashed.
    Blake3,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        match s {
            "none" => Ok(Digest::None),
            "blake3" => Ok(Digest::Blake3),
            _ => Err(Error::Usage(format!("digest must be none or blake3, not {s:?}"))),
        }
    }
}

/// How the receiver proves the data arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verify {
    /// XXH3 of every block on arrival (always on).
    #[default]
    Block,
    /// Besides the blocks' XXH3: the sender reads every file once more for a BLAKE3 of it
    /// (FILE_DIGESTS), and the receiver reads every file back after writing it and compares
    /// before the rename (GridFTP's `-verify-checksum`, xrdcp's `--cksum`).
    Full,
}

impl Verify {
    pub fn parse(s: &str) -> Result<Verify> {
        match s {
            "block" => Ok(Verify::Block),
            "full" => Ok(Verify::Full),
            _ => Err(Error::Usage(format!("verify must be block or full, not {s:?}"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Verify::Block => "block",
            Verify::Full => "full",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SendOptions {
    pub streams: u16,
    pub block_size: u32,
    /// Buffers in the sender's pool; 0 picks what the scheduler needs.
    pub pool_buffers: usize,
    /// Pipelined disk-reader threads; 0 picks `min(streams, 4).max(2)`.
    pub readers: usize,
    /// Pipelined processing threads; 0 picks 1, or one per CPU with a BLAKE3 digest.
    pub processors: usize,
    /// Adaptive worker threads; 0 picks CPUs + 2.
    pub workers: usize,
    pub scheduler: SchedulerKind,
    pub digest: Digest,
    pub cores: Option<CoreSpec>,
    pub pin: PinMode,
    /// Where sysfs and procfs are read from (`/`; tests point it at a fake tree).
    pub sysfs_root: PathBuf,
    pub scan_threads: usize,
    pub connect_timeout: Duration,
    /// The node must answer the handshake, and take each block, within this.
    pub io_timeout: Duration,
    pub progress_interval: Duration,
    pub timeline_interval: Duration,
    /// The shared token's key; `None` talks only to a node that asks for none.
    pub secret: Option<crate::auth::Secret>,
    /// TLS to the node and how to trust it; `None` is plaintext.
    pub tls: Option<crate::tls::ClientTls>,
    /// How long the receiver may take to answer DONE; `None` waits (a client can cancel; a
    /// node sending for a pull cannot, so it sets this).
    pub summary_timeout: Option<Duration>,
    /// Ask the node to resume from its journal of an earlier attempt at this push (PLAN), and
    /// to skip files it already holds with the same size and mtime; `false` sends everything.
    pub resume: bool,
    pub verify: Verify,
    /// A node sending from its root (a pull, a copy) names the root here: the source must lie
    /// under it, and the directory holding it is opened from the root one component at a time
    /// without following symlinks, so one swapped in after the node's checks cannot lead it
    /// outside. `None` for a client, which sends what the user named.
    pub confine: Option<PathBuf>,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            streams: DEFAULT_STREAMS,
            block_size: DEFAULT_BLOCK_SIZE,
            pool_buffers: 0,
            readers: 0,
            processors: 0,
            workers: 0,
            scheduler: SchedulerKind::Auto,
            digest: Digest::None,
            cores: None,
            pin: PinMode::Auto,
            sysfs_root: PathBuf::from("/"),
            scan_threads: cpus().min(8),
            connect_timeout: Duration::from_secs(10),
            // As the node's idle timeout: a 4 MiB block must leave within it.
            io_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(100),
            timeline_interval: Duration::from_millis(5),
            secret: None,
            tls: None,
            summary_timeout: None,
            resume: true,
            verify: Verify::Block,
            confine: None,
        }
    }
}

/// Which scheduler ran, and why.
#[derive(Clone, Debug)]
pub struct SchedulerReport {
    pub requested: &'static str,
    pub used: &'static str,
    pub reason: String,
    /// (scheduler, bytes/s) measured by `auto`'s probe.
    pub probe: Vec<(&'static str, f64)>,
}

/// An engine thread and the CPU it was bound to.
#[derive(Clone, Debug)]
pub struct ThreadPin {
    pub name: String,
    pub tid: i32,
    pub cpu: usize,
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SendSummary {
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub blocks: u64,
    pub seconds: f64,
    pub scan_seconds: f64,
    pub streams: u16,
    pub per_stream_bytes: Vec<u64>,
    pub sendfile_blocks: u64,
    pub sendfile_bytes: u64,
    pub packed_blocks: u64,
    pub packed_bytes: u64,
    pub fast_paths: FastPaths,
    pub skipped: Vec<(String, &'static str)>,
    pub receiver: SummaryMsg,
    pub scheduler: SchedulerReport,
    pub placement: Placement,
    pub pinned: Vec<ThreadPin>,
    pub timeline: Vec<Sample>,
    pub digest: Digest,
    /// Blocks and bytes the node already held from an earlier attempt (PLAN) and so were not
    /// sent again.
    pub resumed_blocks: u64,
    pub resumed_bytes: u64,
    pub verify: Verify,
}

/// A block ready to send. A sendfile block's `entry` is the index entry of the one file it lies in.
enum Prepared {
    Sendfile { file: File, entry: usize, file_offset: u64, offset: u64, len: u32, hash: u64 },
    Packed { buf: PoolBuf, offset: u64, hash: u64, blake3: Option<[u8; 32]> },
}

/// State shared by the threads of one transfer: the first failure wins and stops the others.
struct Run {
    stop: AtomicBool,
    failure: Mutex<Option<Error>>,
    sockets: Vec<TcpStream>,
    control: TcpStream,
    /// Held while a frame is written on `control`: the failing thread's ERROR and the main
    /// thread's DONE or FILE_DIGESTS must not interleave.
    control_write: Mutex<()>,
}

/// A failure of this side's own making (the source changed or could not be read), which the
/// receiver is told of in an ERROR and which no error the receiver reports back replaces:
/// what the receiver sees next (a data connection shut inside a block) is its consequence.
fn is_local_cause(e: &Error) -> bool {
    matches!(e, Error::SourceChanged { .. } | Error::Io { .. } | Error::NotFound { .. } | Error::Panic { .. })
}

/// Whether failure `new`, coming after `old`, says better what went wrong. A panic is a bug, and
/// says more than the broken stream it may have come after; a source found changed says more
/// than the receiver's checksum failure of a block read from it (sendfile reads a block again
/// after it was hashed).
fn outranks(new: &Error, old: &Error) -> bool {
    match new {
        Error::Panic { .. } => !matches!(old, Error::Cancelled) && !is_local_cause(old),
        Error::SourceChanged { .. } => is_checksum(old),
        _ => false,
    }
}

/// The receiver's verdict on a block: its checksum did not match.
fn is_checksum(e: &Error) -> bool {
    matches!(e, Error::Checksum { .. }) || matches!(e, Error::Remote { code, .. } if code == "E_CHECKSUM")
}

/// Why a file read since the scan is a changed source; `send` sends it once more, from a fresh
/// scan, when this is the reason.
pub(crate) const CHANGED_WHILE_READ: &str = "changed while it was read: its inode, size, mtime or ctime is not what the scan found";
const SHRANK: &str = "shorter than when it was scanned";

/// Whether a changed source, by its reason (or the message a peer's ERROR carried it in), is a
/// file that changed as it was read, which a fresh scan sends whole.
pub(crate) fn resendable(why: &str) -> bool {
    why.contains(CHANGED_WHILE_READ) || why.contains(SHRANK)
}

impl Run {
    fn fail(&self, e: Error) {
        let mut f = self.failure.lock().expect("failure lock");
        let first = f.as_ref().is_none_or(|old| outranks(&e, old));
        let tell = first && is_local_cause(&e);
        let msg = tell.then(|| Msg::error(&e));
        if first {
            *f = Some(e);
        }
        drop(f);
        // The receiver learns why before its data connections close under it (a node that
        // fails a pull tells the client so; a client tells the node, for its log and metrics).
        if let Some(m) = msg {
            let _ = self.write_control(&m);
        }
        self.halt();
    }
    /// The node's ERROR: the cause of whatever broke here (a stream it shut after a bad block,
    /// a full disk), so it replaces a local failure unless the user cancelled or the failure
    /// was this side's own (`is_local_cause`).
    fn explain(&self, e: Error) {
        let mut f = self.failure.lock().expect("failure lock");
        if !f.as_ref().is_some_and(|f| matches!(f, Error::Cancelled) || is_local_cause(f)) {
            *f = Some(e);
        }
        drop(f);
        self.halt();
    }
    fn write_control(&self, msg: &Msg) -> Result<()> {
        let _g = self.control_write.lock().expect("control lock");
        frame::write_msg(&mut &self.control, msg)
    }
    fn halt(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            for s in &self.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Counters {
    sendfile_blocks: AtomicU64,
    sendfile_bytes: AtomicU64,
    packed_blocks: AtomicU64,
    packed_bytes: AtomicU64,
}

/// The block work of one transfer, shared by whichever scheduler runs it.
struct Engine<'a> {
    index: &'a Index,
    /// The scan's inode and ctime of each entry (`Stamp`), to check a file after reading it.
    stamps: &'a [Stamp],
    /// The scan's base directory, held open: every source file is opened beneath it.
    base: BorrowedFd<'a>,
    /// Open directories the readers reuse, one taken per block (see `open_source`).
    dirs: Mutex<Vec<DirCache>>,
    pool: Arc<Pool>,
    bs: u64,
    /// Blocks to send (those not in the node's PLAN), in order; the schedulers number them
    /// 0..nblocks and `order` maps that number to the block.
    nblocks: u64,
    order: Vec<u64>,
    next: AtomicU64,
    /// Blocks below this number may be taken; `auto` raises it phase by phase.
    limit: AtomicU64,
    sendfile: bool,
    digest: Digest,
    counters: Counters,
    run: &'a Run,
    gauges: Gauges,
    per_stream: Vec<AtomicU64>,
    stream_blocks: Vec<AtomicU64>,
    block_done: Vec<AtomicBool>,
    sockets: &'a [TcpStream],
    /// Streams free for the next send, taken in turn (see `with_stream`).
    free_streams: Mutex<VecDeque<usize>>,
    stream_ready: Condvar,
    placement: Placement,
    pinned: Mutex<Vec<ThreadPin>>,
    /// Bandwidth limits a node applies to what it sends (pull); none for a client.
    throttle: Throttle,
    /// The files of the last sendfile blocks sent (`IN_FLIGHT_PER_STREAM` per stream, one
    /// descriptor per file).
    /// sendfile returns once it has queued references to the page cache, and the receiver gets
    /// what the pages hold when it reads them: a file changed after the check that follows
    /// the send still arrives changed, under the old checksum. The main thread checks these
    /// again (`recheck_in_flight`) while the receiver may still be reading them, so it can
    /// explain the bad block it reports.
    in_flight: Mutex<VecDeque<(usize, File)>>,
}

/// Files per stream whose pages may still wait in the socket's queue after sendfile returned
/// (a loopback or autotuned send buffer holds a few MiB: a few 1 MiB blocks); few, as each
/// holds a descriptor.
const IN_FLIGHT_PER_STREAM: usize = 4;
/// How often the main thread checks the files of the blocks in flight: well within the 1 s a
/// receiver waits for the sender to explain a bad block.
const RECHECK_EVERY: Duration = Duration::from_millis(50);

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Engine<'_> {
    fn take_block(&self) -> Option<u64> {
        let mut n = self.next.load(Ordering::Relaxed);
        loop {
            if n >= self.limit.load(Ordering::Relaxed) || self.run.stopped() {
                return None;
            }
            match self.next.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(self.order[n as usize]),
                Err(now) => n = now,
            }
        }
    }

    /// Bytes of the blocks numbered `from..to` in `order`.
    fn bytes_of_blocks(&self, from: u64, to: u64) -> u64 {
        let total = self.index.total();
        self.order[from as usize..to as usize].iter().map(|&b| self.bs.min(total - b * self.bs)).sum()
    }

    /// Binds the calling thread per the placement and records it.
    fn pin(&self, role: Role, i: usize, name: &str) {
        let Some(cpu) = self.placement.cpu_for(role, i) else { return };
        let error = bind_current_thread(cpu).err();
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        self.pinned.lock().expect("pinned lock").push(ThreadPin { name: name.to_owned(), tid, cpu, error });
    }

    /// READ: brings block `b` in, either as a sendfile descriptor (hashed on the way) or as a
    /// pooled buffer.
    fn read_block(&self, b: u64) -> Result<Prepared> {
        let mut dirs = self.dirs.lock().expect("dirs lock").pop().unwrap_or_default();
        let r = self.read_block_with(b, &mut dirs);
        self.dirs.lock().expect("dirs lock").push(dirs);
        r
    }

    fn read_block_with(&self, b: u64, dirs: &mut DirCache) -> Result<Prepared> {
        let offset = b * self.bs;
        let len = self.bs.min(self.index.total() - offset);
        let mut pieces = self.index.pieces(offset, len);
        let first = pieces.next().ok_or_else(|| Error::Index("a block maps to no file".into()))?;
        if self.sendfile && self.digest == Digest::None && first.len == len {
            // One file holds the whole block: hash it through the scratch buffer now, send it
            // with sendfile later. (mmap would avoid the copy into scratch, but a file truncated
            // by another process while mapped raises SIGBUS and would kill the host process.)
            let rel = &self.index.entries()[first.entry].path;
            let file = open_source(self.base, dirs, rel)?;
            let hash = SCRATCH.with(|s| -> Result<u64> {
                let mut scratch = s.borrow_mut();
                scratch.resize(HASH_CHUNK, 0);
                let mut h = Xxh3::new();
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(HASH_CHUNK as u64) as usize;
                    read_exact_at(&file, &mut scratch[..n], first.file_offset + done, rel)?;
                    h.update(&scratch[..n]);
                    done += n as u64;
                }
                Ok(h.finish())
            })?;
            self.counters.sendfile_blocks.fetch_add(1, Ordering::Relaxed);
            self.counters.sendfile_bytes.fetch_add(len, Ordering::Relaxed);
            return Ok(Prepared::Sendfile { file, entry: first.entry, file_offset: first.file_offset, offset, len: len as u32, hash });
        }
        let mut buf = self.pool.take(&self.run.stop)?;
        buf.set_len(len as usize);
        for p in std::iter::once(first).chain(pieces) {
            let rel = &self.index.entries()[p.entry].path;
            let file = open_source(self.base, dirs, rel)?;
            let at = p.range_offset as usize;
            read_exact_at(&file, &mut buf[at..at + p.len as usize], p.file_offset, rel)?;
            self.check_unchanged(&file, p.entry)?;
        }
        self.counters.packed_blocks.fetch_add(1, Ordering::Relaxed);
        self.counters.packed_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(Prepared::Packed { buf, offset, hash: 0, blake3: None })
    }

    /// Checks that the file of entry `i`, just read through `file`, is still the one the scan
    /// found (inode, size, mtime, ctime). Every read is followed by this check, so a file that
    /// changed before its last read ended fails as changed, naming it; one that changes after
    /// that was sent as it was. (A change within the file system's timestamp granularity of the
    /// scan that keeps the size goes unseen.)
    fn check_unchanged(&self, file: &File, i: usize) -> Result<()> {
        check_unchanged(self.index, self.stamps, file, i)
    }

    /// Checks again the files of the sendfile blocks that may still be in flight (`in_flight`).
    fn recheck_in_flight(&self) -> Result<()> {
        let q = self.in_flight.lock().expect("in-flight lock");
        q.iter().try_for_each(|(entry, file)| self.check_unchanged(file, *entry))
    }

    /// After the receiver failed a block's checksum: the first file of the blocks taken so far
    /// that is no longer what the scan found, as the changed source it is (a sendfile block
    /// whose file changed after the check that follows its send, or whose check never ran).
    fn changed_source(&self) -> Option<Error> {
        let taken = (self.next.load(Ordering::Relaxed) as usize).min(self.order.len());
        let mut dirs = DirCache::default();
        let mut last = usize::MAX;
        for &b in &self.order[..taken] {
            let offset = b * self.bs;
            for p in self.index.pieces(offset, self.bs.min(self.index.total() - offset)) {
                if p.entry == last {
                    continue;
                }
                last = p.entry;
                let e = &self.index.entries()[p.entry];
                let checked = open_source(self.base, &mut dirs, &e.path).and_then(|f| self.check_unchanged(&f, p.entry));
                if let Err(err @ Error::SourceChanged { .. }) = checked {
                    return Some(err);
                }
            }
        }
        None
    }

    /// PROCESS: checksums of a buffered block (a sendfile block was hashed when read).
    fn process_block(&self, p: &mut Prepared) {
        if let Prepared::Packed { buf, hash, blake3, .. } = p {
            *hash = xxh3(buf);
            if self.digest == Digest::Blake3 {
                *blake3 = Some(*blake3::hash(buf).as_bytes());
            }
        }
    }

    /// SEND: writes a processed block on stream `i`.
    fn send_block(&self, i: usize, p: Prepared) -> Result<()> {
        let sock = &self.sockets[i];
        let block_len = match &p {
            Prepared::Sendfile { len, .. } => *len as u64,
            Prepared::Packed { buf, .. } => buf.len() as u64,
        };
        if !self.throttle.take(block_len, &self.run.stop) {
            return Ok(());
        }
        let (offset, len) = match &p {
            Prepared::Sendfile { offset, len, hash, file, entry, file_offset } => {
                let hdr = Msg::Block { offset: *offset, len: *len, xxh3: *hash }.encode();
                net::send_header(sock, &hdr).map_err(Error::net("sending a block"))?;
                let path = &self.index.entries()[*entry].path;
                net::sendfile_all(sock, file, *file_offset, *len as usize).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => Error::SourceChanged { path: lossy(path), why: SHRANK },
                    _ => Error::net("sending a block")(e),
                })?;
                // sendfile read the block again after it was hashed: a change in between is a
                // bad block to the receiver, which waits a moment for this to say why.
                self.check_unchanged(file, *entry)?;
                (*offset, *len as u64)
            }
            Prepared::Packed { buf, offset, hash, blake3 } => {
                let hdr = match blake3 {
                    Some(b3) => Msg::BlockB3 { offset: *offset, len: buf.len() as u32, xxh3: *hash, blake3: *b3 }.encode(),
                    None => Msg::Block { offset: *offset, len: buf.len() as u32, xxh3: *hash }.encode(),
                };
                net::send_header(sock, &hdr).map_err(Error::net("sending a block"))?;
                net::write_all(sock, buf).map_err(Error::net("sending a block"))?;
                (*offset, buf.len() as u64)
            }
        };
        if let Prepared::Sendfile { file, entry, .. } = p {
            let mut q = self.in_flight.lock().expect("in-flight lock");
            // One descriptor per file is enough to check it: a large file's blocks share one.
            if let Some(k) = q.iter().position(|&(e, _)| e == entry) {
                let held = q.remove(k).expect("just found");
                q.push_back(held);
            } else {
                if q.len() >= IN_FLIGHT_PER_STREAM * self.sockets.len() {
                    q.pop_front();
                }
                q.push_back((entry, file));
            }
        }
        self.stream_blocks[i].fetch_add(1, Ordering::Relaxed);
        self.per_stream[i].fetch_add(len, Ordering::Relaxed);
        self.block_done[(offset / self.bs) as usize].store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `f`, recording its failure for the whole transfer.
    fn guarded(&self, f: impl FnOnce() -> Result<()>) {
        if let Err(e) = f() {
            if !self.run.stopped() {
                self.run.fail(e);
            }
        }
    }

    fn run_pipelined(&self, readers: usize, processors: usize) {
        let cap = self.pool.count().max(2);
        let (read_tx, read_rx) = bounded::<Prepared>(cap);
        let (send_tx, send_rx) = bounded::<Prepared>(cap);
        std::thread::scope(|s| {
            for i in 0..readers {
                let tx = read_tx.clone();
                let name = format!("lh-rd-{i}");
                spawn_named(s, name.clone(), "reader", self.run, move || {
                    self.pin(Role::Disk, i, &name);
                    self.guarded(|| {
                        while let Some(b) = self.take_block() {
                            let p = {
                                let _g = self.gauges.reading();
                                self.read_block(b)?
                            };
                            let _g = self.gauges.blocked();
                            if tx.send(p).is_err() {
                                break;
                            }
                        }
                        Ok(())
                    })
                });
            }
            drop(read_tx);
            for i in 0..processors {
                let (rx, tx): (Receiver<Prepared>, Sender<Prepared>) = (read_rx.clone(), send_tx.clone());
                let name = format!("lh-pr-{i}");
                spawn_named(s, name.clone(), "processor", self.run, move || {
                    self.pin(Role::Other, i, &name);
                    loop {
                        let got = {
                            let _g = self.gauges.blocked();
                            rx.recv()
                        };
                        let Ok(mut p) = got else { break };
                        self.gauges.set_queued(rx.len());
                        {
                            let _g = self.gauges.processing();
                            self.process_block(&mut p);
                        }
                        let _g = self.gauges.blocked();
                        if tx.send(p).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(send_tx);
            // Only the processors may hold the read queue's receiving end: once they are gone
            // (or the senders below), the queue disconnects and no thread waits on it forever.
            drop(read_rx);
            for i in 0..self.sockets.len() {
                let rx = send_rx.clone();
                let name = format!("lh-tx-{i}");
                spawn_named(s, name.clone(), "sender", self.run, move || {
                    self.pin(Role::Net, i, &name);
                    self.guarded(|| {
                        loop {
                            let got = {
                                let _g = self.gauges.blocked();
                                rx.recv()
                            };
                            let Ok(p) = got else { break };
                            if self.run.stopped() {
                                break;
                            }
                            let _g = self.gauges.sending();
                            self.send_block(i, p)?;
                        }
                        Ok(())
                    })
                });
            }
            drop(send_rx);
        });
    }

    fn run_adaptive(&self, workers: usize) {
        let params = adaptive::Params {
            cpus: cpus(),
            // One reader always: it keeps the disk queue fed while the others process.
            min_io_threads: 1,
            high_watermark: (self.pool.count() / 2).max(2),
            low_watermark: (self.pool.count() / 8).max(1),
        };
        let sched = Scheduler::new(self, workers, params, &self.run.stop, &self.gauges);
        std::thread::scope(|s| {
            for i in 0..workers {
                let (sched, name) = (&sched, format!("lh-aw-{i}"));
                spawn_named(s, name.clone(), "worker", self.run, move || {
                    // Every block ends on the NIC: workers live in the network zone.
                    self.pin(Role::Net, i, &name);
                    self.guarded(|| match sched.worker(i) {
                        Err(Error::Cancelled) if self.run.stopped() => Ok(()),
                        r => r,
                    })
                });
            }
        });
    }

    /// Takes a free stream for the duration of one send (adaptive mode shares the streams).
    /// The one free longest goes first: with fewer workers sending at once than there are
    /// streams, a stack would hand the same few back every time and leave the rest idle.
    fn with_stream(&self, f: impl FnOnce(usize) -> Result<()>) -> Result<()> {
        let i = {
            let mut free = self.free_streams.lock().expect("streams lock");
            loop {
                if self.run.stopped() {
                    return Err(Error::Cancelled);
                }
                if let Some(i) = free.pop_front() {
                    break i;
                }
                free = self.stream_ready.wait_timeout(free, Duration::from_millis(50)).expect("streams lock").0;
            }
        };
        let r = f(i);
        self.free_streams.lock().expect("streams lock").push_back(i);
        self.stream_ready.notify_one();
        r
    }
}

impl Work for Engine<'_> {
    type Block = Prepared;
    fn read(&self) -> Result<Option<Prepared>> {
        match self.take_block() {
            Some(b) => self.read_block(b).map(Some),
            None => Ok(None),
        }
    }
    fn process(&self, mut p: Prepared) -> Result<()> {
        self.process_block(&mut p);
        let _g = self.gauges.sending();
        self.with_stream(|i| self.send_block(i, p))
    }
}

/// Starts an engine thread of role `role`; a panic in it fails the transfer with `E_PANIC`.
fn spawn_named<'s, 'e, F: FnOnce() + Send + 's>(s: &'s std::thread::Scope<'s, 'e>, name: String, role: &'static str, run: &'s Run, f: F) {
    let body = move || {
        if let Err(e) = panic::catch(role, || {
            f();
            Ok(())
        }) {
            run.fail(e);
        }
    };
    std::thread::Builder::new().name(name).spawn_scoped(s, body).expect("spawning an engine thread");
}

/// Opens the source file at `rel` (relative to the scan's base `base`) by its name in its
/// directory, which `dirs` holds open, walking no symlink: a file or directory swapped for a
/// symlink after the scan is a changed source, never followed outside it (a node serving a pull
/// would otherwise send whatever the link points to). O_NONBLOCK: a file swapped for a FIFO
/// must fail its read, not block the open until a writer comes.
fn open_source(base: BorrowedFd<'_>, dirs: &mut DirCache, rel: &[u8]) -> Result<File> {
    let (dir, name) = dirs.parent(base, rel, source_refused)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| source_refused(rel, e))?;
    Ok(File::from(fd))
}

/// `Engine::check_unchanged`, for the digest threads too.
fn check_unchanged(index: &Index, stamps: &[Stamp], file: &File, i: usize) -> Result<()> {
    let e = &index.entries()[i];
    let st = rustix::fs::fstat(file).map_err(|err| Error::io("stat", &e.path, err.into()))?;
    if stamps[i].unchanged(e, &st) {
        Ok(())
    } else {
        Err(Error::SourceChanged { path: lossy(&e.path), why: CHANGED_WHILE_READ })
    }
}

/// How the sender names a failed open of a source path.
fn source_refused(rel: &[u8], e: rustix::io::Errno) -> Error {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => Error::SourceChanged { path: lossy(rel), why: "deleted" },
        Errno::LOOP | Errno::NOTDIR => Error::SourceChanged { path: lossy(rel), why: "replaced by a symlink since the scan" },
        Errno::NXIO => Error::SourceChanged { path: lossy(rel), why: "no longer a regular file" },
        e => Error::io("open", rel, e.into()),
    }
}

/// How the sender names a failed read of a source file.
fn source_read_error(rel: &[u8], e: std::io::Error) -> Error {
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::UnexpectedEof, _) => Error::SourceChanged { path: lossy(rel), why: SHRANK },
        // A directory or a FIFO now where the scan found a regular file.
        (_, Some(libc::EISDIR | libc::ESPIPE)) => Error::SourceChanged { path: lossy(rel), why: "no longer a regular file" },
        _ => Error::io("read", rel, e),
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64, rel: &[u8]) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| source_read_error(rel, e))
}

/// Finds where the engine's threads go: the NUMA nodes of the NIC that reaches the peer and of
/// the disk holding the source.
fn choose_placement(opts: &SendOptions, peer: IpAddr, source: &Path) -> Result<Placement> {
    let allowed = allowed_cpus();
    match Topology::read(&opts.sysfs_root) {
        Ok(topo) => {
            let net_node = match peer {
                IpAddr::V4(v4) => topo.interface_for(v4).and_then(|i| topo.node_of_interface(&i)),
                IpAddr::V6(_) => None,
            };
            let disk_node = topo.node_of_path(source);
            Placement::choose(&topo, net_node, disk_node, opts.cores.as_ref(), &allowed, opts.pin)
        }
        Err(e) => Ok(Placement::unpinned(&allowed, format!("topology unreadable ({e}): threads are not pinned"))),
    }
}

/// Sends `source` (a file or a directory) to the node at `addr`, into `dest` under its root.
pub fn send(
    source: &Path,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SendSummary> {
    if opts.streams == 0 {
        return Err(Error::Usage("streams must be at least 1".into()));
    }
    if !crate::limits::BLOCK_SIZE.contains(opts.block_size as u64) {
        return Err(Error::Usage(format!("block size {} is outside 4 KiB..=64 MiB", opts.block_size)));
    }
    if !dest.is_empty() {
        crate::index::check_path(dest)?;
    }
    match send_once(source, addr, dest, opts, cancel, on_progress) {
        // A file changed while it was read is sent once more, from a fresh scan (a new session:
        // the node keeps the files the first one completed, which this one then skips); a
        // second change fails the transfer, naming the file.
        Err(Error::SourceChanged { why, .. }) if resendable(why) => send_once(source, addr, dest, opts, cancel, on_progress),
        r => r,
    }
}

/// One attempt of `send`: scan, session, blocks.
fn send_once(
    source: &Path,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SendSummary> {
    let started = Instant::now();
    let scanned = scan_within(source, opts.scan_threads, opts.confine.as_deref())?;
    let scan_seconds = started.elapsed().as_secs_f64();
    send_scanned(&scanned, addr, dest, opts, cancel, on_progress, started, scan_seconds)
}

/// `send` of a source already scanned: a node making a copy scans first, to reserve the
/// transfer's memory (its index and its pool) before it connects anywhere.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_scanned(
    scanned: &crate::scan::Scan,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
    started: Instant,
    scan_seconds: f64,
) -> Result<SendSummary> {
    if !dest.is_empty() {
        crate::index::check_path(dest)?;
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let index = &scanned.index;

    let (mut control, peer) = net::connect_to(addr, opts.connect_timeout, opts.tls.as_ref())?;
    control.set_read_timeout(Some(opts.io_timeout)).map_err(Error::net("setting a timeout"))?;
    let mut wanted = frame::FEATURES;
    if !opts.resume {
        wanted &= !frame::FEATURE_RESUME;
    }
    if opts.verify != Verify::Full {
        wanted &= !frame::FEATURE_VERIFY_FULL;
    }
    let crate::client::Hello { features, limits } = crate::client::handshake(&mut control, opts.secret.as_ref(), wanted)?;
    if opts.digest == Digest::Blake3 && features & frame::FEATURE_BLAKE3 == 0 {
        return Err(Error::Protocol("the node does not check BLAKE3 block digests".into()));
    }
    if opts.verify == Verify::Full && features & frame::FEATURE_VERIFY_FULL == 0 {
        return Err(Error::Protocol("the node does not verify whole files (verify: full)".into()));
    }
    if opts.block_size > limits.max_block {
        return Err(Error::Limit { what: "block size", limit: limits.max_block as u64, got: opts.block_size as u64 });
    }
    let encoded = index.encode();
    if encoded.len() as u64 > limits.max_manifest as u64 {
        return Err(Error::Limit { what: "content index size", limit: limits.max_manifest as u64, got: encoded.len() as u64 });
    }
    let streams = opts.streams.min(limits.max_streams).max(1);
    frame::write_msg(&mut control, &Msg::Manifest { dest: dest.to_vec(), streams, block_size: opts.block_size, index: encoded })?;
    let (token, streams) = match frame::expect_msg(&mut control, 0)? {
        Msg::Ready { token, streams } => (token, streams),
        Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
        m => return Err(Error::Protocol(format!("expected READY, got {:?}", m.frame_type()))),
    };
    let skip = if opts.resume && features & frame::FEATURE_RESUME != 0 {
        frame::expect_plan(&mut control, index.total().div_ceil(opts.block_size as u64))?
    } else {
        Vec::new()
    };

    let mut sockets = Vec::with_capacity(streams as usize);
    for i in 0..streams {
        let mut s = net::connect(addr, opts.connect_timeout, opts.tls.as_ref())?;
        s.set_write_timeout(Some(opts.io_timeout)).map_err(Error::net("setting a timeout"))?;
        frame::write_msg(&mut s, &Msg::DataHello { token, stream: i })?;
        sockets.push(s);
    }
    transmit(scanned, control, peer, sockets, opts, Throttle::default(), &skip, cancel, on_progress, started, scan_seconds)
}

/// The sender's pool for `total` bytes over `streams` streams: (bytes per buffer, buffers).
/// A buffer holds one block, or the whole data when that is less; there are never more
/// buffers than blocks (a 5-byte file gets one page). `transmit` allocates exactly this, and a
/// node reserves it from its memory budget first.
pub(crate) fn pool_shape(opts: &SendOptions, streams: u16, total: u64) -> (usize, usize) {
    let (readers, processors, workers) = thread_counts(opts, streams);
    let wanted = if opts.pool_buffers == 0 { (2 * streams as usize + readers + processors).max(workers + 4) } else { opts.pool_buffers };
    let bs = opts.block_size as u64;
    let blocks = total.div_ceil(bs).max(1);
    let page = rustix::param::page_size() as u64;
    let buf = bs.min(total.max(1)).div_ceil(page) * page;
    (buf as usize, wanted.min(usize::try_from(blocks).unwrap_or(usize::MAX)))
}

/// Readers, processors and adaptive workers, as `opts` asks or as picked for `streams`.
fn thread_counts(opts: &SendOptions, streams: u16) -> (usize, usize, usize) {
    let readers = if opts.readers == 0 { (streams as usize).clamp(2, 4) } else { opts.readers };
    let processors = match (opts.processors, opts.digest) {
        (0, Digest::None) => 1,
        (0, Digest::Blake3) => cpus(),
        (n, _) => n,
    };
    let workers = if opts.workers == 0 { cpus() + 2 } else { opts.workers };
    (readers, processors, workers)
}

/// Sends the blocks of a scanned source over data connections already attached to a session
/// (`sockets`, one per stream), then DONE on `control`, and waits for the receiver's SUMMARY.
/// A client pushing to a node and a node answering a pull both end up here. Blocks in the
/// `[first, end)` ranges of `skip` (the node's PLAN) are not sent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transmit(
    scanned: &crate::scan::Scan,
    control: TcpStream,
    peer: IpAddr,
    sockets: Vec<TcpStream>,
    opts: &SendOptions,
    throttle: Throttle,
    skip: &[(u64, u64)],
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
    started: Instant,
    scan_seconds: f64,
) -> Result<SendSummary> {
    let index = &scanned.index;
    let source = &scanned.base;
    let streams = sockets.len() as u16;
    // From here the receiver may take as long as it needs to write and answer with SUMMARY.
    control.set_read_timeout(None).map_err(Error::net("setting a timeout"))?;
    let placement = choose_placement(opts, peer, source)?;

    let (readers, processors, workers) = thread_counts(opts, streams);
    let (buf_size, pool_buffers) = pool_shape(opts, streams, index.total());
    let pool = Pool::new_near(buf_size, pool_buffers, placement.cpu_for(Role::Disk, 0))?;
    let sendfile = probe::sendfile();
    let fast_paths = FastPaths {
        sendfile: sendfile.is_ok() && opts.digest == Digest::None,
        sendfile_fallback: match (sendfile, opts.digest) {
            (Err(e), _) => Some(e),
            (Ok(()), Digest::Blake3) => Some("a BLAKE3 digest needs every block in a buffer".into()),
            (Ok(()), Digest::None) => None,
        },
        mlock: pool.locked(),
        mlock_fallback: pool.lock_fallback().map(str::to_owned),
    };

    let run = Run {
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        sockets: sockets.iter().map(|s| s.try_clone()).collect::<std::io::Result<_>>().map_err(Error::net("cloning a socket"))?,
        control: control.try_clone().map_err(Error::net("cloning a socket"))?,
        control_write: Mutex::new(()),
    };
    let bs = opts.block_size as u64;
    let nblocks = index.total().div_ceil(bs);
    let block_done: Vec<AtomicBool> = (0..nblocks).map(|_| AtomicBool::new(false)).collect();
    for &(first, end) in skip {
        for b in first..end.min(nblocks) {
            block_done[b as usize].store(true, Ordering::Relaxed);
        }
    }
    let order: Vec<u64> = (0..nblocks).filter(|&b| !block_done[b as usize].load(Ordering::Relaxed)).collect();
    let resumed_blocks = nblocks - order.len() as u64;
    let resumed_bytes = index.total() - order.iter().map(|&b| bs.min(index.total() - b * bs)).sum::<u64>();
    let engine = Engine {
        index,
        stamps: &scanned.stamps,
        base: scanned.base_fd.as_fd(),
        dirs: Mutex::new(Vec::new()),
        pool,
        bs,
        nblocks: order.len() as u64,
        order,
        next: AtomicU64::new(0),
        limit: AtomicU64::new(0),
        sendfile: fast_paths.sendfile,
        digest: opts.digest,
        counters: Counters::default(),
        run: &run,
        gauges: Gauges::default(),
        per_stream: (0..streams).map(|_| AtomicU64::new(0)).collect(),
        stream_blocks: (0..streams).map(|_| AtomicU64::new(0)).collect(),
        block_done,
        sockets: &sockets,
        free_streams: Mutex::new((0..streams as usize).collect()),
        stream_ready: Condvar::new(),
        placement,
        pinned: Mutex::new(Vec::new()),
        throttle,
        in_flight: Mutex::new(VecDeque::new()),
    };
    let data_ends: Vec<u64> = index.data_file_ends().collect();
    let files_total = index.count(Kind::File) as u64;
    let transfer_started = Instant::now();
    let mut recorder = Recorder::new(opts.timeline_interval);

    let (reply, report) = std::thread::scope(|s| {
        let engine = &engine;
        let driver = std::thread::Builder::new()
            .name("lh-drive".into())
            .spawn_scoped(s, move || {
                panic::catch("driver", || Ok(drive(engine, opts.scheduler, readers, processors, workers))).unwrap_or_else(|e| {
                    engine.run.fail(e);
                    None
                })
            })
            .expect("spawning the driver");
        let digester = (opts.verify == Verify::Full).then(|| {
            std::thread::Builder::new()
                .name("lh-digest".into())
                .spawn_scoped(s, || panic::catch("digester", || file_digests(index, &scanned.stamps, engine.base, &run)))
                .expect("spawning the digester")
        });
        // The node reports errors (a full disk, a bad block) on the control connection while
        // blocks are still flowing; a watcher stops the transfer at once when one arrives.
        let (reply_tx, reply_rx) = bounded::<Result<Msg>>(1);
        let run_ref = &run;
        s.spawn(move || {
            let watched = panic::catch("control watcher", || {
                let mut ctl = &run_ref.control;
                let msg = frame::expect_msg(&mut ctl, 0);
                if let Ok(Msg::Error { code, message }) = &msg {
                    run_ref.explain(Error::remote(code, message));
                }
                let _ = reply_tx.send(msg);
                Ok(())
            });
            if let Err(e) = watched {
                run_ref.fail(e);
            }
        });

        let mut watermark = 0u64;
        let progress = |watermark: &mut u64| {
            while *watermark < nblocks && engine.block_done[*watermark as usize].load(Ordering::Relaxed) {
                *watermark += 1;
            }
            let done_offset = (*watermark * bs).min(index.total());
            let per: Vec<u64> = engine.per_stream.iter().map(|a| a.load(Ordering::Relaxed)).collect();
            Progress {
                bytes_done: resumed_bytes + per.iter().sum::<u64>(),
                bytes_total: index.total(),
                files_done: data_ends.partition_point(|&e| e <= done_offset) as u64,
                files_total,
                seconds: transfer_started.elapsed().as_secs_f64(),
                per_stream_bytes: per,
            }
        };
        let mut last_progress = Instant::now();
        let tick = opts.timeline_interval.min(opts.progress_interval).max(Duration::from_millis(1));
        let mut last_recheck = Instant::now();
        let recheck = |last: &mut Instant| {
            if last.elapsed() >= RECHECK_EVERY {
                *last = Instant::now();
                if let Err(e) = engine.recheck_in_flight() {
                    run.fail(e);
                }
            }
        };
        while !driver.is_finished() {
            if cancel.load(Ordering::Relaxed) {
                run.fail(Error::Cancelled);
            }
            std::thread::sleep(tick);
            recorder.tick(&engine.gauges);
            recheck(&mut last_recheck);
            if !run.stopped() && last_progress.elapsed() >= opts.progress_interval {
                last_progress = Instant::now();
                on_progress(&progress(&mut watermark));
            }
        }
        let report = driver.join().unwrap_or_else(|p| {
            run.fail(panic::from_payload("driver", p));
            None
        });
        if let Some(d) = digester {
            match d.join() {
                Ok(Ok(digests)) if !run.stopped() => {
                    for chunk in digests.chunks(frame::MAX_DIGESTS_PER_FRAME) {
                        if let Err(e) = run.write_control(&Msg::FileDigests { digests: chunk.to_vec() }) {
                            run.fail(e);
                            break;
                        }
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => run.fail(e),
                Err(p) => run.fail(panic::from_payload("digester", p)),
            }
        }
        if !run.stopped() {
            let sent: u64 = engine.per_stream.iter().map(|a| a.load(Ordering::Relaxed)).sum();
            if let Err(e) = run.write_control(&Msg::Done { blocks: engine.nblocks, bytes: sent }) {
                run.fail(e);
            }
        }
        // Wait for the node's verdict, still honouring cancellation.
        let done_at = Instant::now();
        let reply = loop {
            match reply_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(m) => break Some(m),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break None,
                Err(_) if cancel.load(Ordering::Relaxed) => {
                    run.fail(Error::Cancelled);
                    let _ = run.control.shutdown(Shutdown::Both);
                }
                Err(_) if opts.summary_timeout.is_some_and(|t| done_at.elapsed() > t) => {
                    run.fail(Error::Timeout("the receiver did not answer DONE within the idle timeout"));
                    let _ = run.control.shutdown(Shutdown::Both);
                }
                Err(_) if run.stopped() => {
                    // Give the node a moment to explain a broken stream (no longer than the
                    // I/O timeout: a node that stopped answering will not explain), then stop.
                    if let Ok(m) = reply_rx.recv_timeout(opts.io_timeout.min(Duration::from_secs(2))) {
                        break Some(m);
                    }
                    let _ = run.control.shutdown(Shutdown::Both);
                    break None;
                }
                // The receiver may still be reading the last blocks.
                Err(_) => recheck(&mut last_recheck),
            }
        };
        (reply, report)
    });
    let _ = control.shutdown(Shutdown::Both);

    // A block the receiver found damaged may have been read from a file changed since the scan.
    if run.failure.lock().expect("failure lock").as_ref().is_some_and(is_checksum) {
        if let Some(e) = engine.changed_source() {
            run.fail(e);
        }
    }
    let remote = match reply {
        Some(Ok(Msg::Summary(s))) if !run.stopped() => Some(s),
        Some(Ok(Msg::Error { code, message })) => {
            run.explain(Error::remote(&code, &message));
            None
        }
        Some(Ok(m)) if !run.stopped() => {
            run.fail(Error::Protocol(format!("expected SUMMARY, got {:?}", m.frame_type())));
            None
        }
        Some(Err(e)) if !run.stopped() => {
            run.fail(e);
            None
        }
        _ => None,
    };
    if let Some(e) = run.failure.lock().expect("failure lock").take() {
        return Err(e);
    }
    let receiver = remote.ok_or_else(|| Error::Protocol("the node closed the session without a summary".into()))?;
    let scheduler = report.ok_or_else(|| Error::Protocol("the transfer ended without a scheduler report".into()))?;
    let per_stream_bytes: Vec<u64> = engine.per_stream.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    on_progress(&Progress {
        bytes_done: index.total(),
        bytes_total: index.total(),
        files_done: files_total,
        files_total,
        seconds: transfer_started.elapsed().as_secs_f64(),
        per_stream_bytes: per_stream_bytes.clone(),
    });
    let timeline = recorder.finish(&engine.gauges);
    Ok(SendSummary {
        bytes: index.total(),
        files: files_total,
        dirs: index.count(Kind::Dir) as u64,
        symlinks: index.count(Kind::Symlink) as u64,
        blocks: nblocks,
        seconds: started.elapsed().as_secs_f64(),
        scan_seconds,
        streams,
        per_stream_bytes,
        sendfile_blocks: engine.counters.sendfile_blocks.load(Ordering::Relaxed),
        sendfile_bytes: engine.counters.sendfile_bytes.load(Ordering::Relaxed),
        packed_blocks: engine.counters.packed_blocks.load(Ordering::Relaxed),
        packed_bytes: engine.counters.packed_bytes.load(Ordering::Relaxed),
        fast_paths,
        skipped: scanned.skipped.clone(),
        receiver,
        scheduler,
        pinned: engine.pinned.into_inner().expect("pinned lock"),
        placement: engine.placement,
        timeline,
        digest: opts.digest,
        resumed_blocks,
        resumed_bytes,
        verify: opts.verify,
    })
}

/// A file entry's number and its BLAKE3.
type FileDigest = (u32, [u8; 32]);

/// `verify: full`: the BLAKE3 of every regular file of the index, read from the source while
/// the blocks flow (one thread per CPU, up to 4, taking files in turn). A file shorter than it
/// was at the scan, or changed since (`check_unchanged`), is a changed source rather than a
/// digest mismatch at the receiver.
fn file_digests(index: &Index, stamps: &[Stamp], base: BorrowedFd<'_>, run: &Run) -> Result<Vec<FileDigest>> {
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
                            if run.stopped() {
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

/// Runs the blocks through the chosen scheduler (for `auto`: a probe of each first), then ends
/// every stream. `None` if the transfer failed.
fn drive(e: &Engine<'_>, kind: SchedulerKind, readers: usize, processors: usize, workers: usize) -> Option<SchedulerReport> {
    let run_phase = |k: SchedulerKind| match k {
        SchedulerKind::Adaptive => e.run_adaptive(workers),
        _ => e.run_pipelined(readers, processors),
    };
    let report = match kind {
        SchedulerKind::Pipelined | SchedulerKind::Adaptive => {
            e.limit.store(e.nblocks, Ordering::Relaxed);
            run_phase(kind);
            SchedulerReport { requested: kind.name(), used: kind.name(), reason: format!("{} as asked", kind.name()), probe: vec![] }
        }
        SchedulerKind::Auto => {
            // Below 16 windows' worth the probe (a phase boundary and the loser's window)
            // would cost more than a wrong choice.
            let window = probe_window(e.nblocks, e.bs);
            if e.nblocks < 16 * window {
                e.limit.store(e.nblocks, Ordering::Relaxed);
                run_phase(SchedulerKind::Pipelined);
                SchedulerReport {
                    requested: "auto",
                    used: "pipelined",
                    reason: format!("{} blocks are too few to probe both schedulers; pipelined", e.nblocks),
                    probe: vec![],
                }
            } else {
                // Adaptive first, then pipelined. The second probe is not drained: if it wins,
                // its limit is raised while it runs, so auto pays one phase boundary, not two.
                let (a, _) = probe_phase(e, window, 0, || run_phase(SchedulerKind::Adaptive), |_| false);
                // Leaving the running pipelined probe costs a phase boundary: adaptive must be
                // clearly faster (5%, about the probe's own noise here) to be worth it.
                let keep_pipelined = |p: f64| p * 1.05 >= a;
                let (p, extended) = probe_phase(e, window, window, || run_phase(SchedulerKind::Pipelined), keep_pipelined);
                let used = if keep_pipelined(p) { SchedulerKind::Pipelined } else { SchedulerKind::Adaptive };
                if !extended || e.next.load(Ordering::Relaxed) < e.nblocks {
                    // Either the winner is the first probe, or the second ended before its limit
                    // was raised: run the winner over what is left.
                    e.limit.store(e.nblocks, Ordering::Relaxed);
                    run_phase(used);
                }
                SchedulerReport {
                    requested: "auto",
                    used: used.name(),
                    reason: format!(
                        "probe of {window} blocks each: adaptive {:.0} MiB/s, pipelined {:.0} MiB/s; {} for the rest",
                        a / 1048576.0,
                        p / 1048576.0,
                        used.name()
                    ),
                    probe: vec![("adaptive", a), ("pipelined", p)],
                }
            }
        }
    };
    if e.run.stopped() {
        return None;
    }
    if e.next.load(Ordering::Relaxed) < e.nblocks {
        e.run.fail(Error::Protocol("the scheduler stopped before the last block".into()));
        return None;
    }
    for (i, sock) in e.sockets.iter().enumerate() {
        let end = Msg::StreamEnd { blocks: e.stream_blocks[i].load(Ordering::Relaxed), bytes: e.per_stream[i].load(Ordering::Relaxed) };
        if let Err(err) = frame::write_msg(&mut &*sock, &end) {
            e.run.fail(err);
            return None;
        }
    }
    Some(report)
}

/// Blocks in each of `auto`'s probe windows: a twentieth of the transfer, at least 8 blocks
/// (enough to measure past thread start-up) and at most 32 blocks or 128 MiB, whichever is
/// more. (A cap of 32 blocks alone was 128 MiB with 4 MiB blocks but 32 MiB with 1 MiB ones: a
/// window too short to time two schedulers apart.)
fn probe_window(nblocks: u64, block_size: u64) -> u64 {
    let most = (PROBE_WINDOW_BYTES / block_size.max(1)).max(32);
    (nblocks / 20).clamp(8, most)
}

const PROBE_WINDOW_BYTES: u64 = 128 << 20;

/// Runs one probe window of `window` blocks on a scheduler (started by `run`) and measures its
/// rate as the window's bytes over the time until all of them were sent. The scheduler may take
/// `extra` blocks past the window meanwhile, so it is still running at full pace when the
/// decision comes: if `keep(rate)` says so, the limit is raised to the end and it carries on.
/// (Timing until blocks are merely taken would flatter the pipelined scheduler, whose queues
/// take a whole window before any of it is sent.) Returns the rate and whether the limit was
/// raised.
fn probe_phase(e: &Engine<'_>, window: u64, extra: u64, run: impl FnOnce() + Send, keep: impl FnOnce(f64) -> bool) -> (f64, bool) {
    let from = e.next.load(Ordering::Relaxed);
    let upto = (from + window).min(e.nblocks);
    e.limit.store((upto + extra).min(e.nblocks), Ordering::Relaxed);
    let bytes = e.bytes_of_blocks(from, upto) as f64;
    let sent = |i: u64| e.block_done[e.order[i as usize] as usize].load(Ordering::Relaxed);
    std::thread::scope(|s| {
        let t = Instant::now();
        let h = s.spawn(move || {
            if let Err(err) = panic::catch("driver", || {
                run();
                Ok(())
            }) {
                e.run.fail(err);
            }
        });
        let mut first_unsent = from;
        while !h.is_finished() && !e.run.stopped() {
            while first_unsent < upto && sent(first_unsent) {
                first_unsent += 1;
            }
            if first_unsent == upto {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let rate = bytes / t.elapsed().as_secs_f64().max(1e-9);
        let extended = keep(rate);
        if extended {
            e.limit.store(e.nblocks, Ordering::Relaxed);
        }
        let _ = h.join();
        (rate, extended)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use std::fs;

    fn read_all(f: &File, n: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; n];
        read_exact_at(f, &mut buf, 0, b"x")?;
        Ok(buf)
    }

    #[test]
    fn a_source_file_is_opened_in_its_held_directory_and_a_swap_after_the_scan_is_a_changed_source() {
        let base = Scratch::new("sender-open-source");
        fs::create_dir_all(base.join("src/a")).unwrap();
        fs::create_dir_all(base.join("elsewhere")).unwrap();
        for f in ["one", "two", "three", "four"] {
            fs::write(base.join("src/a").join(f), f).unwrap();
        }
        fs::write(base.join("elsewhere/three"), "outside").unwrap();
        let fd = crate::scan::scan(&base.join("src"), 1).unwrap().base_fd;
        let mut dirs = DirCache::default();
        let code = |r: Result<File>| r.map(|_| ()).unwrap_err().code().to_owned();

        assert_eq!(read_all(&open_source(fd.as_fd(), &mut dirs, b"src/a/one").unwrap(), 3).unwrap(), b"one");
        let held = dirs.held();
        assert_eq!(read_all(&open_source(fd.as_fd(), &mut dirs, b"src/a/two").unwrap(), 3).unwrap(), b"two");
        assert_eq!(dirs.held(), held, "the directory is opened once for its files");

        // A file swapped for a symlink: refused, not followed.
        fs::remove_file(base.join("src/a/two")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere/three"), base.join("src/a/two")).unwrap();
        assert_eq!(code(open_source(fd.as_fd(), &mut dirs, b"src/a/two")), "E_SOURCE_CHANGED");
        // Deleted.
        fs::remove_file(base.join("src/a/one")).unwrap();
        let e = open_source(fd.as_fd(), &mut dirs, b"src/a/one").unwrap_err();
        assert_eq!((e.code(), e.to_string().contains("deleted")), ("E_SOURCE_CHANGED", true), "{e}");
        // A FIFO: the open returns at once (no writer needed) and the read fails.
        rustix::fs::mknodat(rustix::fs::CWD, base.join("src/a/fifo").as_path(), rustix::fs::FileType::Fifo, Mode::RUSR | Mode::WUSR, 0)
            .unwrap();
        let f = open_source(fd.as_fd(), &mut dirs, b"src/a/fifo").unwrap();
        assert_eq!(read_all(&f, 1).unwrap_err().code(), "E_SOURCE_CHANGED");
        // The directory swapped for a symlink to one holding a file of the same name: opened
        // afresh (another directory came between), it is refused.
        fs::write(base.join("src/top"), "top").unwrap();
        open_source(fd.as_fd(), &mut dirs, b"src/top").unwrap();
        fs::rename(base.join("src/a"), base.join("a.old")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("src/a")).unwrap();
        assert_eq!(code(open_source(fd.as_fd(), &mut dirs, b"src/a/three")), "E_SOURCE_CHANGED");
        // A directory now where the scan found a file: its read fails the same way.
        let dir = File::open(base.join("a.old")).unwrap();
        assert_eq!(read_all(&dir, 1).unwrap_err().code(), "E_SOURCE_CHANGED");
    }

    /// issue 29: a sender's pool is sized to its data: a 5-byte file asking 64 streams of 4 MiB
    /// gets one page, a large one the buffers asked for, never more buffers than blocks.
    #[test]
    fn the_pool_is_sized_to_the_data_it_sends() {
        let page = rustix::param::page_size();
        let opts = SendOptions { streams: 64, block_size: 4 << 20, pool_buffers: 16, ..SendOptions::default() };
        assert_eq!(pool_shape(&opts, 64, 5), (page, 1));
        assert_eq!(pool_shape(&opts, 64, 0), (page, 1));
        assert_eq!(pool_shape(&opts, 64, (4 << 20) * 3 + 1), (4 << 20, 4));
        assert_eq!(pool_shape(&opts, 64, 1 << 40), (4 << 20, 16));
        let picked = SendOptions { pool_buffers: 0, readers: 4, processors: 1, workers: 2, ..opts };
        assert_eq!(pool_shape(&picked, 2, 1 << 40), (4 << 20, 9));
    }

    #[test]
    fn probe_windows_are_a_twentieth_within_8_blocks_and_128_mib() {
        const MIB: u64 = 1 << 20;
        // 4 GiB: 128 MiB windows whatever the block size (32 blocks of 4 MiB, 128 of 1 MiB).
        assert_eq!(probe_window(1024, 4 * MIB), 32);
        assert_eq!(probe_window(4096, MIB), 128);
        // 1 GiB of 1 MiB blocks: a twentieth.
        assert_eq!(probe_window(1024, MIB), 51);
        // Small blocks: a twentieth, up to 128 MiB of them.
        assert_eq!(probe_window(400, 4096), 20);
        assert_eq!(probe_window(1 << 20, 4096), 32768);
        // Few blocks: never under 8.
        assert_eq!(probe_window(100, MIB), 8);
        // Blocks above 4 MiB: 32 of them.
        assert_eq!(probe_window(10_000, 16 * MIB), 32);
    }
}
