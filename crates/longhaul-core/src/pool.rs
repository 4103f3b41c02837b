//! A pre-allocated pool of page-aligned, equal-sized buffers, mlock'd when the process may lock
//! that much memory. Every byte the engine stages goes through here, so memory use is bounded
//! by the pool whatever the dataset size: when the pool is empty, the taker waits.
//!
//! The pool is one anonymous mapping cut into slots; a `PoolBuf` owns one slot exclusively and
//! hands it back on drop. mlock failure is not an error: the pool works unlocked and records
//! why, for the summary and `doctor`.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::probe;

pub struct Pool {
    base: NonNull<u8>,
    map_len: usize,
    buf_size: usize,
    count: usize,
    free: Mutex<Vec<usize>>,
    ready: Condvar,
    locked: bool,
    lock_fallback: Option<String>,
}

// SAFETY: the mapping is owned by the pool for its whole life, and each slot is reachable only
// through the one `PoolBuf` that took it from the free list, so sharing the pool is sound.
unsafe impl Send for Pool {}
// SAFETY: as above; the free list is behind a mutex.
unsafe impl Sync for Pool {}

impl Pool {
    /// `count` buffers of `buf_size` bytes (rounded up to whole pages).
    pub fn new(buf_size: usize, count: usize) -> Result<Arc<Pool>> {
        if buf_size == 0 || count == 0 {
            return Err(Error::Usage("buffer pool needs at least one non-empty buffer".into()));
        }
        let page = rustix::param::page_size();
        let buf_size = buf_size.div_ceil(page) * page;
        let map_len = buf_size.checked_mul(count).ok_or_else(|| Error::Usage("buffer pool size overflows".into()))?;
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .map_err(|e| Error::io("mmap buffer pool", b"", e.into()))?;
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap returns a non-null address");
        let (locked, lock_fallback) = match probe::mlock_allowed() {
            Err(reason) => (false, Some(reason)),
            // SAFETY: the range is the mapping made above.
            Ok(()) => match unsafe { rustix::mm::mlock(ptr, map_len) } {
                Ok(()) => (true, None),
                Err(e) => {
                    (false, Some(format!("mlock of {} MiB failed: {e} (RLIMIT_MEMLOCK {})", map_len >> 20, probe::memlock_limit_text())))
                }
            },
        };
        if !locked {
            // Fault the pages in now so the first transfer does not pay for it, and so the
            // RSS the pool costs shows up at once.
            // SAFETY: the whole range is mapped writable and not yet shared with anyone.
            unsafe { std::ptr::write_bytes(base.as_ptr(), 0, map_len) };
        }
        Ok(Arc::new(Pool {
            base,
            map_len,
            buf_size,
            count,
            free: Mutex::new((0..count).rev().collect()),
            ready: Condvar::new(),
            locked,
            lock_fallback,
        }))
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }
    pub fn count(&self) -> usize {
        self.count
    }
    pub fn bytes(&self) -> usize {
        self.map_len
    }
    pub fn locked(&self) -> bool {
        self.locked
    }
    pub fn lock_fallback(&self) -> Option<&str> {
        self.lock_fallback.as_deref()
    }
    pub fn available(&self) -> usize {
        self.free.lock().expect("pool lock").len()
    }

    /// Like `new`, but the pages are first touched (and locked) by a thread bound to `cpu`, so
    /// they are allocated on that CPU's NUMA node.
    pub fn new_near(buf_size: usize, count: usize, cpu: Option<usize>) -> Result<Arc<Pool>> {
        let Some(cpu) = cpu else { return Pool::new(buf_size, count) };
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = crate::place::placement::bind_current_thread(cpu);
                Pool::new(buf_size, count)
            })
            .join()
            .unwrap_or_else(|p| Err(crate::panic::from_payload("pool allocation", p)))
        })
    }

    /// Takes a buffer, waiting while the pool is empty. Gives up with `Cancelled` once `cancel`
    /// is set (checked every 50 ms, so a cancelled transfer never hangs here).
    pub fn take(self: &Arc<Self>, cancel: &AtomicBool) -> Result<PoolBuf> {
        let mut free = self.free.lock().expect("pool lock");
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            if let Some(slot) = free.pop() {
                return Ok(PoolBuf { pool: Arc::clone(self), slot, len: self.buf_size });
            }
            free = self.ready.wait_timeout(free, Duration::from_millis(50)).expect("pool lock").0;
        }
    }

    /// Takes a buffer if one is free now.
    pub fn try_take(self: &Arc<Self>) -> Option<PoolBuf> {
        let slot = self.free.lock().expect("pool lock").pop()?;
        Some(PoolBuf { pool: Arc::clone(self), slot, len: self.buf_size })
    }

    fn give_back(&self, slot: usize) {
        self.free.lock().expect("pool lock").push(slot);
        self.ready.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: every PoolBuf holds an Arc to the pool, so none is alive; the range is ours.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}

/// One buffer of the pool, owned exclusively until dropped. `len` is the part in use.
pub struct PoolBuf {
    pool: Arc<Pool>,
    slot: usize,
    len: usize,
}

impl PoolBuf {
    pub fn capacity(&self) -> usize {
        self.pool.buf_size
    }
    /// Sets the length in use, at most the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.pool.buf_size, "PoolBuf::set_len past capacity");
        self.len = len;
    }
}

impl Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the slot lies inside the mapping, is len <= buf_size long, and this PoolBuf
        // is its only owner.
        unsafe { std::slice::from_raw_parts(self.pool.base.as_ptr().add(self.slot * self.pool.buf_size), self.len) }
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.pool.base.as_ptr().add(self.slot * self.pool.buf_size), self.len) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.pool.give_back(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn never_hands_out_more_than_its_buffers() {
        let pool = Pool::new(4096, 3).unwrap();
        let cancel = AtomicBool::new(false);
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..8 {
                let (pool, live, peak, cancel) = (&pool, &live, &peak, &cancel);
                s.spawn(move || {
                    for i in 0..200 {
                        let mut b = pool.take(cancel).unwrap();
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        b[0] = (t * 31 + i) as u8;
                        b[4095] = b[0];
                        std::thread::yield_now();
                        assert_eq!(b[0], b[4095], "two holders shared a slot");
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3, "peak {} buffers out of 3", peak.load(Ordering::SeqCst));
        assert_eq!(pool.available(), 3);
        assert_eq!(pool.bytes(), 3 * 4096);
    }

    #[test]
    fn buffers_are_page_aligned_and_rounded_up() {
        let pool = Pool::new(5000, 2).unwrap();
        let page = rustix::param::page_size();
        assert_eq!(pool.buf_size() % page, 0);
        let a = pool.try_take().unwrap();
        let b = pool.try_take().unwrap();
        assert!(pool.try_take().is_none(), "a third buffer from a pool of two");
        assert_eq!(a.as_ptr() as usize % page, 0);
        assert_eq!(b.as_ptr() as usize % page, 0);
        drop(a);
        assert!(pool.try_take().is_some());
    }

    #[test]
    fn take_gives_up_when_cancelled() {
        let pool = Pool::new(4096, 1).unwrap();
        let _held = pool.try_take().unwrap();
        let cancel = AtomicBool::new(true);
        assert!(matches!(pool.take(&cancel), Err(Error::Cancelled)));
    }
}
