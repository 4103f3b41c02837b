//! Types both ends of a transfer report, and how a caller watches one.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A progress snapshot, taken by the coordinating thread every `progress_interval`.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Bytes at the destination so far: those sent this time and those it held already.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes that travelled in this run (not those resumed or skipped as already there): what
    /// a rate is computed from.
    pub bytes_moved: u64,
    /// Files whose every byte has been sent (counted up to the lowest block not yet sent).
    pub files_done: u64,
    pub files_total: u64,
    /// Files with blocks under way and not all done (0 where a side cannot tell).
    pub files_in_flight: u64,
    pub seconds: f64,
    pub per_stream_bytes: Vec<u64>,
}

/// Which fast paths a transfer used, and why not where it fell back.
#[derive(Clone, Debug, Default)]
pub struct FastPaths {
    pub sendfile: bool,
    pub sendfile_fallback: Option<String>,
    pub mlock: bool,
    pub mlock_fallback: Option<String>,
}

/// How a caller watches a running transfer: the flag that cancels it and the callback that
/// sees its progress.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    pub cancel: &'a AtomicBool,
    pub on_progress: &'a (dyn Fn(&Progress) + Sync),
}

impl Watch<'_> {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Raised once by a thread that has finished; a watcher waiting on it (`every`) wakes at once
/// rather than at its next tick, so a transfer of one byte does not wait out a tick at its end.
#[derive(Default)]
pub struct Done {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Done {
    pub fn raise(&self) {
        *self.flag.lock().expect("done lock") = true;
        self.cond.notify_all();
    }

    /// Raises it when the guard drops: at the end of a thread's closure, a panic included.
    pub fn on_drop(&self) -> impl Drop + '_ {
        struct Guard<'a>(&'a Done);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.raise();
            }
        }
        Guard(self)
    }

    /// Waits up to `tick`; whether it is raised.
    fn wait(&self, tick: Duration) -> bool {
        let flag = self.flag.lock().expect("done lock");
        *self.cond.wait_timeout_while(flag, tick, |raised| !*raised).expect("done lock").0
    }
}

/// The one wait behind every progress report and cancel watch: every `tick`, until `done` is
/// raised, runs `each`, which may end the wait early with `ControlFlow::Break`. The engine's
/// threads poll flags rather than block on them, so a watcher costs a wake-up per tick, not a
/// thread per waiter; `done` ends the wait as soon as it is raised, after one last `each` (a
/// watcher's last look: a source file's final check, the last progress).
pub fn every(tick: Duration, done: &Done, mut each: impl FnMut() -> ControlFlow<()>) {
    loop {
        let finished = done.wait(tick);
        if each().is_break() || finished {
            return;
        }
    }
}
