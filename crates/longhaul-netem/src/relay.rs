//! One direction of the relay: packets read from one TUN device, held until the link model
//! says they arrive, written to the other. The queue holds at most what the link has in flight
//! (a bandwidth-delay product and the drop-tail queue), so memory follows the link's size.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::link::{Fate, Link};

/// What one direction did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    pub dropped: u64,
    /// Dropped by the kernel at the sending side's TUN device before the relay read them
    /// (its queue full while the relay was late to run): loss the link model did not choose.
    pub tun_dropped: u64,
}

impl Counters {
    pub fn json(&self) -> String {
        format!(
            "{{\"packets\":{},\"bytes\":{},\"lost\":{},\"dropped\":{},\"tunDropped\":{}}}",
            self.packets, self.bytes, self.lost, self.dropped, self.tun_dropped
        )
    }
}

/// The longest a relay sleeps: how soon it notices `stop`.
const WAKE: Duration = Duration::from_millis(50);

/// Moves packets from `src` to `dst` through `link` until `stop`.
pub fn run(src: &OwnedFd, dst: &OwnedFd, mut link: Link, stop: &AtomicBool) -> Counters {
    let mut c = Counters::default();
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.front().is_some_and(|(due, _)| *due <= now) {
            let (_, p) = queue.pop_front().expect("a packet at the front");
            // A TUN write does not block; a refused one is a packet lost, as on a real link.
            // SAFETY: `p` is a live buffer of `p.len()` bytes and `dst` an open descriptor.
            let _ = unsafe { libc::write(dst.as_raw_fd(), p.as_ptr().cast(), p.len()) };
            spare.push(p);
        }
        let wait = queue.front().map_or(WAKE, |(due, _)| due.saturating_duration_since(now).min(WAKE));
        let ts = libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as libc::c_long };
        let mut pfd = libc::pollfd { fd: src.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
        let ready = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if ready <= 0 || pfd.revents & libc::POLLIN == 0 {
            continue;
        }
        // The descriptor is non-blocking: read every packet waiting.
        loop {
            // SAFETY: `buf` is a live buffer of `buf.len()` bytes and `src` an open descriptor.
            let n = unsafe { libc::read(src.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let n = n as usize;
            c.packets += 1;
            c.bytes += n as u64;
            match link.offer(Instant::now(), n) {
                Fate::Deliver(due) => {
                    let mut p = spare.pop().unwrap_or_default();
                    p.clear();
                    p.extend_from_slice(&buf[..n]);
                    queue.push_back((due, p));
                }
                Fate::Lost => c.lost += 1,
                Fate::Dropped => c.dropped += 1,
            }
        }
    }
    c
}
