//! The block work of one send, whichever scheduler runs it: READ a block (a block inside one
//! file is hashed through a small scratch buffer and later sent with sendfile; a block of
//! several files is packed into a pooled buffer with one pread per piece), PROCESS it (XXH3 of
//! a packed block, and BLAKE3 when asked), SEND it on a data stream; and the checks that a
//! file read since the scan is still what the scan found, also for blocks still in flight.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::net::TcpStream;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{lossy, Error, Result};
use crate::hash::{xxh3, Xxh3};
use crate::panic;
use crate::place::placement::{bind_current_thread, Placement, Role};
use crate::pool::{Pool, PoolBuf};
use crate::rate::Throttle;
use crate::sched::adaptive::{self, Scheduler, Work};
use crate::sched::timeline::Gauges;
use crate::sys::beneath::DirCache;
use crate::sys::net;
use crate::sys::sendfile::sendfile_all;
use crate::sys::source::{open_source, read_exact_at, CHANGED_WHILE_READ, SHRANK};
use crate::vfile::index::Index;
use crate::vfile::scan::Stamp;
use crate::wire::frame::{self, Msg};

use super::options::{cpus, Digest, SchedulerKind};
use super::run::Run;
use super::summary::{SchedulerReport, ThreadPin};

/// Reads through the sendfile path's checksum go through this much scratch per reader: small
/// enough to stay in L2 while it is hashed.
const HASH_CHUNK: usize = 256 << 10;

/// A block ready to send. A sendfile block's `entry` is the index entry of the one file it lies in.
pub(super) enum Prepared {
    Sendfile { file: File, entry: usize, file_offset: u64, offset: u64, len: u32, hash: u64 },
    Packed { buf: PoolBuf, offset: u64, hash: u64, blake3: Option<[u8; 32]> },
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) sendfile_blocks: AtomicU64,
    pub(super) sendfile_bytes: AtomicU64,
    pub(super) packed_blocks: AtomicU64,
    pub(super) packed_bytes: AtomicU64,
}

/// The block work of one transfer, shared by whichever scheduler runs it.
pub(super) struct Engine<'a> {
    pub(super) index: &'a Index,
    /// The scan's inode and ctime of each entry (`Stamp`), to check a file after reading it.
    pub(super) stamps: &'a [Stamp],
    /// The scan's base directory, held open: every source file is opened beneath it.
    pub(super) base: BorrowedFd<'a>,
    /// Open directories the readers reuse, one taken per block (see `open_source`).
    pub(super) dirs: Mutex<Vec<DirCache>>,
    pub(super) pool: Arc<Pool>,
    pub(super) bs: u64,
    /// Blocks to send (those not in the node's PLAN), in order; the schedulers number them
    /// 0..nblocks and `order` maps that number to the block.
    pub(super) nblocks: u64,
    pub(super) order: Vec<u64>,
    pub(super) next: AtomicU64,
    /// Blocks below this number may be taken; `auto` raises it phase by phase.
    pub(super) limit: AtomicU64,
    pub(super) sendfile: bool,
    pub(super) digest: Digest,
    pub(super) counters: Counters,
    pub(super) run: &'a Run,
    pub(super) gauges: Gauges,
    pub(super) per_stream: Vec<AtomicU64>,
    pub(super) stream_blocks: Vec<AtomicU64>,
    pub(super) block_done: Vec<AtomicBool>,
    pub(super) sockets: &'a [TcpStream],
    /// Streams free for the next send, taken in turn (see `with_stream`).
    pub(super) free_streams: Mutex<VecDeque<usize>>,
    pub(super) stream_ready: Condvar,
    pub(super) placement: Placement,
    pub(super) pinned: Mutex<Vec<ThreadPin>>,
    /// Bandwidth limits a node applies to what it sends (pull); none for a client.
    pub(super) throttle: Throttle,
    /// The files of the last sendfile blocks sent (`IN_FLIGHT_PER_STREAM` per stream, one
    /// descriptor per file).
    /// sendfile returns once it has queued references to the page cache, and the receiver gets
    /// what the pages hold when it reads them: a file changed after the check that follows
    /// the send still arrives changed, under the old checksum. The main thread checks these
    /// again (`recheck_in_flight`) while the receiver may still be reading them, so it can
    /// explain the bad block it reports.
    pub(super) in_flight: Mutex<VecDeque<(usize, File)>>,
}

/// Files per stream whose pages may still wait in the socket's queue after sendfile returned
/// (a loopback or autotuned send buffer holds a few MiB: a few 1 MiB blocks); few, as each
/// holds a descriptor.
const IN_FLIGHT_PER_STREAM: usize = 4;
/// How often the main thread checks the files of the blocks in flight: well within the 1 s a
/// receiver waits for the sender to explain a bad block.
pub(super) const RECHECK_EVERY: Duration = Duration::from_millis(50);

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
    pub(super) fn recheck_in_flight(&self) -> Result<()> {
        let q = self.in_flight.lock().expect("in-flight lock");
        q.iter().try_for_each(|(entry, file)| self.check_unchanged(file, *entry))
    }

    /// After the receiver failed a block's checksum: the first file of the blocks taken so far
    /// that is no longer what the scan found, as the changed source it is (a sendfile block
    /// whose file changed after the check that follows its send, or whose check never ran).
    pub(super) fn changed_source(&self) -> Option<Error> {
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
                sendfile_all(sock, file, *file_offset, *len as usize).map_err(|e| match e.kind() {
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

/// `Engine::check_unchanged`, for the digest threads too.
pub(super) fn check_unchanged(index: &Index, stamps: &[Stamp], file: &File, i: usize) -> Result<()> {
    let e = &index.entries()[i];
    let st = rustix::fs::fstat(file).map_err(|err| Error::io("stat", &e.path, err.into()))?;
    if stamps[i].unchanged(e, &st) {
        Ok(())
    } else {
        Err(Error::SourceChanged { path: lossy(&e.path), why: CHANGED_WHILE_READ })
    }
}

/// Runs the blocks through the chosen scheduler (for `auto`: a probe of each first), then ends
/// every stream. `None` if the transfer failed.
pub(super) fn drive(e: &Engine<'_>, kind: SchedulerKind, readers: usize, processors: usize, workers: usize) -> Option<SchedulerReport> {
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
pub(super) fn probe_window(nblocks: u64, block_size: u64) -> u64 {
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
