//! The bytes a node's root holds, as `du -sb` counts its regular files (the node's own
//! directory aside), kept file by file as files take and give back space, and the capacity
//! they are checked against.
//!
//! A push reserves what it will add before any byte is written (`reserve`, the admission
//! check) and holds the reservation as a `Grant`. From then on every change is counted when it
//! happens: a temporary `.part` file counts, at the size it is allocated to, from the moment it
//! is created (its bytes come out of the grant); a file that takes its final name counts its
//! size less the size of the regular file it replaced, measured under a lock on that name
//! (`name_lock`), so two pushes writing the same name at once count it once; a removed
//! temporary file gives its bytes back. The reservation only gates admission; what a session
//! has not used of it is given back when it ends. Temporary files kept for a resume stay
//! counted (`parts`, `parts_bytes`) until a resume takes them over or the node reclaims them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::hash::Xxh3;

/// Locks on names being replaced, chosen by a hash of the name: enough that writers of
/// different files almost never wait on each other, few enough to cost nothing.
const NAME_LOCKS: usize = 256;

pub struct Ledger {
    capacity: Option<u64>,
    stored: AtomicU64,
    reserved: AtomicU64,
    /// Temporary files counted in `stored`, and their bytes.
    parts: AtomicU64,
    parts_bytes: AtomicU64,
    /// Makes `reserve`'s check and its addition one step.
    admitting: Mutex<()>,
    /// Held while the account is saved: saves from several threads share one temporary file.
    saving: Mutex<()>,
    names: Box<[Mutex<()>]>,
}

/// What the account file holds: stored bytes, then the temporary files among them and their
/// bytes (an older file has the first number only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub stored: u64,
    pub parts: u64,
    pub parts_bytes: u64,
}

impl Saved {
    pub fn parse(s: &str) -> Option<Saved> {
        let mut n = s.split_whitespace().map(|w| w.parse::<u64>().ok());
        let stored = n.next()??;
        let parts = n.next().unwrap_or(Some(0))?;
        let parts_bytes = n.next().unwrap_or(Some(0))?;
        Some(Saved { stored, parts, parts_bytes })
    }
}

impl Ledger {
    pub fn new(capacity: Option<u64>, saved: Saved) -> Arc<Ledger> {
        Arc::new(Ledger {
            capacity,
            stored: AtomicU64::new(saved.stored),
            reserved: AtomicU64::new(0),
            parts: AtomicU64::new(saved.parts),
            parts_bytes: AtomicU64::new(saved.parts_bytes),
            admitting: Mutex::new(()),
            saving: Mutex::new(()),
            names: (0..NAME_LOCKS).map(|_| Mutex::new(())).collect(),
        })
    }

    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::SeqCst)
    }

    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }

    /// Temporary files counted in `stored`, and their bytes.
    pub fn parts(&self) -> (u64, u64) {
        (self.parts.load(Ordering::SeqCst), self.parts_bytes.load(Ordering::SeqCst))
    }

    /// Bytes neither stored nor reserved; `None` without a capacity.
    pub fn free(&self) -> Option<u64> {
        self.capacity.map(|c| c.saturating_sub(self.stored()).saturating_sub(self.reserved()))
    }

    /// Hold while saving the account.
    pub fn saving(&self) -> MutexGuard<'_, ()> {
        self.saving.lock().expect("saving lock")
    }

    /// The account as the node saves it (`Saved::parse` reads it back).
    pub fn saved(&self) -> String {
        let (parts, bytes) = self.parts();
        format!("{} {parts} {bytes}\n", self.stored())
    }

    /// Reserves `needed` bytes, or refuses with E_CAPACITY naming needed and free bytes.
    pub fn reserve(self: &Arc<Self>, needed: u64) -> Result<Arc<Grant>> {
        let _one = self.admitting.lock().expect("admitting lock");
        if let Some(free) = self.free() {
            if needed > free {
                return Err(Error::Capacity { needed, free });
            }
        }
        self.reserved.fetch_add(needed, Ordering::SeqCst);
        Ok(Arc::new(Grant { ledger: Arc::clone(self), left: AtomicU64::new(needed) }))
    }

    /// Bytes that left the root (replaced or removed files): they no longer count as stored.
    pub fn release(&self, bytes: u64) {
        sub(&self.stored, bytes);
    }

    /// Temporary files the node removed (expired), `bytes` in all.
    pub fn reclaimed(&self, files: u64, bytes: u64) {
        sub(&self.parts, files);
        sub(&self.parts_bytes, bytes);
        sub(&self.stored, bytes);
    }

    /// The lock held while the name `key` (a path, as bytes) is looked at and replaced.
    pub fn name_lock(&self, key: &[&[u8]]) -> MutexGuard<'_, ()> {
        let mut h = Xxh3::new();
        for k in key {
            h.update(k);
            h.update(b"/");
        }
        self.names[(h.finish() % NAME_LOCKS as u64) as usize].lock().expect("name lock")
    }
}

fn sub(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(v.saturating_sub(n)));
}

/// The space reserved for one session, and where it counts what it takes and gives back.
pub struct Grant {
    ledger: Arc<Ledger>,
    /// Reserved bytes the session has not taken yet.
    left: AtomicU64,
}

impl Grant {
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// `bytes` more are stored: taken from the reservation as far as it goes (so they are not
    /// counted twice against the capacity), beyond it counted all the same.
    fn grow(&self, bytes: u64) {
        // Stored first, then unreserved: a `reserve` in between sees too little free, never
        // too much.
        self.ledger.stored.fetch_add(bytes, Ordering::SeqCst);
        let mut taken = 0;
        let _ = self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            taken = left.min(bytes);
            Some(left - taken)
        });
        sub(&self.ledger.reserved, taken);
    }

    fn resize(&self, from: u64, to: u64) {
        if to >= from {
            self.grow(to - from);
        } else {
            self.ledger.release(from - to);
        }
    }

    /// A new temporary file, counted at `bytes` (the size it is allocated to).
    pub fn part_made(&self, bytes: u64) {
        self.ledger.parts.fetch_add(1, Ordering::SeqCst);
        self.ledger.parts_bytes.fetch_add(bytes, Ordering::SeqCst);
        self.grow(bytes);
    }

    /// A temporary file already counted at `from` bytes (kept by an earlier attempt, or
    /// measured when kept) is counted at `to` now.
    pub fn part_resized(&self, from: u64, to: u64) {
        self.ledger.parts_bytes.fetch_add(to, Ordering::SeqCst);
        sub(&self.ledger.parts_bytes, from);
        self.resize(from, to);
    }

    /// A temporary file counted at `bytes` was removed.
    pub fn part_removed(&self, bytes: u64) {
        self.ledger.reclaimed(1, bytes);
    }

    /// A file of `size` bytes took its final name, where a regular file of `old` bytes was (0:
    /// none). `part` is what its temporary file was counted at; `None` if it had none (an
    /// O_TMPFILE linked in, a symlink).
    pub fn named(&self, part: Option<u64>, size: u64, old: u64) {
        let was = match part {
            Some(p) => {
                sub(&self.ledger.parts, 1);
                sub(&self.ledger.parts_bytes, p);
                p
            }
            None => 0,
        };
        self.resize(was + old, size);
    }

    /// Gives back what the session has not taken of its reservation; it ends.
    pub fn finish(&self) {
        sub(&self.ledger.reserved, self.left.swap(0, Ordering::SeqCst));
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(capacity: u64, stored: u64) -> Arc<Ledger> {
        Ledger::new(Some(capacity), Saved { stored, parts: 0, parts_bytes: 0 })
    }

    /// issue 29: a part counts against the capacity from its creation, a file counts its size
    /// less what it replaced, and the unused reservation goes back when the session ends.
    #[test]
    fn parts_and_names_are_counted_as_they_happen() {
        let l = ledger(10_000, 1_000);
        let g = l.reserve(3_000).unwrap();
        assert_eq!((l.stored(), l.reserved(), l.free()), (1_000, 3_000, Some(6_000)));
        g.part_made(2_000);
        assert_eq!((l.stored(), l.reserved(), l.parts()), (3_000, 1_000, (1, 2_000)));
        // The part replaces a file of 500 bytes.
        g.named(Some(2_000), 2_000, 500);
        assert_eq!((l.stored(), l.parts()), (2_500, (0, 0)));
        // An O_TMPFILE of 1,500 over nothing: more than is left of the reservation.
        g.named(None, 1_500, 0);
        assert_eq!((l.stored(), l.reserved()), (4_000, 0));
        g.part_made(100);
        g.part_removed(100);
        assert_eq!((l.stored(), l.parts()), (4_000, (0, 0)));
        drop(g);
        assert_eq!((l.reserved(), l.free()), (0, Some(6_000)));
    }

    #[test]
    fn the_reservation_gates_admission_and_unused_bytes_return() {
        let l = ledger(5_000, 1_000);
        let g = l.reserve(3_000).unwrap();
        let e = l.reserve(1_001).map(|_| ()).unwrap_err();
        assert_eq!(e.code(), "E_CAPACITY");
        assert!(e.to_string().contains("1001") && e.to_string().contains("1000"), "{e}");
        g.part_made(1_000);
        g.finish();
        assert_eq!((l.stored(), l.reserved(), l.free()), (2_000, 0, Some(3_000)));
        // Kept parts hold their room: a session that needs it is refused.
        assert_eq!(l.reserve(3_001).map(|_| ()).unwrap_err().code(), "E_CAPACITY");
        drop(g);
        assert_eq!(l.reserved(), 0, "finish and drop give back once");
        // Reclaimed, the room is free again.
        l.reclaimed(1, 1_000);
        assert_eq!((l.stored(), l.parts(), l.free()), (1_000, (0, 0), Some(4_000)));
    }

    /// issue 29: the 178 MB counted against 94 MB on disk. Two sessions write the same names
    /// at once, each replacing what the other wrote: counted under the name lock, what is
    /// stored is what the names hold, whoever wins.
    #[test]
    fn concurrent_sessions_naming_the_same_files_count_each_name_once() {
        use std::collections::HashMap;
        let l = ledger(u64::MAX, 0);
        let disk: Mutex<HashMap<u32, u64>> = Mutex::new(HashMap::new());
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (l, disk) = (&l, &disk);
                s.spawn(move || {
                    let g = l.reserve(0).unwrap();
                    for name in 0..2_000u32 {
                        let size = 100 + t * 10 + name as u64 % 7;
                        g.part_made(size);
                        let _held = g.ledger().name_lock(&[b"dest", &name.to_le_bytes()]);
                        let old = disk.lock().unwrap().get(&name).copied().unwrap_or(0);
                        disk.lock().unwrap().insert(name, size);
                        g.named(Some(size), size, old);
                    }
                });
            }
        });
        let on_disk: u64 = disk.lock().unwrap().values().sum();
        assert_eq!((l.stored(), l.parts()), (on_disk, (0, 0)));
    }

    #[test]
    fn the_saved_account_reads_back_old_and_new() {
        let l = Ledger::new(None, Saved { stored: 7, parts: 2, parts_bytes: 5 });
        assert_eq!(Saved::parse(&l.saved()), Some(Saved { stored: 7, parts: 2, parts_bytes: 5 }));
        assert_eq!(Saved::parse("123\n"), Some(Saved { stored: 123, parts: 0, parts_bytes: 0 }));
        assert_eq!(Saved::parse("x"), None);
        assert_eq!(Saved::parse(""), None);
    }
}
