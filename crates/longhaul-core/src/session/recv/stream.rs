//! One data connection: its loop, each block's receipt and checksums (XXH3, and BLAKE3 where
//! the sender adds it), and the hand-over of verified blocks to the writers. Owns `Receipt` (blocks seen,
//! bytes and blocks counted, the throttle).

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Sender, TrySendError};

use super::disk::DiskTimes;
use super::Receive;
use crate::error::{Error, Result};
use crate::hash::Xxh3;
use crate::place::placement::{bind_current_thread, Role};
use crate::pool::PoolBuf;
use crate::rate::Throttle;
use crate::sys::net::Deadline;
use crate::util::CHUNK;
use crate::vfile::blockset::{BlockSet, BlockSums};
use crate::wire::frame::{self, Msg};

/// What the data connections have delivered, and the bandwidth limits it passes through.
pub(super) struct Receipt {
    /// Blocks received so far: a block twice is an error.
    pub(super) seen: Mutex<BlockSet>,
    /// With pieces: the blocks held in part, by number, and the runs still to come of each.
    pub(super) pieces: Mutex<HashMap<u64, Wanted>>,
    /// Bytes received and verified, shared with whoever watches progress.
    pub(super) bytes: Arc<AtomicU64>,
    pub(super) blocks: AtomicU64,
    pub(super) throttle: Throttle,
    /// FEATURE_ENDGAME: blocks that may come twice.
    pub(super) twice: Twice,
}

/// End-game (FEATURE_ENDGAME): the sender may send a block still in flight on a slow stream
/// once more on another. A block counts when its first copy has arrived whole and verified;
/// a later copy is read and verified too, must carry the first's checksum, and is dropped (never
/// written over the first); at most `frame::endgame_duplicates` of them. Without the feature
/// a block twice stays the protocol error it was.
#[derive(Default)]
pub(super) struct Twice {
    pub(super) on: std::sync::atomic::AtomicBool,
    /// The XXH3 of every block received whole, to hold a second copy to.
    sums: Mutex<BlockSums>,
    /// Second copies dropped so far.
    pub(super) dropped: AtomicU64,
    pub(super) limit: AtomicU64,
}

/// The runs of a block held in part that the receiver needs (`needed_runs`), each to come
/// once as a PIECE; the block counts as received when the last one has.
pub(super) struct Wanted {
    runs: Vec<(u64, u64)>,
    got: Vec<bool>,
    /// Runs not yet claimed by a PIECE header, and runs not yet read whole and verified: the
    /// block counts as here only when the second reaches 0 (another stream may still be reading
    /// an earlier piece when the last one is claimed).
    left: usize,
    unverified: usize,
}

impl Wanted {
    pub(super) fn new(runs: Vec<(u64, u64)>) -> Wanted {
        Wanted { got: vec![false; runs.len()], left: runs.len(), unverified: runs.len(), runs }
    }
}

/// A verified block (or piece of one) on its way to the writers.
pub(super) struct WriteJob {
    pub(super) buf: PoolBuf,
    pub(super) offset: u64,
    pub(super) hash: u64,
    /// A whole block, journaled once written. A piece is not: the journal's record is a whole
    /// block's XXH3, and what a later attempt needs of a block held in part it finds from the
    /// files (complete ones are held again; the rest of the block is sent again).
    pub(super) journal: bool,
}

pub(super) fn closed_early() -> Error {
    Error::Protocol("a data connection closed before its STREAM_END".into())
}

const CLOSED_INSIDE_BLOCK: &str = "a data connection closed inside a block";

/// Whether a data connection's error is the connection breaking (closed inside a block, reset):
/// what a receiver sees when the sender stops for a reason of its own, which its ERROR on the
/// control connection says.
fn broken(e: &Error) -> bool {
    matches!(e, Error::Net { .. }) || matches!(e, Error::Protocol(m) if m == CLOSED_INSIDE_BLOCK)
}

/// How a data connection's loop ended without an error.
enum StreamExit {
    /// Its STREAM_END arrived, or the session had already stopped.
    End,
    /// The sender closed it before its STREAM_END.
    Closed,
}

impl Receive {
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
        let (attached, opened) = {
            let mut st = self.life.state.lock().expect("state lock");
            st.attached += 1;
            (st.attached, st.opened)
        };
        if attached > self.streams {
            return self.fail(Error::Protocol(format!("more data connections than the {} agreed", self.streams)));
        }
        if let Some(n) = opened.filter(|&n| attached > n) {
            return self.fail(Error::Protocol(format!("more data connections than the {n} STREAMS_OPENED said")));
        }
        let _ = rustix::thread::set_name(c"lh-rx");
        if let Some(cpu) = self.placement.cpu_for(Role::Net, attached as usize - 1) {
            let _ = bind_current_thread(cpu);
        }
        if let Ok(c) = sock.try_clone() {
            self.life.sockets.lock().expect("sockets lock").push(c);
        }
        let tx = match self.writers.tx.lock().expect("tx lock").clone() {
            Some(tx) => tx,
            None => return,
        };
        let cpu_at_start = crate::sys::cputime::thread_cpu_us();
        let endgame = self.receipt.twice.on.load(Ordering::Relaxed);
        match self.stream_loop(&mut sock, &tx, cpu_at_start) {
            Ok(StreamExit::End) => {}
            // The sender shuts a stream whose every block arrived on another: the session ends
            // once all are here, and fails only if DONE comes and some never did.
            Ok(StreamExit::Closed) if endgame => self.life.stream_closed(),
            Err(e) if endgame && broken(&e) => self.life.stream_closed(),
            Ok(StreamExit::Closed) if self.resume.journal.is_some() => self.life.stream_closed(),
            Ok(StreamExit::Closed) => self.life.fail_unless_explained(closed_early()),
            // A bad block may be the sender's file changing between its hash and its send
            // (sendfile reads it twice): the sender finds that at once and says so.
            Err(e) if broken(&e) || matches!(e, Error::Checksum { .. }) => self.life.fail_unless_explained(e),
            Err(e) => {
                if !self.life.stop.load(Ordering::Relaxed) {
                    self.fail(e);
                }
            }
        }
    }

    fn stream_loop(&self, sock: &mut TcpStream, tx: &Sender<WriteJob>, cpu_at_start: u64) -> Result<StreamExit> {
        loop {
            if self.life.stop.load(Ordering::Relaxed) {
                return Ok(StreamExit::End);
            }
            let msg = frame::read_msg(&mut Deadline::new(sock, self.idle_timeout), 0);
            match msg? {
                None => return Ok(StreamExit::Closed),
                Some(Msg::Block { offset, len, xxh3: want }) => {
                    let Some(buf) = self.receive_block(sock, offset, len, Some(want), None)? else { continue };
                    if self.discard {
                        continue;
                    }
                    if self.queue(tx, WriteJob { buf, offset, hash: want, journal: true }).is_err() {
                        return Ok(StreamExit::End);
                    }
                    self.all_here();
                }
                Some(Msg::BlockB3 { offset, len, xxh3: want, blake3 }) => {
                    let Some(buf) = self.receive_block(sock, offset, len, Some(want), Some(&blake3))? else { continue };
                    if self.discard {
                        continue;
                    }
                    if self.queue(tx, WriteJob { buf, offset, hash: want, journal: true }).is_err() {
                        return Ok(StreamExit::End);
                    }
                    self.all_here();
                }
                Some(Msg::Piece { offset, len, xxh3: want, blake3 }) if !self.discard => {
                    let buf = self.receive_piece(sock, offset, len, want, blake3.as_ref())?;
                    if self.queue(tx, WriteJob { buf, offset, hash: want, journal: false }).is_err() {
                        return Ok(StreamExit::End);
                    }
                    self.all_here();
                }
                // Unchecked blocks are a bench's (`--verify none`): dropped unhashed.
                Some(Msg::BlockRaw { offset, len }) if self.discard => {
                    self.receive_block(sock, offset, len, None, None)?;
                }
                Some(Msg::StreamEnd { .. }) => {
                    // Counted before the stream is seen ended: the summary is made right after
                    // the last one, and must include this thread's time.
                    let used = crate::sys::cputime::thread_cpu_us().saturating_sub(cpu_at_start);
                    self.cpu_us.fetch_add(used, Ordering::Relaxed);
                    // The last of a gone sender's streams may end rather than close.
                    self.life.update_state(|st| st.ended += 1);
                    return Ok(StreamExit::End);
                }
                Some(m) => return Err(Error::Protocol(format!("unexpected {:?} frame on a data connection", m.frame_type()))),
            }
        }
    }

    /// Hands a block to the writers, counting a wait for room as the disk being the slower.
    fn queue(&self, tx: &Sender<WriteJob>, job: WriteJob) -> std::result::Result<(), ()> {
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(()),
            Err(TrySendError::Full(job)) => DiskTimes::timed(&self.disk.queue_full_us, || tx.send(job)).map_err(|_| ()),
        }
    }

    /// Reads block `offset` into a pooled buffer, checking it against `want` (its XXH3) and
    /// `blake3`; `want` None (BLOCK_RAW, a bench's) hashes nothing. None: an end-game's second
    /// copy, verified and dropped.
    fn receive_block(
        &self,
        sock: &mut TcpStream,
        offset: u64,
        len: u32,
        want: Option<u64>,
        blake3: Option<&[u8; 32]>,
    ) -> Result<Option<PoolBuf>> {
        let plan = self.plan;
        if !offset.is_multiple_of(plan.block_size) || offset >= plan.total {
            return Err(Error::Protocol(format!("block offset {offset} is not a block of this transfer")));
        }
        let b = plan.block_of(offset);
        let expect = plan.len(b);
        if len as u64 != expect {
            return Err(Error::Protocol(format!("block at {offset} has length {len}, expected {expect}")));
        }
        if self.receipt.pieces.lock().expect("pieces lock").contains_key(&b) {
            return Err(Error::Protocol(format!("block at {offset} is held in part: only its pieces may come (HELD)")));
        }
        if self.receipt.twice.on.load(Ordering::Relaxed) {
            return self.receive_copy(sock, b, offset, len, want, blake3);
        }
        if !self.receipt.seen.lock().expect("seen lock").insert(b) {
            return Err(Error::Protocol(format!("block at {offset} received twice")));
        }
        let buf = self.read_checked(sock, offset, len, want, blake3)?;
        self.receipt.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.receipt.blocks.fetch_add(1, Ordering::Relaxed);
        Ok(Some(buf))
    }

    /// End-game: block `b` counts once its copy has arrived whole and verified, as two copies
    /// may be on their way at once; a later copy must be the first's, and is dropped. A block
    /// the receiver holds from before (no checksum recorded) may not come at all.
    fn receive_copy(
        &self,
        sock: &mut TcpStream,
        b: u64,
        offset: u64,
        len: u32,
        want: Option<u64>,
        blake3: Option<&[u8; 32]>,
    ) -> Result<Option<PoolBuf>> {
        let twice = &self.receipt.twice;
        let sum = want.unwrap_or(0);
        let held_before = |seen: &BlockSet| seen.contains(b) && !twice.sums.lock().expect("sums lock").matches(b, sum);
        if held_before(&self.receipt.seen.lock().expect("seen lock")) {
            return Err(Error::Protocol(format!("block at {offset} received twice, and the copies differ")));
        }
        let buf = self.read_checked(sock, offset, len, want, blake3)?;
        let mut seen = self.receipt.seen.lock().expect("seen lock");
        if seen.insert(b) {
            twice.sums.lock().expect("sums lock").set(b, sum);
            drop(seen);
            self.receipt.bytes.fetch_add(len as u64, Ordering::Relaxed);
            self.receipt.blocks.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(buf));
        }
        if held_before(&seen) {
            return Err(Error::Protocol(format!("block at {offset} received twice, and the copies differ")));
        }
        drop(seen);
        let dropped = twice.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = twice.limit.load(Ordering::Relaxed);
        if dropped > limit {
            return Err(Error::Protocol(format!("more than {limit} blocks received twice (end-game)")));
        }
        Ok(None)
    }

    /// End-game: once every block of the plan is here (and queued for the writers), the session
    /// may end without the STREAM_END of streams the sender shut.
    fn all_here(&self) {
        if self.receipt.twice.on.load(Ordering::Relaxed) && self.receipt.seen.lock().expect("seen lock").len() >= self.plan.count() {
            self.life.update_state(|st| st.all_here = true);
        }
    }

    /// Reads PIECE `offset`..`offset + len`: exactly one of the runs its block still needs
    /// (anything else, a piece overlapping or outside them, one covering a held file, one of
    /// another length or twice, is the sender's protocol error), checked against `want` and
    /// `blake3`. Its block counts as received with its last piece.
    fn receive_piece(&self, sock: &mut TcpStream, offset: u64, len: u32, want: u64, blake3: Option<&[u8; 32]>) -> Result<PoolBuf> {
        let b = self.plan.block_of(offset);
        {
            let mut pieces = self.receipt.pieces.lock().expect("pieces lock");
            let w = pieces
                .get_mut(&b)
                .ok_or_else(|| Error::Protocol(format!("PIECE at {offset} is in no block the receiver holds in part")))?;
            let k = w
                .runs
                .binary_search_by_key(&offset, |r| r.0)
                .map_err(|_| Error::Protocol(format!("PIECE at {offset} does not start a part of block {b} the receiver needs")))?;
            if w.runs[k].1 != len as u64 {
                return Err(Error::Protocol(format!("PIECE at {offset} has length {len}, the part needed has {}", w.runs[k].1)));
            }
            if std::mem::replace(&mut w.got[k], true) {
                return Err(Error::Protocol(format!("PIECE at {offset} received twice")));
            }
            w.left -= 1;
        }
        let buf = self.read_checked(sock, offset, len, Some(want), blake3)?;
        self.receipt.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let last = {
            let mut pieces = self.receipt.pieces.lock().expect("pieces lock");
            let w = pieces.get_mut(&b).expect("a block's runs stay while the session lives");
            w.unverified -= 1;
            w.unverified == 0
        };
        if last {
            self.receipt.blocks.fetch_add(1, Ordering::Relaxed);
            // Counted among the blocks here (end-game's `all_here`); never sent as a block.
            self.receipt.seen.lock().expect("seen lock").insert(b);
        }
        Ok(buf)
    }

    /// Reads `len` bytes at stream `offset` into a pooled buffer through the bandwidth limits,
    /// checking them against `want` (their XXH3; None hashes nothing) and `blake3`; the caller
    /// counts them.
    fn read_checked(&self, sock: &mut TcpStream, offset: u64, len: u32, want: Option<u64>, blake3: Option<&[u8; 32]>) -> Result<PoolBuf> {
        if !self.receipt.throttle.is_unlimited()
            && !DiskTimes::timed(&self.disk.rate_us, || self.receipt.throttle.take(len as u64, &self.life.stop))
        {
            return Err(Error::Cancelled);
        }
        let mut buf = match self.pool.try_take() {
            Some(b) => b,
            None => DiskTimes::timed(&self.disk.pool_us, || self.pool.take(&self.life.stop))?,
        };
        buf.set_len(len as usize);
        // Each read is hashed as it lands, while it is still in the CPU's cache: hashing the
        // whole 4 MiB block afterwards read it back from memory (17% of the node's CPU on a
        // large file, against ~9% this way).
        let mut sum = want.map(|_| Xxh3::new());
        let mut b3 = blake3.map(|_| blake3::Hasher::new());
        let mut got = 0;
        let mut src = Deadline::new(sock, self.idle_timeout);
        while got < buf.len() {
            // CHUNK at a time: small enough to stay in L2 while it is hashed.
            let end = buf.len().min(got + CHUNK);
            let n = match src.read(&mut buf[got..end]) {
                Ok(0) => return Err(Error::Protocol(CLOSED_INSIDE_BLOCK.into())),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::net("receiving a block")(e)),
            };
            if let Some(s) = sum.as_mut() {
                s.update(&buf[got..got + n]);
            }
            if let Some(h) = b3.as_mut() {
                h.update(&buf[got..got + n]);
            }
            got += n;
        }
        if sum.zip(want).is_some_and(|(s, want)| s.finish() != want)
            || blake3.zip(b3).is_some_and(|(want, h)| h.finalize().as_bytes() != want)
        {
            return Err(Error::Checksum { offset, len });
        }
        Ok(buf)
    }
}
