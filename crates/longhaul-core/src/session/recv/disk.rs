//! Where a receiver's time went: its disk writers' writes, fsyncs, busy and idle time, and its
//! network receivers' waits (a full write queue, the pool, a bandwidth limit). The node returns
//! these in its SUMMARY (`DiskStats`) so the sender's report can show both ends of the run.
//! Each is a relaxed atomic add of microseconds per block or per write: nothing the data path
//! would notice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::wire::frame::DiskStats;

#[derive(Default)]
pub(super) struct DiskTimes {
    pub(super) writers: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) write_us: AtomicU64,
    pub(super) fsync_us: AtomicU64,
    pub(super) busy_us: AtomicU64,
    pub(super) idle_us: AtomicU64,
    pub(super) queue_full_us: AtomicU64,
    pub(super) pool_us: AtomicU64,
    pub(super) rate_us: AtomicU64,
}

impl DiskTimes {
    /// Runs `f`, adding its wall time to `into`.
    pub(super) fn timed<T>(into: &AtomicU64, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        into.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        r
    }

    pub(super) fn stats(&self) -> DiskStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DiskStats {
            writers: l(&self.writers),
            bytes_written: l(&self.bytes_written),
            write_us: l(&self.write_us),
            fsync_us: l(&self.fsync_us),
            busy_us: l(&self.busy_us),
            idle_us: l(&self.idle_us),
            queue_full_us: l(&self.queue_full_us),
            pool_us: l(&self.pool_us),
            rate_us: l(&self.rate_us),
        }
    }
}
