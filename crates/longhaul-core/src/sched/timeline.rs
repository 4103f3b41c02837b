//! The thread-state timeline: how many threads are reading, processing, sending, writing and
//! blocked, and how many blocks are queued, sampled every few milliseconds (Vyukov's profiles).
//! Threads update `Gauges` with RAII guards; the coordinating thread samples them. A blocked
//! thread also says on what (`Wait`), so the report can tell a full pool from a slow network.
//! Each change is one relaxed atomic add: a sample costs a few loads, a state change nothing
//! the hot path would notice.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::sys::tcpinfo::{self, TcpStats};

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A free buffer: the pool is empty (every buffer is queued or in flight).
    Pool,
    /// Room in the next stage's queue: the queue is full (a later step is the slower).
    Queue,
    /// The socket: its send buffer is full (the network or the receiver is the slower).
    Socket,
    /// A bandwidth limit's token bucket.
    Rate,
    /// A block from the disk reads: nothing read is waiting (reading is the slower).
    Input,
}

impl Wait {
    pub const ALL: [Wait; 5] = [Wait::Pool, Wait::Queue, Wait::Socket, Wait::Rate, Wait::Input];
    pub fn name(self) -> &'static str {
        match self {
            Wait::Pool => "pool",
            Wait::Queue => "queue",
            Wait::Socket => "socket",
            Wait::Rate => "rate",
            Wait::Input => "input",
        }
    }
}

/// The busy states a `Gauges::instead` guard can take a thread out of while it waits.
#[derive(Clone, Copy)]
pub enum Busy {
    Reading,
    Sending,
}

#[derive(Default)]
pub struct Gauges {
    reading: AtomicUsize,
    processing: AtomicUsize,
    sending: AtomicUsize,
    writing: AtomicUsize,
    /// Threads blocked, by `Wait` (in `Wait::ALL`'s order).
    blocked: [AtomicUsize; 5],
    /// The adaptive scheduler's parked workers (published as a count, not by guards).
    parked_full: AtomicUsize,
    parked_idle: AtomicUsize,
    queued: AtomicUsize,
}

pub struct GaugeGuard<'a>(&'a AtomicUsize);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A busy thread that waits: out of its busy state and blocked for the guard's life.
pub struct WaitGuard<'a> {
    busy: &'a AtomicUsize,
    blocked: &'a AtomicUsize,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.blocked.fetch_sub(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
    }
}

impl Gauges {
    fn enter(a: &AtomicUsize) -> GaugeGuard<'_> {
        a.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(a)
    }
    fn wait_slot(&self, on: Wait) -> &AtomicUsize {
        &self.blocked[Wait::ALL.iter().position(|&w| w == on).expect("a wait in ALL")]
    }
    pub fn reading(&self) -> GaugeGuard<'_> {
        Self::enter(&self.reading)
    }
    pub fn processing(&self) -> GaugeGuard<'_> {
        Self::enter(&self.processing)
    }
    pub fn sending(&self) -> GaugeGuard<'_> {
        Self::enter(&self.sending)
    }
    pub fn blocked(&self, on: Wait) -> GaugeGuard<'_> {
        Self::enter(self.wait_slot(on))
    }
    /// Moves a thread that holds a `busy` guard to blocked on `on` until the guard drops: the
    /// engine waits inside a step the scheduler counted as busy (a pool buffer inside a read,
    /// the socket inside a send), and a thread must count in one state only.
    pub fn instead(&self, busy: Busy, on: Wait) -> WaitGuard<'_> {
        let busy = match busy {
            Busy::Reading => &self.reading,
            Busy::Sending => &self.sending,
        };
        let blocked = self.wait_slot(on);
        busy.fetch_sub(1, Ordering::Relaxed);
        blocked.fetch_add(1, Ordering::Relaxed);
        WaitGuard { busy, blocked }
    }
    /// The adaptive scheduler's parked workers: those parked while the queue is over its high
    /// watermark wait for room in it, the others for work.
    pub fn set_parked(&self, n: usize, queue_full: bool) {
        let (full, idle) = if queue_full { (n, 0) } else { (0, n) };
        self.parked_full.store(full, Ordering::Relaxed);
        self.parked_idle.store(idle, Ordering::Relaxed);
    }
    pub fn set_queued(&self, n: usize) {
        self.queued.store(n, Ordering::Relaxed);
    }
    pub fn snapshot(&self, ms: f64) -> Sample {
        let l = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u32;
        let mut blocked_on: [u32; 5] = std::array::from_fn(|i| l(&self.blocked[i]));
        blocked_on[1] += l(&self.parked_full);
        blocked_on[4] += l(&self.parked_idle);
        Sample {
            ms,
            reading: l(&self.reading),
            processing: l(&self.processing),
            sending: l(&self.sending),
            writing: l(&self.writing),
            blocked: blocked_on.iter().sum(),
            blocked_on,
            queued: l(&self.queued),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Milliseconds since the transfer started.
    pub ms: f64,
    pub reading: u32,
    pub processing: u32,
    pub sending: u32,
    /// Disk writes: the node's side; a sender's timeline has none (0) in this version.
    pub writing: u32,
    /// All blocked threads: the sum of `blocked_on`.
    pub blocked: u32,
    /// Blocked threads by what they wait for, in `Wait::ALL`'s order.
    pub blocked_on: [u32; 5],
    pub queued: u32,
}

/// At most this many samples are kept: when full, every other one is dropped and the interval
/// doubles, so a long transfer keeps a whole-run view in bounded memory.
const MAX_SAMPLES: usize = 4096;

pub struct Recorder {
    start: Instant,
    interval: Duration,
    next: Instant,
    samples: Vec<Sample>,
}

impl Recorder {
    pub fn new(interval: Duration) -> Recorder {
        let start = Instant::now();
        Recorder { start, interval, next: start, samples: Vec::new() }
    }

    /// Takes a sample if one is due.
    pub fn tick(&mut self, g: &Gauges) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.samples.push(g.snapshot(now.duration_since(self.start).as_secs_f64() * 1e3));
        self.next = now + self.interval;
        if self.samples.len() >= MAX_SAMPLES {
            let kept: Vec<Sample> = self.samples.iter().step_by(2).copied().collect();
            self.samples = kept;
            self.interval *= 2;
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn finish(mut self, g: &Gauges) -> Vec<Sample> {
        self.next = Instant::now();
        self.tick(g);
        self.samples
    }
}

/// One data stream's TCP_INFO at a moment of the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetSample {
    /// Microseconds since the transfer started.
    pub us: u64,
    pub stream: u16,
    pub tcp: TcpStats,
}

/// At most this many stream samples are kept (~1 MiB): when full, every other moment is
/// dropped and the interval doubles, as the thread-state `Recorder` does.
const MAX_NET_SAMPLES: usize = 16_384;

/// The network seen over the transfer: the kernel's TCP_INFO of every data stream, read every
/// `interval` (one getsockopt per stream: a few microseconds), so the report can draw each
/// stream's RTT, congestion window, delivery rate and retransmissions over time, not only at
/// the end. A socket with no TCP_INFO (TLS's relay end) gives no samples.
pub struct NetRecorder {
    start: Instant,
    interval: Duration,
    next: Instant,
    samples: Vec<NetSample>,
}

impl NetRecorder {
    /// The network changes more slowly than thread states: no finer than every 20 ms.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(20);

    pub fn new(start: Instant, interval: Duration) -> NetRecorder {
        NetRecorder { start, interval: interval.max(Self::MIN_INTERVAL), next: start, samples: Vec::new() }
    }

    /// Reads every stream if a sample is due.
    pub fn tick<S: AsFd>(&mut self, sockets: &[S]) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        let us = now.duration_since(self.start).as_micros() as u64;
        for (i, s) in sockets.iter().enumerate() {
            if let Ok(tcp) = tcpinfo::read(s) {
                self.samples.push(NetSample { us, stream: i as u16, tcp });
            }
        }
        if self.samples.len() >= MAX_NET_SAMPLES {
            self.thin();
        }
    }

    /// Keeps every other moment (all of its streams' samples), and samples half as often.
    fn thin(&mut self) {
        let mut moments = 0usize;
        let mut last = None;
        self.samples.retain(|s| {
            if last != Some(s.us) {
                last = Some(s.us);
                moments += 1;
            }
            moments % 2 == 1
        });
        self.interval *= 2;
    }

    /// The samples, with a last one of every stream now.
    pub fn finish<S: AsFd>(mut self, sockets: &[S]) -> Vec<NetSample> {
        self.next = Instant::now();
        self.tick(sockets);
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_31_the_network_recorder_samples_every_stream_and_stays_bounded() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let b = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_ra, _) = l.accept().unwrap();
        let (_rb, _) = l.accept().unwrap();
        let sockets = [a, b];
        let mut r = NetRecorder::new(Instant::now(), Duration::ZERO);
        assert_eq!(r.interval, NetRecorder::MIN_INTERVAL, "never finer than the minimum");
        r.interval = Duration::ZERO;
        for _ in 0..(MAX_NET_SAMPLES + 8) {
            r.tick(&sockets);
        }
        assert!(r.samples.len() < MAX_NET_SAMPLES, "thinned: {}", r.samples.len());
        assert!(r.interval.is_zero(), "zero doubled is zero; the test drives the ticks");
        let samples = r.finish(&sockets);
        // Each moment holds both streams, in order, and the moments only move forward.
        assert_eq!(samples.len() % 2, 0);
        for pair in samples.chunks(2) {
            assert_eq!((pair[0].stream, pair[1].stream), (0, 1));
            assert_eq!(pair[0].us, pair[1].us);
            assert!(pair[0].tcp.mss > 0);
        }
        assert!(samples.windows(2).all(|w| w[0].us <= w[1].us));
        // A socket without TCP_INFO gives nothing rather than zeros.
        let (u, _v) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(NetRecorder::new(Instant::now(), Duration::ZERO).finish(&[u]).is_empty());
    }

    #[test]
    fn guards_count_and_the_recorder_stays_bounded() {
        let g = Gauges::default();
        let a = g.reading();
        let b = g.reading();
        let _c = g.processing();
        g.set_queued(3);
        let s = g.snapshot(1.0);
        assert_eq!((s.reading, s.processing, s.queued), (2, 1, 3));
        drop(a);
        drop(b);
        assert_eq!(g.snapshot(0.0).reading, 0);
        let mut r = Recorder::new(Duration::from_nanos(1));
        for _ in 0..3 * MAX_SAMPLES {
            r.tick(&g);
        }
        assert!(r.interval() > Duration::ZERO, "the interval grew");
        assert!(r.finish(&g).len() < MAX_SAMPLES);
    }

    #[test]
    fn issue_35_a_blocked_thread_says_on_what_and_counts_once() {
        let g = Gauges::default();
        let sending = g.sending();
        let reading = g.reading();
        {
            let _w = g.instead(Busy::Sending, Wait::Socket);
            let _r = g.instead(Busy::Reading, Wait::Pool);
            let _q = g.blocked(Wait::Queue);
            g.set_parked(2, false);
            let s = g.snapshot(0.0);
            assert_eq!((s.sending, s.reading), (0, 0), "a waiting thread left its busy state");
            assert_eq!(s.blocked_on, [1, 1, 1, 0, 2]);
            assert_eq!(s.blocked, 5);
            g.set_parked(3, true);
            assert_eq!(g.snapshot(0.0).blocked_on, [1, 4, 1, 0, 0]);
        }
        g.set_parked(0, false);
        let s = g.snapshot(0.0);
        assert_eq!((s.sending, s.reading, s.blocked), (1, 1, 0), "back to busy once the wait ends");
        drop((sending, reading));
        let _t = g.sending();
        let _w = g.instead(Busy::Sending, Wait::Rate);
        assert_eq!(g.snapshot(0.0).blocked_on[Wait::ALL.iter().position(|&w| w == Wait::Rate).unwrap()], 1);
    }
}
