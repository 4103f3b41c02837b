//! L3: the schedulers that run a transfer's block work, and the timeline of what its threads
//! were doing. The work is whatever implements `Work` (the sender's engine): READ a block,
//! PROCESS it, SEND it on a stream. A scheduler only decides which thread does which step when:
//!
//! - `pipelined` (mdtmFTP): dedicated reader threads, processing threads and one sending thread
//!   per stream, joined by bounded queues;
//! - `adaptive` (Vyukov): interchangeable workers that each READ, PROCESS (and send on any free
//!   stream) or park, by the published rules;
//! - `auto` runs the first blocks with each, measures, and runs the rest with the faster.
//!
//! Blocks wait in queues no longer than the pool, so memory is bounded by the pool. A `Feed`
//! hands the blocks out in order, up to a limit `auto` raises phase by phase.

pub mod adaptive;
pub mod auto;
pub mod pipelined;
pub mod timeline;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::panic;
use crate::place::placement::Role;
use crate::sched::timeline::Gauges;
use crate::vfile::blocks::BlockPlan;

/// The work a scheduler runs: READ produces a block, PROCESS prepares it, SEND writes it on one
/// of the streams. A failed step fails the whole work (`fail`), which stops every thread.
pub trait Work: Sync {
    type Block: Send;
    /// Reads the next block; `None` once there is none left to take.
    fn read(&self) -> Result<Option<Self::Block>>;
    fn process(&self, block: &mut Self::Block);
    /// Sends a processed block on stream `stream` (`0..streams()`); one thread at a time per
    /// stream.
    fn send(&self, stream: usize, block: Self::Block) -> Result<()>;
    fn streams(&self) -> usize;
    /// Streams open now, `0..usable()`: fewer than `streams()` while more may still open
    /// during the run (`--streams auto`).
    fn usable(&self) -> usize {
        self.streams()
    }
    /// Whether streams may join during the run up to `streams()` (`--streams auto` under a
    /// loss-based congestion control, the only kind its tuner adds streams for).
    fn may_grow(&self) -> bool {
        false
    }
    /// Waits, before a sender takes its next block, until stream `stream` can take it: a block
    /// taken by a stream whose socket is full waits there while a faster stream could send it.
    fn await_room(&self, _stream: usize) {}
    /// Whether the work failed or was cancelled: its threads then leave.
    fn stopped(&self) -> bool;
    /// Records a failure and stops the work; the first failure is the one reported.
    fn fail(&self, e: Error);
    /// Binds the calling thread, the `i`-th of its role, where the work wants it.
    fn pin(&self, _role: Role, _i: usize, _name: &str) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    Pipelined,
    Adaptive,
    #[default]
    Auto,
}

impl SchedulerKind {
    pub fn parse(s: &str) -> Result<SchedulerKind> {
        match s {
            "pipelined" => Ok(SchedulerKind::Pipelined),
            "adaptive" => Ok(SchedulerKind::Adaptive),
            "auto" => Ok(SchedulerKind::Auto),
            _ => Err(Error::Usage(format!("scheduler must be pipelined, adaptive or auto, not {s:?}"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Pipelined => "pipelined",
            SchedulerKind::Adaptive => "adaptive",
            SchedulerKind::Auto => "auto",
        }
    }
}

/// Which scheduler ran, and why.
#[derive(Clone, Debug)]
pub struct SchedulerReport {
    pub requested: &'static str,
    pub used: &'static str,
    pub reason: String,
    /// (scheduler, bytes/s) measured by `auto`'s probe.
    pub probe: Vec<(&'static str, f64)>,
}

/// The threads a scheduler may start, and what they share besides the work.
#[derive(Clone, Copy)]
pub struct Crew<'a> {
    /// Pipelined disk-reader threads.
    pub readers: usize,
    /// Pipelined processing threads.
    pub processors: usize,
    /// Adaptive worker threads.
    pub workers: usize,
    /// Blocks that may wait between steps: the buffers of the work's pool.
    pub buffers: usize,
    /// Set when the work stops (`Work::stopped`): parked threads look at it.
    pub stop: &'a AtomicBool,
    pub gauges: &'a Gauges,
}

/// The blocks of a transfer still to send, numbered `0..count()` in order, handed out one at a
/// time below a limit; and which blocks of the plan are done (held by the receiver already, or
/// sent).
pub struct Feed {
    plan: BlockPlan,
    order: Vec<u64>,
    done: Vec<AtomicBool>,
    next: AtomicU64,
    /// Blocks below this number may be taken; `auto` raises it phase by phase.
    limit: AtomicU64,
}

impl Feed {
    /// All blocks of `plan` but those in the `[first, end)` ranges of `skip` (a PLAN), none
    /// open to take yet.
    pub fn new(plan: BlockPlan, skip: &[(u64, u64)]) -> Feed {
        let order = plan.to_send(skip);
        let done: Vec<AtomicBool> = (0..plan.count()).map(|_| AtomicBool::new(true)).collect();
        for &b in &order {
            done[b as usize].store(false, Ordering::Relaxed);
        }
        Feed { plan, order, done, next: AtomicU64::new(0), limit: AtomicU64::new(0) }
    }

    pub fn plan(&self) -> BlockPlan {
        self.plan
    }

    /// Blocks to send.
    pub fn count(&self) -> u64 {
        self.order.len() as u64
    }

    /// Blocks of the plan not to send (the receiver holds them), and their bytes.
    pub fn held(&self) -> (u64, u64) {
        (self.plan.count() - self.count(), self.plan.total - self.plan.bytes_of(&self.order))
    }

    /// The next block to send (its number in the plan), unless `stop` is set or the limit is
    /// reached.
    pub fn take(&self, stop: &AtomicBool) -> Option<u64> {
        let mut n = self.next.load(Ordering::Relaxed);
        loop {
            if n >= self.limit.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                return None;
            }
            match self.next.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(self.order[n as usize]),
                Err(now) => n = now,
            }
        }
    }

    /// Blocks taken so far.
    pub fn taken(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// The blocks taken so far, in the order they were handed out.
    pub fn taken_blocks(&self) -> &[u64] {
        &self.order[..(self.taken() as usize).min(self.order.len())]
    }

    /// Lets blocks numbered below `n` be taken.
    pub fn open_to(&self, n: u64) {
        self.limit.store(n, Ordering::Relaxed);
    }

    /// Records block `b` (of the plan) as sent.
    pub fn sent(&self, b: u64) {
        self.done[b as usize].store(true, Ordering::Relaxed);
    }

    /// Whether the block numbered `n` was sent.
    pub fn is_sent(&self, n: u64) -> bool {
        self.done[self.order[n as usize] as usize].load(Ordering::Relaxed)
    }

    /// The first block of the plan at or after `from` not yet done: every block below it is.
    pub fn done_up_to(&self, mut from: u64) -> u64 {
        while from < self.plan.count() && self.done[from as usize].load(Ordering::Relaxed) {
            from += 1;
        }
        from
    }

    /// Bytes of the blocks numbered `from..to`.
    pub fn bytes(&self, from: u64, to: u64) -> u64 {
        self.plan.bytes_of(&self.order[from as usize..to as usize])
    }
}

/// CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Starts a scheduler thread of role `role`; a panic in it fails the work with `E_PANIC`.
fn spawn<'s, 'e, W: Work, F: FnOnce() + Send + 's>(s: &'s std::thread::Scope<'s, 'e>, name: String, role: &'static str, work: &'s W, f: F) {
    let body = move || {
        if let Err(e) = panic::catch(role, || {
            f();
            Ok(())
        }) {
            work.fail(e);
        }
    };
    std::thread::Builder::new().name(name).spawn_scoped(s, body).expect("spawning an engine thread");
}

/// Runs `f`, recording its failure for the whole work.
fn guarded<W: Work>(work: &W, f: impl FnOnce() -> Result<()>) {
    if let Err(e) = f() {
        if !work.stopped() {
            work.fail(e);
        }
    }
}
