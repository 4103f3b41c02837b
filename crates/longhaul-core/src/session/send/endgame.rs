//! End-game (issue 31, FEATURE_ENDGAME). On a lossy link a push's CUBIC streams run at very
//! different speeds; once every block is on a stream, the last blocks of the slowest ones
//! (a 1 MiB block at a congestion window of 20 segments takes seconds at 100 ms) hold the push
//! while the other streams sit idle. Here, each stream's blocks are logged with where they end
//! in what was written on it, and the peer's acknowledgements (TCP_INFO's bytes acked) say which
//! have arrived. Once all blocks are on a stream, an idle stream (nothing of its own left
//! unsent) sends once more the block of a slow stream that would arrive last there, when it
//! would arrive sooner on the idle one; the receiver keeps the first verified copy. Once every
//! block has arrived somewhere, the streams still carrying copies are shut for writing (what
//! they queued still goes, then their FIN; the writes waiting for room return), and the push
//! ends without waiting for them: the node completes once every block is here and DONE came.
//!
//! With `--streams auto` (streams of very different speeds) each stream also holds no more than
//! `UNSENT` bytes written but unsent (TCP_NOTSENT_LOWAT): a slow stream's socket buffer (up to
//! 4 MiB, seconds of its data) no longer takes blocks a faster stream could send, and "every
//! block on a stream" means about to arrive, for the tuner too.
//!
//! A socket without TCP_INFO (the engine's end of a TLS relay) gives no acknowledgements: the
//! end-game is then off for the push.

use std::collections::{HashSet, VecDeque};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::sys::tcpinfo;
use crate::vfile::blockset::BlockSet;

/// The most bytes a paced stream holds written but not sent: a few milliseconds of a fast
/// stream's data, so it never runs dry waiting for its sender.
const UNSENT: u32 = 512 << 10;

/// The least a re-send must gain, in seconds: on a short path (loopback, a LAN) a block's wait
/// behind a busy receiver is not worth a second copy.
const MIN_GAIN: f64 = 0.05;

/// What one stream carried: where the engine's bytes began in what was written on it (bytes
/// acknowledged and unacknowledged when the engine first wrote), how many it wrote since, and
/// its blocks not yet acknowledged, in order.
#[derive(Default)]
struct Log {
    base: Option<u64>,
    written: u64,
    pending: VecDeque<Copy>,
}

/// One copy of a block on a stream: the block, where its last byte ends in the stream, its
/// length there, and whether another stream may send it again (not a block sent as pieces).
struct Copy {
    block: u64,
    end: u64,
    len: u64,
    resendable: bool,
}

#[derive(Default)]
struct Books {
    logs: Vec<Log>,
    /// Blocks put on a stream at least once.
    placed: BlockSet,
    /// Blocks written whole on a stream at least once (their bytes count once in DONE).
    written: BlockSet,
    /// Blocks with a copy the peer acknowledged.
    arrived: BlockSet,
    /// Blocks sent a second time.
    resent: HashSet<u64>,
}

/// What the end-game does next.
pub(super) enum Step {
    /// Every block has arrived (the streams still carrying copies are shut), or the end-game
    /// is off.
    Over,
    Resend(Resend),
    /// Nothing to do now; `worth`: a block still on its way would arrive later than a round
    /// trip or two from now (or a copy was sent twice: the streams' ends must wait for it).
    Wait {
        worth: bool,
    },
}

/// A block the end-game sends again, and where.
pub(super) struct Resend {
    pub(super) block: u64,
    pub(super) stream: usize,
}

/// What a stream looks like now, for the choice of a re-send.
struct Now {
    /// Engine bytes the peer acknowledged.
    acked: u64,
    /// Bytes it sends per second at its present window.
    rate: f64,
    rtt: f64,
    /// Bytes the window lets be in flight: with no more than that unacknowledged, nothing of
    /// the stream's own waits to be sent and it can take a block at once.
    window: u64,
}

pub(super) struct Tail {
    on: AtomicBool,
    /// Streams hold at most `UNSENT` unsent bytes (`--streams auto`).
    paced: bool,
    books: Mutex<Books>,
    /// Held by whoever writes on a stream: the scheduler's sender, or a re-send here.
    writing: Vec<Mutex<()>>,
    abandoned: Vec<AtomicBool>,
    /// Set once the streams' STREAM_END are being written: no re-send after it.
    sealed: AtomicBool,
    /// Set when the end-game is done (or never ran): the streams may end.
    finished: AtomicBool,
    /// Blocks the push has to send.
    count: u64,
    limit: u64,
    /// Copies written whole after a first, and their bytes.
    pub(super) twice_blocks: AtomicU64,
    pub(super) twice_bytes: AtomicU64,
}

impl Tail {
    /// For `streams` data connections (the cap) and `count` blocks to send; `on` when the node
    /// takes duplicates (FEATURE_ENDGAME), at most `limit` of them; `paced`: see `UNSENT`.
    pub(super) fn new(on: bool, paced: bool, streams: usize, count: u64, limit: u64) -> Tail {
        Tail {
            on: AtomicBool::new(on && streams > 1),
            paced,
            books: Mutex::new(Books { logs: (0..streams).map(|_| Log::default()).collect(), ..Books::default() }),
            writing: (0..streams).map(|_| Mutex::new(())).collect(),
            abandoned: (0..streams).map(|_| AtomicBool::new(false)).collect(),
            sealed: AtomicBool::new(false),
            finished: AtomicBool::new(!(on && streams > 1)),
            count,
            limit,
            twice_blocks: AtomicU64::new(0),
            twice_bytes: AtomicU64::new(0),
        }
    }

    pub(super) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Taken for a write on stream `i`.
    pub(super) fn writing(&self, i: usize) -> MutexGuard<'_, ()> {
        self.writing[i].lock().expect("writing lock")
    }

    /// Whether stream `i` was shut by the end-game: a write failing there lost nothing.
    pub(super) fn abandoned(&self, i: usize) -> bool {
        self.abandoned.get(i).is_some_and(|a| a.load(Ordering::Relaxed))
    }

    pub(super) fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
    }

    pub(super) fn sealed(&self) -> bool {
        self.sealed.load(Ordering::SeqCst)
    }

    pub(super) fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    pub(super) fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Blocks with a copy the peer acknowledged: while it grows, the end-game is getting
    /// somewhere.
    pub(super) fn arrived(&self) -> u64 {
        self.books.lock().expect("books lock").arrived.len()
    }

    /// Block `block` is about to be written on stream `i` (`sock`), `len` bytes with its headers.
    pub(super) fn placing(&self, i: usize, sock: &TcpStream, block: u64, len: u64, resendable: bool) {
        let mut books = self.books.lock().expect("books lock");
        books.placed.insert(block);
        let log = &mut books.logs[i];
        if log.base.is_none() {
            if self.paced {
                // Not having it costs speed, not correctness.
                let _ = tcpinfo::limit_unsent(sock, UNSENT);
            }
            log.base = Some(0);
            if self.on() {
                match (tcpinfo::read(sock), tcpinfo::unacked(sock)) {
                    (Ok(t), Ok(q)) => log.base = Some(t.bytes_acked + q),
                    _ => self.on.store(false, Ordering::Relaxed),
                }
            }
        }
        if !self.on() {
            return;
        }
        log.written += len;
        let end = log.written;
        log.pending.push_back(Copy { block, end, len, resendable });
    }

    /// Block `block`'s copy on a stream was written whole, `len` bytes of data; false if a copy
    /// was before (this one is counted as sent twice).
    pub(super) fn written(&self, block: u64, len: u64) -> bool {
        let first = self.books.lock().expect("books lock").written.insert(block);
        if !first {
            self.twice_blocks.fetch_add(1, Ordering::Relaxed);
            self.twice_bytes.fetch_add(len, Ordering::Relaxed);
        }
        first
    }

    /// One look at the streams (`sockets`, those open): which blocks have arrived; once every
    /// block has, the streams still carrying copies shut (the end-game is over); else a re-send
    /// for an idle stream, if one would gain.
    pub(super) fn step(&self, sockets: &[&TcpStream]) -> Step {
        if !self.on() || self.sealed() {
            return Step::Over;
        }
        let mut books = self.books.lock().expect("books lock");
        let mut now: Vec<Option<Now>> = Vec::with_capacity(sockets.len());
        for (i, sock) in sockets.iter().enumerate() {
            let Some(base) = books.logs[i].base else {
                now.push(None);
                continue;
            };
            let Ok(t) = tcpinfo::read(sock) else {
                self.on.store(false, Ordering::Relaxed);
                return Step::Over;
            };
            let acked = t.bytes_acked.saturating_sub(base);
            let Books { logs, arrived, .. } = &mut *books;
            while logs[i].pending.front().is_some_and(|c| c.end <= acked) {
                let c = logs[i].pending.pop_front().expect("just seen");
                arrived.insert(c.block);
            }
            let rtt = (t.rtt_us.max(1000) as f64) / 1e6;
            let window = t.cwnd as u64 * t.mss.max(1) as u64;
            now.push(Some(Now { acked, rate: window.max(1) as f64 / rtt, rtt, window }));
        }
        // Only once every block is on a stream: before that, an idle stream takes a new one.
        if books.placed.len() < self.count {
            return Step::Wait { worth: true };
        }
        if books.arrived.len() >= self.count {
            for (i, sock) in sockets.iter().enumerate() {
                if !books.logs[i].pending.is_empty() {
                    self.abandoned[i].store(true, Ordering::SeqCst);
                    let _ = sock.shutdown(Shutdown::Write);
                }
            }
            return Step::Over;
        }
        // Each block on its way, by the copy that arrives first: is any more than two round
        // trips off?
        let mut soonest: std::collections::HashMap<u64, f64> = std::collections::HashMap::new();
        for (k, log) in books.logs.iter().enumerate() {
            let Some(Some(nk)) = now.get(k) else { continue };
            for c in log.pending.iter().filter(|c| !books.arrived.contains(c.block)) {
                let late = c.end.saturating_sub(nk.acked) as f64 / nk.rate - (2.0 * nk.rtt).max(MIN_GAIN);
                let s = soonest.entry(c.block).or_insert(late);
                *s = s.min(late);
            }
        }
        let worth = !books.resent.is_empty() || soonest.values().any(|&late| late > 0.0);
        if books.resent.len() as u64 >= self.limit {
            return Step::Wait { worth };
        }
        // The copy that would arrive last, on its stream at its pace.
        let mut best: Option<(f64, u64, u64)> = None;
        for (k, log) in books.logs.iter().enumerate() {
            let Some(Some(nk)) = now.get(k) else { continue };
            for c in &log.pending {
                if !c.resendable || books.arrived.contains(c.block) || books.resent.contains(&c.block) {
                    continue;
                }
                let eta = c.end.saturating_sub(nk.acked) as f64 / nk.rate;
                if best.is_none_or(|(e, _, _)| eta > e) {
                    best = Some((eta, c.block, c.len));
                }
            }
        }
        let Some((eta, block, len)) = best else { return Step::Wait { worth } };
        // The idle stream where it would arrive soonest, a round trip's margin against the wait.
        let mut choice: Option<(f64, usize)> = None;
        for (j, n) in now.iter().enumerate() {
            let Some(n) = n else { continue };
            let log = &books.logs[j];
            let unacked = log.written.saturating_sub(n.acked);
            if self.abandoned(j) || unacked > n.window || log.pending.iter().any(|c| c.block == block) {
                continue;
            }
            let there = (unacked + len) as f64 / n.rate + n.rtt;
            if there + MIN_GAIN < eta && choice.is_none_or(|(t, _)| there < t) {
                choice = Some((there, j));
            }
        }
        let Some((_, stream)) = choice else { return Step::Wait { worth } };
        if self.writing[stream].try_lock().is_err() {
            return Step::Wait { worth };
        }
        books.resent.insert(block);
        Step::Resend(Resend { block, stream })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_written_after_the_first_counts_as_sent_twice() {
        let t = Tail::new(true, false, 2, 2, 8);
        assert!(t.written(0, 100));
        assert!(t.written(1, 50));
        assert!(!t.written(0, 100));
        assert_eq!((t.twice_blocks.load(Ordering::Relaxed), t.twice_bytes.load(Ordering::Relaxed)), (1, 100));
    }

    #[test]
    fn one_stream_has_no_end_game() {
        assert!(!Tail::new(true, false, 1, 4, 8).on());
        assert!(!Tail::new(false, false, 4, 4, 8).on());
        assert!(Tail::new(true, false, 2, 4, 8).on());
    }

    #[test]
    fn once_every_block_arrived_the_streams_still_carrying_copies_are_shut() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut ra, _) = l.accept().unwrap();
        let b = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_rb, _) = l.accept().unwrap();
        let t = Tail::new(true, false, 2, 1, 8);
        use std::io::Write;
        t.placing(0, &a, 0, 4, true);
        (&a).write_all(b"abcd").unwrap();
        let mut got = [0u8; 4];
        ra.read_exact(&mut got).unwrap();
        // A copy on stream 1 that never arrives (only logged, nothing written).
        t.placing(1, &b, 0, 4, true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match t.step(&[&a, &b]) {
                Step::Over => break,
                Step::Resend(_) => panic!("nothing to send again: the one block arrived"),
                Step::Wait { .. } => {}
            }
            assert!(std::time::Instant::now() < deadline, "the acknowledgement never came");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!t.abandoned(0) && t.abandoned(1));
        assert!((&b).write_all(b"x").is_err(), "stream 1 is shut for writing");
    }
}
