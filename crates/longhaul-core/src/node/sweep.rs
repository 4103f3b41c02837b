//! The sweep of journals whose push failed longer than the resume TTL ago, and of the
//! temporary files they kept.

use super::Inner;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the node looks for expired journals: a quarter of the resume TTL, so that kept
/// files go within 1.25 TTL, and at least hourly, however long the TTL (one readdir of the
/// journal directory and a stat per journal: nothing to save by waiting longer).
pub(super) fn sweep_every(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(3600))
}

pub(super) fn sweep_loop(inner: &Inner) {
    let every = sweep_every(inner.opts.resume_ttl);
    let mut next = Instant::now() + every;
    while !inner.closing.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            // Unparked by `close`.
            std::thread::park_timeout(next - now);
            continue;
        }
        sweep(inner);
        next = Instant::now() + every;
    }
}

/// Removes the journals of pushes that failed longer than the resume TTL ago and the
/// temporary files they kept, and takes those files out of the account.
pub(super) fn sweep(inner: &Inner) {
    let mut claimed = Vec::new();
    let removed =
        crate::session::recv::journal::remove_stale(inner.root_fd.as_fd(), inner.journal_dir.as_fd(), inner.opts.resume_ttl, &mut |key| {
            // A running push's journal is not stale, however long since its last block; and no
            // push may take one up while its files go.
            let free = inner.journals.lock().expect("journals lock").insert(key.to_owned());
            if free {
                claimed.push(key.to_owned());
            }
            free
        });
    let mut journals = inner.journals.lock().expect("journals lock");
    for k in &claimed {
        journals.remove(k);
    }
    drop(journals);
    if removed.files > 0 {
        inner.state.ledger().reclaimed(removed.files, removed.bytes);
        inner.state.save();
    }
}
