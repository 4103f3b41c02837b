//! The thread-state timeline: how many threads are reading, processing, sending, writing and
//! blocked, and how many blocks are queued, sampled every few milliseconds (Vyukov's profiles).
//! Threads update `Gauges` with RAII guards; the coordinating thread samples them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Gauges {
    reading: AtomicUsize,
    processing: AtomicUsize,
    sending: AtomicUsize,
    writing: AtomicUsize,
    blocked: AtomicUsize,
    queued: AtomicUsize,
}

pub struct GaugeGuard<'a>(&'a AtomicUsize);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gauges {
    fn enter(a: &AtomicUsize) -> GaugeGuard<'_> {
        a.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(a)
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
    pub fn blocked(&self) -> GaugeGuard<'_> {
        Self::enter(&self.blocked)
    }
    pub fn set_blocked(&self, n: usize) {
        self.blocked.store(n, Ordering::Relaxed);
    }
    pub fn set_queued(&self, n: usize) {
        self.queued.store(n, Ordering::Relaxed);
    }
    pub fn snapshot(&self, ms: f64) -> Sample {
        let l = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u32;
        Sample {
            ms,
            reading: l(&self.reading),
            processing: l(&self.processing),
            sending: l(&self.sending),
            writing: l(&self.writing),
            blocked: l(&self.blocked),
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
    pub blocked: u32,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
