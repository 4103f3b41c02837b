//! The link model, pure: what happens to a packet offered at `now`. A link has a rate (its
//! serialisation: a packet leaves once the link has sent the ones before it), a drop-tail queue
//! in bytes in front of it (a packet that would wait behind more than that is dropped, as a
//! router's full buffer drops it), a one-way delay (propagation), optional jitter that keeps the
//! order, and random loss drawn from a seeded generator, so a run can be repeated.

use std::time::{Duration, Instant};

/// A link's settings, one direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Bits per second; 0 is unlimited.
    pub rate_bps: u64,
    /// One-way delay.
    pub delay: Duration,
    /// The queue in front of the link, in bytes (drop-tail).
    pub queue_bytes: u64,
    /// Probability that a packet is lost, 0..=1.
    pub loss: f64,
    /// Up to this much more delay, uniformly drawn, without reordering.
    pub jitter: Duration,
}

/// What becomes of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at this instant.
    Deliver(Instant),
    /// Lost at random (`loss`).
    Lost,
    /// Dropped at the tail of a full queue.
    Dropped,
}

/// xorshift64*: small, fast, and the same sequence for the same seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction of the link.
#[derive(Debug)]
pub struct Link {
    shape: Shape,
    rng: Rng,
    /// When the link finishes sending what it has accepted.
    free_at: Option<Instant>,
    last_due: Option<Instant>,
}

impl Link {
    pub fn new(shape: Shape, seed: u64) -> Link {
        Link { shape, rng: Rng::new(seed), free_at: None, last_due: None }
    }

    pub fn offer(&mut self, now: Instant, len: usize) -> Fate {
        if self.shape.loss > 0.0 && self.rng.unit() < self.shape.loss {
            return Fate::Lost;
        }
        let start = self.free_at.map_or(now, |f| f.max(now));
        let sent = if self.shape.rate_bps > 0 {
            let bytes_per_s = self.shape.rate_bps as f64 / 8.0;
            let backlog = (start - now).as_secs_f64() * bytes_per_s;
            if backlog + len as f64 > self.shape.queue_bytes as f64 {
                return Fate::Dropped;
            }
            let end = start + Duration::from_secs_f64(len as f64 / bytes_per_s);
            self.free_at = Some(end);
            end
        } else {
            now
        };
        let jitter = if self.shape.jitter.is_zero() { Duration::ZERO } else { self.shape.jitter.mul_f64(self.rng.unit()) };
        let due = (sent + self.shape.delay + jitter).max(self.last_due.unwrap_or(now));
        self.last_due = Some(due);
        Fate::Deliver(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rate_bps: u64, delay_ms: u64, queue_bytes: u64, loss: f64) -> Shape {
        Shape { rate_bps, delay: Duration::from_millis(delay_ms), queue_bytes, loss, jitter: Duration::ZERO }
    }

    #[test]
    fn an_idle_link_delivers_after_the_delay_and_the_packet_time() {
        let t0 = Instant::now();
        let mut l = Link::new(shape(8_000_000, 25, 1 << 20, 0.0), 1);
        // 1,000 bytes at 1 MB/s: 1 ms on the wire, then 25 ms of propagation.
        assert_eq!(l.offer(t0, 1000), Fate::Deliver(t0 + Duration::from_millis(26)));
    }

    #[test]
    fn back_to_back_packets_leave_at_the_link_rate_and_a_full_queue_drops() {
        let t0 = Instant::now();
        // 10 packets of 1,000 bytes fit a 10,000-byte queue; the 11th waits behind 10,000.
        let mut l = Link::new(shape(8_000_000, 0, 10_000, 0.0), 1);
        let dues: Vec<Fate> = (0..11).map(|_| l.offer(t0, 1000)).collect();
        for (i, f) in dues[..10].iter().enumerate() {
            assert_eq!(*f, Fate::Deliver(t0 + Duration::from_millis(i as u64 + 1)), "packet {i}");
        }
        assert_eq!(dues[10], Fate::Dropped);
        // Once the queue has drained, packets pass again.
        assert!(matches!(l.offer(t0 + Duration::from_millis(10), 1000), Fate::Deliver(_)));
    }

    #[test]
    fn loss_follows_its_probability_and_its_seed() {
        let t0 = Instant::now();
        let count = |seed| {
            let mut l = Link::new(shape(0, 0, 0, 0.01), seed);
            (0..200_000).filter(|_| l.offer(t0, 100) == Fate::Lost).count()
        };
        let lost = count(7);
        assert!((1800..2200).contains(&lost), "{lost} of 200,000 at 1%");
        assert_eq!(count(7), lost, "the same seed loses the same packets");
        assert_ne!(count(8), lost);
    }

    #[test]
    fn jitter_never_reorders() {
        let t0 = Instant::now();
        let mut l = Link::new(Shape { jitter: Duration::from_millis(5), ..shape(0, 10, 0, 0.0) }, 3);
        let mut last = t0;
        for i in 0..1000 {
            let Fate::Deliver(due) = l.offer(t0 + Duration::from_micros(i * 10), 1500) else { panic!() };
            assert!(due >= last);
            assert!(due <= t0 + Duration::from_micros(i * 10) + Duration::from_millis(15));
            last = due;
        }
    }
}
