//! Bandwidth limits as token buckets. A bucket fills at `rate` bytes per second up to a burst of
//! a tenth of a second's worth; taking more than it holds leaves it in debt and the taker sleeps
//! the debt off, so over any long interval the bytes passed stay within `rate x time + burst`
//! whatever the sizes taken. All of a peer's streams share that peer's bucket, and every
//! transfer shares the node's total bucket.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Bucket {
    /// Bytes per second.
    rate: u64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    passed: AtomicU64,
    /// Bytes passed, sampled once a second, for `utilisation`.
    window: Mutex<(u64, Instant, f64)>,
}

impl Bucket {
    pub fn new(rate: u64) -> Arc<Bucket> {
        let burst = (rate as f64 / 10.0).max(64.0 * 1024.0);
        let now = Instant::now();
        Arc::new(Bucket { rate, burst, state: Mutex::new((burst, now)), passed: AtomicU64::new(0), window: Mutex::new((0, now, 0.0)) })
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes' worth of tokens and returns how long the caller must wait.
    fn debit(&self, n: u64) -> Duration {
        self.passed.fetch_add(n, Ordering::Relaxed);
        let mut st = self.state.lock().expect("bucket lock");
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.rate as f64;
        st.0 = (st.0 + refill).min(self.burst) - n as f64;
        st.1 = now;
        if st.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-st.0 / self.rate as f64)
        }
    }

    /// The share of the limit used over the last second or so (0..=1, a little above while a
    /// burst drains).
    pub fn utilisation(&self) -> f64 {
        let mut w = self.window.lock().expect("window lock");
        let now = Instant::now();
        let dt = now.duration_since(w.1).as_secs_f64();
        if dt >= 1.0 {
            let passed = self.passed();
            w.2 = (passed - w.0) as f64 / dt / self.rate as f64;
            *w = (passed, now, w.2);
        }
        w.2
    }
}

/// The buckets one connection's bytes pass through (the node's total, the peer's).
#[derive(Clone, Default)]
pub struct Throttle {
    buckets: Vec<Arc<Bucket>>,
}

impl Throttle {
    pub fn new(buckets: Vec<Arc<Bucket>>) -> Throttle {
        Throttle { buckets }
    }

    pub fn is_unlimited(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Blocks until `n` bytes may pass, or `stop` is set (then returns false).
    pub fn take(&self, n: u64, stop: &AtomicBool) -> bool {
        let wait = self.buckets.iter().map(|b| b.debit(n)).max().unwrap_or(Duration::ZERO);
        let until = Instant::now() + wait;
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Parses `1G`, `200M`, `64K`, `1048576` (bytes; K, M, G, T are powers of 1024; a trailing
/// `B` or `iB` is allowed).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        (i, 't' | 'T') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let bytes = v * mult as f64;
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("200M"), Some(200 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("500GiB"), Some(500 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("-1M"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn a_bucket_holds_its_rate_over_many_takes() {
        // 8 MiB/s; 40 takes of 256 KiB = 10 MiB, of which the burst (0.8 MiB) is free: the
        // rest must take (10 - 0.8) / 8 = 1.15 s.
        let b = Bucket::new(8 << 20);
        let t = Throttle::new(vec![b.clone()]);
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        for _ in 0..40 {
            assert!(t.take(256 << 10, &stop));
        }
        let secs = start.elapsed().as_secs_f64();
        assert!((1.0..2.5).contains(&secs), "took {secs} s");
        assert_eq!(b.passed(), 10 << 20);
    }

    #[test]
    fn a_stopped_take_returns_at_once() {
        let t = Throttle::new(vec![Bucket::new(1024)]);
        let stop = AtomicBool::new(false);
        assert!(t.take(1, &stop));
        stop.store(true, Ordering::Relaxed);
        let start = Instant::now();
        assert!(!t.take(1 << 20, &stop));
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}
