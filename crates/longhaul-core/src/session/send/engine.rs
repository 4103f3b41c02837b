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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{lossy, Error, Result};
use crate::hash::{xxh3, Xxh3};
use crate::place::placement::{bind_current_thread, Placement, Role};
use crate::pool::{Pool, PoolBuf};
use crate::rate::Throttle;
use crate::sched::timeline::{Busy, Gauges, Wait};
use crate::sched::{Feed, Work};
use crate::sys::beneath::DirCache;
use crate::sys::net;
use crate::sys::sendfile::sendfile_all;
use crate::sys::source::{open_source, read_exact_at, CHANGED_WHILE_READ, SHRANK};
use crate::util::CHUNK;
use crate::vfile::held::needed_runs;
use crate::vfile::index::Index;
use crate::vfile::scan::Stamp;
use crate::wire::frame::{self, Msg};

use super::endgame::{Resend, Tail};
use super::options::Digest;
use super::run::Run;
use super::summary::ThreadPin;
use super::tune::Slots;

/// A block ready to send. A sendfile block's `entry` is the index entry of the one file it lies in.
pub(super) enum Prepared {
    Sendfile {
        file: File,
        entry: usize,
        file_offset: u64,
        offset: u64,
        len: u32,
        hash: u64,
    },
    Packed {
        buf: PoolBuf,
        offset: u64,
        hash: u64,
        blake3: Option<[u8; 32]>,
    },
    /// The parts of a block the node holds in part (FEATURE_PIECES): `buf` holds the runs'
    /// bytes one after the other, each sent as a PIECE with its own checksums.
    Pieces {
        buf: PoolBuf,
        runs: Vec<PieceHeader>,
    },
    /// A bench block: the first `len` bytes of the engine's pattern (`generated`).
    Generated {
        offset: u64,
        len: u32,
        hash: u64,
        blake3: Option<[u8; 32]>,
    },
}

/// One run of a `Prepared::Pieces`: where it lies in the stream, and its checksums once
/// processed.
pub(super) struct PieceHeader {
    offset: u64,
    len: u32,
    hash: u64,
    blake3: Option<[u8; 32]>,
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
    /// Blocks to send (those not in the node's PLAN), handed to the scheduler in order, and
    /// which blocks are done.
    pub(super) feed: Feed,
    /// With pieces: by entry, the files the node holds whole (HELD); a block holding some of
    /// them goes as the pieces the node lacks.
    pub(super) held: Option<&'a [bool]>,
    pub(super) sendfile: bool,
    pub(super) digest: Digest,
    pub(super) counters: Counters,
    pub(super) run: &'a Run,
    pub(super) gauges: Gauges,
    pub(super) per_stream: Vec<AtomicU64>,
    pub(super) stream_blocks: Vec<AtomicU64>,
    /// When the first block (or piece) was handed to a data socket: the summary's
    /// `first_byte_seconds`, which shows how long the scan and the session's start kept data
    /// from moving (issue 33).
    pub(super) first_byte: OnceLock<Instant>,
    pub(super) sockets: &'a Slots,
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
    /// A bench's data, made once (`generated::PIECE` bytes): every block is this, repeated,
    /// sent from here and hashed like a block read from a file (no disk read, no copy into a
    /// pool buffer).
    pub(super) generated: Option<Vec<u8>>,
    /// A bench's `--verify none`: generated blocks go out as BLOCK_RAW, hashed by nobody.
    pub(super) unchecked: bool,
    /// Each stream's blocks until acknowledged, and the end-game's re-sends (endgame.rs).
    pub(super) tail: Tail,
}

/// Files per stream whose pages may still wait in the socket's queue after sendfile returned
/// (a loopback or autotuned send buffer holds a few MiB: a few 1 MiB blocks); few, as each
/// holds a descriptor.
const IN_FLIGHT_PER_STREAM: usize = 4;
/// How often the main thread checks the files of the blocks in flight: well within the 1 s a
/// receiver waits for the sender to explain a bad block.
pub(super) const RECHECK_EVERY: Duration = Duration::from_millis(50);

/// The longest a send waits for room in its socket before writing anyway (see `wait_for_room`):
/// a second is far longer than a healthy socket's buffer takes to drain on any link (so the wait
/// is counted where it belongs), and short against the I/O timeout (60 s by default), which the
/// blocking write then enforces as before. One poll per block (1 MiB by default) is the cost.
const SOCKET_WAIT: Duration = Duration::from_secs(1);

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Engine<'_> {
    /// READ: brings block `b` in, either as a sendfile descriptor (hashed on the way) or as a
    /// pooled buffer.
    fn read_block(&self, b: u64) -> Result<Prepared> {
        let mut dirs = self.dirs.lock().expect("dirs lock").pop().unwrap_or_default();
        let r = self.read_block_with(b, &mut dirs);
        self.dirs.lock().expect("dirs lock").push(dirs);
        r
    }

    fn read_block_with(&self, b: u64, dirs: &mut DirCache) -> Result<Prepared> {
        let plan = self.feed.plan();
        let (offset, len) = (plan.offset(b), plan.len(b));
        if self.generated.is_some() {
            self.counters.packed_blocks.fetch_add(1, Ordering::Relaxed);
            self.counters.packed_bytes.fetch_add(len, Ordering::Relaxed);
            return Ok(Prepared::Generated { offset, len: len as u32, hash: 0, blake3: None });
        }
        if let Some(held) = self.held {
            let runs = needed_runs(self.index, plan, held, b);
            if runs.iter().map(|r| r.1).sum::<u64>() != len {
                return self.read_pieces(runs, dirs);
            }
        }
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
                scratch.resize(CHUNK, 0);
                let mut h = Xxh3::new();
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
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
        let mut buf = match self.pool.try_take() {
            Some(b) => b,
            None => {
                let _w = self.gauges.instead(Busy::Reading, Wait::Pool);
                self.pool.take(&self.run.stop)?
            }
        };
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

    /// READ of a block the node holds in part: only `runs` (the bytes of the files it lacks),
    /// packed one after the other into a pooled buffer.
    fn read_pieces(&self, runs: Vec<(u64, u64)>, dirs: &mut DirCache) -> Result<Prepared> {
        let mut buf = match self.pool.try_take() {
            Some(b) => b,
            None => {
                let _w = self.gauges.instead(Busy::Reading, Wait::Pool);
                self.pool.take(&self.run.stop)?
            }
        };
        let total: u64 = runs.iter().map(|r| r.1).sum();
        buf.set_len(total as usize);
        let mut at = 0;
        for &(offset, len) in &runs {
            for p in self.index.pieces(offset, len) {
                let rel = &self.index.entries()[p.entry].path;
                let file = open_source(self.base, dirs, rel)?;
                let k = at + p.range_offset as usize;
                read_exact_at(&file, &mut buf[k..k + p.len as usize], p.file_offset, rel)?;
                self.check_unchanged(&file, p.entry)?;
            }
            at += len as usize;
        }
        self.counters.packed_blocks.fetch_add(1, Ordering::Relaxed);
        self.counters.packed_bytes.fetch_add(total, Ordering::Relaxed);
        let runs = runs.into_iter().map(|(offset, len)| PieceHeader { offset, len: len as u32, hash: 0, blake3: None }).collect();
        Ok(Prepared::Pieces { buf, runs })
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
        // A bench has no source files: its blocks never change.
        self.generated.as_ref()?;
        let plan = self.feed.plan();
        let mut dirs = DirCache::default();
        let mut last = usize::MAX;
        for &b in self.feed.taken_blocks() {
            for p in self.index.pieces(plan.offset(b), plan.len(b)) {
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
        match p {
            Prepared::Packed { buf, hash, blake3, .. } => {
                *hash = xxh3(buf);
                if self.digest == Digest::Blake3 {
                    *blake3 = Some(*blake3::hash(buf).as_bytes());
                }
            }
            Prepared::Pieces { buf, runs } => {
                let mut at = 0;
                for r in runs {
                    let bytes = &buf[at..at + r.len as usize];
                    r.hash = xxh3(bytes);
                    if self.digest == Digest::Blake3 {
                        r.blake3 = Some(*blake3::hash(bytes).as_bytes());
                    }
                    at += r.len as usize;
                }
            }
            Prepared::Generated { .. } if self.unchecked => {}
            Prepared::Generated { len, hash, blake3, .. } => {
                let Some(pattern) = &self.generated else { return };
                let mut h = Xxh3::new();
                let mut b3 = (self.digest == Digest::Blake3).then(blake3::Hasher::new);
                for piece in generated_pieces(pattern, *len) {
                    h.update(piece);
                    if let Some(b) = b3.as_mut() {
                        b.update(piece);
                    }
                }
                *hash = h.finish();
                *blake3 = b3.map(|b| *b.finalize().as_bytes());
            }
            Prepared::Sendfile { .. } => {}
        }
    }

    /// The end-game's re-send of a block on another stream: read and prepared again (a
    /// sendfile block is hashed again, so a file changed since is still caught), unless the
    /// streams are ending.
    pub(super) fn resend(&self, r: Resend) -> Result<()> {
        let mut p = self.read_block(r.block)?;
        self.process_block(&mut p);
        let _w = self.tail.writing(r.stream);
        if self.tail.sealed() || self.tail.abandoned(r.stream) {
            return Ok(());
        }
        self.send_locked(r.stream, p)
    }

    /// SEND: writes a processed block on stream `i`.
    fn send_block(&self, i: usize, p: Prepared) -> Result<()> {
        let _w = self.tail.writing(i);
        self.send_locked(i, p)
    }

    /// Bytes block `p` takes on a stream, its headers included.
    fn wire_len(&self, p: &Prepared) -> u64 {
        let block = |b3: bool| match b3 {
            true => Msg::BlockB3 { offset: 0, len: 0, xxh3: 0, blake3: [0; 32] }.encode().len() as u64,
            false => Msg::Block { offset: 0, len: 0, xxh3: 0 }.encode().len() as u64,
        };
        match p {
            Prepared::Sendfile { len, .. } => block(false) + *len as u64,
            Prepared::Packed { buf, blake3, .. } => block(blake3.is_some()) + buf.len() as u64,
            Prepared::Pieces { buf, runs } => {
                let heads: u64 =
                    runs.iter().map(|r| Msg::Piece { offset: 0, len: 0, xxh3: 0, blake3: r.blake3 }.encode().len() as u64).sum();
                heads + buf.len() as u64
            }
            Prepared::Generated { len, blake3, .. } => block(blake3.is_some()) + *len as u64,
        }
    }

    /// SEND, with stream `i`'s writing lock held. A write failing on a stream the end-game
    /// shut loses nothing: every block had arrived on another.
    fn send_locked(&self, i: usize, p: Prepared) -> Result<()> {
        let Some(sock) = self.sockets.get(i) else {
            return Err(Error::Protocol(format!("a block for stream {i}, which is not open")));
        };
        let plan = self.feed.plan();
        let (block, resendable) = match &p {
            Prepared::Sendfile { offset, .. } | Prepared::Packed { offset, .. } | Prepared::Generated { offset, .. } => {
                (plan.block_of(*offset), true)
            }
            Prepared::Pieces { runs, .. } => (plan.block_of(runs[0].offset), false),
        };
        self.tail.placing(i, sock, block, self.wire_len(&p), resendable);
        match self.write_block(i, sock, p) {
            Err(_) if self.tail.abandoned(i) => Ok(()),
            r => r,
        }
    }

    fn write_block(&self, i: usize, sock: &TcpStream, p: Prepared) -> Result<()> {
        let block_len = match &p {
            Prepared::Sendfile { len, .. } => *len as u64,
            Prepared::Packed { buf, .. } | Prepared::Pieces { buf, .. } => buf.len() as u64,
            Prepared::Generated { len, .. } => *len as u64,
        };
        if !self.throttle.is_unlimited() {
            let _w = self.gauges.instead(Busy::Sending, Wait::Rate);
            if !self.throttle.take(block_len, &self.run.stop) {
                return Ok(());
            }
        }
        self.wait_for_room(sock);
        self.first_byte.get_or_init(Instant::now);
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
            Prepared::Pieces { buf, runs } => {
                let mut at = 0;
                for r in runs {
                    let hdr = Msg::Piece { offset: r.offset, len: r.len, xxh3: r.hash, blake3: r.blake3 }.encode();
                    net::send_header(sock, &hdr).map_err(Error::net("sending a block"))?;
                    net::write_all(sock, &buf[at..at + r.len as usize]).map_err(Error::net("sending a block"))?;
                    at += r.len as usize;
                }
                (runs[0].offset, buf.len() as u64)
            }
            Prepared::Generated { offset, len, hash, blake3 } => {
                let hdr = match blake3 {
                    _ if self.unchecked => Msg::BlockRaw { offset: *offset, len: *len }.encode(),
                    Some(b3) => Msg::BlockB3 { offset: *offset, len: *len, xxh3: *hash, blake3: *b3 }.encode(),
                    None => Msg::Block { offset: *offset, len: *len, xxh3: *hash }.encode(),
                };
                net::send_header(sock, &hdr).map_err(Error::net("sending a block"))?;
                for piece in generated_pieces(self.generated.as_deref().unwrap_or_default(), *len) {
                    net::write_all(sock, piece).map_err(Error::net("sending a block"))?;
                }
                (*offset, *len as u64)
            }
        };
        if let Prepared::Sendfile { file, entry, .. } = p {
            let mut q = self.in_flight.lock().expect("in-flight lock");
            // One descriptor per file is enough to check it: a large file's blocks share one.
            if let Some(k) = q.iter().position(|&(e, _)| e == entry) {
                let held = q.remove(k).expect("just found");
                q.push_back(held);
            } else {
                if q.len() >= IN_FLIGHT_PER_STREAM * self.sockets.opened() {
                    q.pop_front();
                }
                q.push_back((entry, file));
            }
        }
        self.stream_blocks[i].fetch_add(1, Ordering::Relaxed);
        let block = self.feed.plan().block_of(offset);
        // A block's bytes count once, on the stream whose copy was written first: an
        // end-game's second copy is counted apart (`Tail::twice_bytes`), not as more data.
        if self.tail.written(block, len) {
            self.per_stream[i].fetch_add(len, Ordering::Relaxed);
        }
        self.feed.sent(block);
        Ok(())
    }

    /// Blocks handed to a stream so far.
    pub(super) fn handed(&self) -> u64 {
        self.stream_blocks.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Waits, as blocked on the socket, while stream `sock` has no room, so the timeline tells a
    /// send held back by the network from one copying bytes. At most `SOCKET_WAIT`, and no
    /// longer than the socket's send timeout: the write that follows waits under that timeout
    /// and reports a stalled peer as it always did.
    fn wait_for_room(&self, sock: &TcpStream) {
        if net::wait_writable(sock, Duration::ZERO) {
            return;
        }
        let _w = self.gauges.instead(Busy::Sending, Wait::Socket);
        let most = sock.write_timeout().ok().flatten().map_or(SOCKET_WAIT, |t| t.min(SOCKET_WAIT));
        let until = std::time::Instant::now() + most;
        // In slices, so a cancel is seen within one.
        while !self.run.stopped() && std::time::Instant::now() < until {
            if net::wait_writable(sock, Duration::from_millis(50)) {
                return;
            }
        }
    }

    /// Ends every stream with its STREAM_END (after the last block); false if one failed. No
    /// stream joins after this.
    pub(super) fn end_streams(&self) -> bool {
        self.tail.seal();
        self.sockets.seal();
        for (i, sock) in self.sockets.open_now().into_iter().enumerate() {
            // After a re-send under way; a stream the end-game shut gets none.
            let _w = self.tail.writing(i);
            if self.tail.abandoned(i) {
                continue;
            }
            let end =
                Msg::StreamEnd { blocks: self.stream_blocks[i].load(Ordering::Relaxed), bytes: self.per_stream[i].load(Ordering::Relaxed) };
            if let Err(err) = frame::write_msg(&mut &*sock, &end) {
                self.run.fail(err);
                return false;
            }
        }
        true
    }
}

impl Work for Engine<'_> {
    type Block = Prepared;
    fn read(&self) -> Result<Option<Prepared>> {
        match self.feed.take(&self.run.stop) {
            Some(b) => self.read_block(b).map(Some),
            None => Ok(None),
        }
    }
    fn process(&self, p: &mut Prepared) {
        self.process_block(p);
    }
    fn send(&self, stream: usize, p: Prepared) -> Result<()> {
        self.send_block(stream, p)
    }
    fn streams(&self) -> usize {
        self.sockets.cap()
    }
    fn usable(&self) -> usize {
        self.sockets.opened()
    }
    fn may_grow(&self) -> bool {
        self.sockets.grows() && self.sockets.get(0).and_then(|s| crate::sys::congestion::get(s).ok()).is_some_and(|cc| cc != "bbr")
    }
    /// Only where streams differ much in speed: a lossy link's, which `--streams auto` grows.
    /// A block taken while the socket is full waits there, at that stream's pace, while a
    /// faster stream could have sent it. (Leaving blocks to the fastest streams, by their
    /// delivery rates, was tried: the streams left idle restart from slow start after their
    /// idle time and the transfer took 3x as long.)
    fn await_room(&self, stream: usize) {
        if let Some(sock) = self.sockets.get(stream).filter(|_| self.sockets.grows()) {
            self.wait_for_room(sock);
        }
    }
    fn stopped(&self) -> bool {
        self.run.stopped()
    }
    fn fail(&self, e: Error) {
        self.run.fail(e);
    }
    /// Binds the calling thread per the placement and records it.
    fn pin(&self, role: Role, i: usize, name: &str) {
        let Some(cpu) = self.placement.cpu_for(role, i) else { return };
        let error = bind_current_thread(cpu).err();
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        self.pinned.lock().expect("pinned lock").push(ThreadPin { name: name.to_owned(), tid, cpu, error });
    }
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

/// A generated block of `len` bytes as the pieces it is sent and hashed in: `pattern` over and
/// over (the last piece cut short), so the source of every copy stays in the CPU's cache.
fn generated_pieces(pattern: &[u8], len: u32) -> impl Iterator<Item = &[u8]> {
    let step = pattern.len().max(1);
    (0..len as usize).step_by(step).map(move |at| &pattern[..step.min(len as usize - at)])
}
