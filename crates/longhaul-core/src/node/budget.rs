//! The node's memory budget: one number of bytes for the buffer pools of all its transfers and
//! the content indexes they hold. A transfer reserves its share when it is admitted, before it
//! allocates anything, and gives it back when its `Reservation` drops; one that does not fit
//! now is refused with E_BUSY and a retry-after hint, one that could never fit with E_LIMIT.
//! What the node holds for its whole life (the push sessions' shared pool) is set aside once
//! at start.

use std::sync::Mutex;

use crate::error::{Error, Result};

/// The hint an E_BUSY refusal carries. Memory comes back when a running transfer ends, which
/// the node cannot foresee; a few seconds lets short transfers finish without a client
/// hammering the node (the SDK's own back-off starts at 1 s).
pub const RETRY_AFTER_SECS: u64 = 5;

/// What one entry of a content index costs a transfer beyond its encoded bytes: the decoded
/// entry and the file state kept for it (bench/RESULTS.md, "memory per file": ~0.18 KiB a file
/// on the node for a push, all told).
pub const PER_ENTRY: u64 = 160;

/// A transfer's share for its index: the encoded bytes and the entries held decoded.
pub fn index_share(encoded_len: usize, entries: usize) -> u64 {
    encoded_len as u64 + entries as u64 * PER_ENTRY
}

pub struct Budget {
    limit: u64,
    /// Set aside at start for the node's whole life.
    fixed: u64,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    bytes: u64,
    transfers: u64,
}

impl Budget {
    /// `limit` bytes, of which `fixed` are spoken for from the start; fixed over the limit is a
    /// usage error (the node could admit nothing).
    pub fn new(limit: u64, fixed: u64) -> Result<Budget> {
        if fixed > limit {
            return Err(Error::Usage(format!(
                "memory {} is less than the push pool's {} bytes (pool buffers x max block): raise memory or lower the pool",
                limit, fixed
            )));
        }
        Ok(Budget { limit, fixed, held: Mutex::new(Held::default()) })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now: the fixed part and every live reservation.
    pub fn held(&self) -> u64 {
        self.fixed + self.held.lock().expect("budget lock").bytes
    }

    /// Reserves `bytes` for one transfer, or refuses it: E_LIMIT when it is more than the whole
    /// budget beside the fixed part (waiting would not help), E_BUSY with a retry-after hint
    /// when the running transfers hold too much of it now.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation<'_>> {
        let mut held = self.held.lock().expect("budget lock");
        if let Some(e) = self.refusal(&held, bytes) {
            return Err(e);
        }
        held.bytes += bytes;
        held.transfers += 1;
        Ok(Reservation { budget: self, bytes })
    }

    /// Refuses, as `reserve` would, a transfer that could not have even the least share (one
    /// page of pool) now: a pull or a copy asks before it scans its source, so a node whose
    /// budget is spoken for does not build an index only to refuse it.
    pub fn check_room(&self) -> Result<()> {
        let held = self.held.lock().expect("budget lock");
        self.refusal(&held, rustix::param::page_size() as u64).map_or(Ok(()), Err)
    }

    fn refusal(&self, held: &Held, bytes: u64) -> Option<Error> {
        let room = self.limit - self.fixed;
        if bytes > room {
            return Some(Error::Limit { what: "memory for one transfer", limit: room, got: bytes });
        }
        (held.bytes + bytes > room).then(|| {
            Error::Busy(format!(
                "its memory budget has no room: {} of {} bytes are held (the push pool, and {} running transfer{}), \
                 this one needs {}; retry after {} s",
                self.fixed + held.bytes,
                self.limit,
                held.transfers,
                if held.transfers == 1 { "" } else { "s" },
                bytes,
                RETRY_AFTER_SECS
            ))
        })
    }
}

/// One transfer's share of the budget, given back on drop.
pub struct Reservation<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Reservation<'_> {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().expect("budget lock");
        held.bytes -= self.bytes;
        held.transfers -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 29: transfers are admitted while their shares fit beside the fixed pool, refused
    /// with E_BUSY (and the hint) past it, and a dropped reservation makes room again.
    #[test]
    fn reservations_fit_beside_the_fixed_part_and_come_back_on_drop() {
        let b = Budget::new(100, 40).unwrap();
        assert_eq!(b.held(), 40);
        let r1 = b.reserve(30).unwrap();
        let r2 = b.reserve(30).unwrap();
        assert_eq!(b.held(), 100);
        let e = b.reserve(1).err().unwrap();
        assert_eq!(e.code(), "E_BUSY");
        assert!(e.to_string().contains(&format!("retry after {RETRY_AFTER_SECS} s")), "{e}");
        assert!(e.to_string().contains("100 of 100 bytes are held (the push pool, and 2 running transfers)"), "{e}");
        drop(r1);
        assert_eq!(b.held(), 70);
        let r3 = b.reserve(30).unwrap();
        assert_eq!(r3.bytes(), 30);
        drop((r2, r3));
        assert_eq!(b.held(), 40);
    }

    /// issue 29: a pull or copy is refused before its scan when not even one page is free.
    #[test]
    fn check_room_refuses_a_full_budget_before_any_scan() {
        let mib = 1 << 20;
        let b = Budget::new(10 * mib, 4 * mib).unwrap();
        b.check_room().unwrap();
        let r = b.reserve(6 * mib - 1).unwrap();
        let e = b.check_room().unwrap_err();
        assert_eq!(e.code(), "E_BUSY");
        assert!(e.to_string().contains("1 running transfer)"), "{e}");
        drop(r);
        b.check_room().unwrap();
    }

    /// issue 29: a share larger than the whole budget beside the fixed part could never be
    /// admitted: E_LIMIT, not an E_BUSY a client would retry for ever.
    #[test]
    fn a_share_over_the_whole_room_is_a_limit_not_busy() {
        let b = Budget::new(100, 40).unwrap();
        let e = b.reserve(61).err().unwrap();
        assert_eq!(e.code(), "E_LIMIT");
        assert_eq!(b.held(), 40);
        assert!(b.reserve(60).is_ok());
    }

    #[test]
    fn a_fixed_part_over_the_limit_is_a_usage_error() {
        assert_eq!(Budget::new(10, 11).err().unwrap().code(), "E_USAGE");
        assert!(Budget::new(10, 10).is_ok());
    }

    /// issue 29: concurrent reservations never overshoot the limit.
    #[test]
    fn concurrent_reservations_never_overshoot() {
        let b = Budget::new(1000, 0).unwrap();
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let Ok(r) = b.reserve(300) {
                            assert!(b.held() <= 1000);
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            drop(r);
                        }
                    }
                });
            }
        });
        assert!(admitted.into_inner() > 0);
        assert_eq!(b.held(), 0);
    }
}
