//! Vyukov's adaptive parallel I/O ("Parallel Disk IO", 1024cores): interchangeable worker
//! threads that each decide, after every step, whether to READ the next block, PROCESS a block,
//! or BLOCK (park). It tunes itself between cached data (reads are cheap: most threads end up
//! processing) and uncached data (reads wait on the disk: more threads read).
//!
//! The rules, as published:
//! - READ is the initial state.
//! - After READ: PROCESS the block just read if fewer than CPUS threads are processing; else
//!   the block goes to the queue, and the thread stays READing if readers are short (fewer than
//!   MIN_IO_THREADS, or fewer than the processors) and the queue is not in overflow, or BLOCKs.
//! - After PROCESS: take another block from the queue and keep PROCESSing while the queue is
//!   not empty and fewer than CPUS threads process; else READ or BLOCK by the rule above.
//! - On READ→PROCESS and PROCESS→PROCESS, wake a parked thread when readers are short, the
//!   queue is not in overflow, and a thread is parked.
//! - The queue has a high and a low watermark: at the high one it enters overflow (nobody reads
//!   more), at the low one it leaves it (and a parked thread is woken to read again).
//! - Parked threads form a LIFO stack: the most recently parked (cache-warm) is woken first.
//! - All of the shared state sits behind one mutex, held only to count and decide.
//!
//! Counts in `Counts` exclude the deciding thread. When reading is exhausted, threads drain
//! the queue and leave; the last one out wakes every parked thread so they leave too.
//!
//! Here PROCESS also sends the block, on whichever stream is free (`Work::send`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::place::placement::Role;
use crate::sched::timeline::{Busy, Gauges, Wait};
use crate::sched::{cpus, guarded, spawn, Crew, Work};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Threads that may process at once: the number of CPUs.
    pub cpus: usize,
    /// Readers kept busy even when processing keeps up (keeps the disk queue fed).
    pub min_io_threads: usize,
    pub high_watermark: usize,
    pub low_watermark: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counts {
    /// Other threads reading now.
    pub readers: usize,
    /// Other threads processing now.
    pub processors: usize,
    pub parked: usize,
    pub queued: usize,
    pub overflow: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Read,
    Process,
    Block,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub next: Next,
    /// The block just read goes to the queue (after READ only).
    pub enqueue: bool,
    /// Wake one parked thread.
    pub wake: bool,
}

fn readers_short(c: &Counts, p: &Params) -> bool {
    c.readers < p.min_io_threads || c.readers < c.processors
}

fn wake_rule(c: &Counts, p: &Params) -> bool {
    readers_short(c, p) && !c.overflow && c.parked > 0
}

fn read_or_block(c: &Counts, p: &Params) -> Next {
    if readers_short(c, p) && !c.overflow {
        Next::Read
    } else {
        Next::Block
    }
}

/// The decision after a READ that produced a block.
pub fn after_read(c: &Counts, p: &Params) -> Decision {
    if c.processors < p.cpus {
        let mut after = *c;
        after.processors += 1;
        return Decision { next: Next::Process, enqueue: false, wake: wake_rule(&after, p) };
    }
    // The block goes to the queue: decide with the queue as it will be.
    let mut after = *c;
    after.queued += 1;
    if after.queued >= p.high_watermark {
        after.overflow = true;
    }
    Decision { next: read_or_block(&after, p), enqueue: true, wake: false }
}

/// The decision after a PROCESS step.
pub fn after_process(c: &Counts, p: &Params) -> Decision {
    if c.queued > 0 && c.processors < p.cpus {
        let mut after = *c;
        after.processors += 1;
        after.queued -= 1;
        return Decision { next: Next::Process, enqueue: false, wake: wake_rule(&after, p) };
    }
    Decision { next: read_or_block(c, p), enqueue: false, wake: false }
}

struct Shared<B> {
    counts: Counts,
    queue: VecDeque<B>,
    /// LIFO stack of parked thread ids.
    parked: Vec<usize>,
    woken: Vec<bool>,
    exhausted: bool,
    active: usize,
}

pub struct Scheduler<'a, W: Work> {
    work: &'a W,
    params: Params,
    shared: Mutex<Shared<W::Block>>,
    wakeups: Vec<Condvar>,
    stop: &'a AtomicBool,
    gauges: &'a Gauges,
    /// Streams free for the next send, taken in turn (see `with_stream`).
    free_streams: Mutex<VecDeque<usize>>,
    /// Streams handed to `free_streams` so far; streams opened during the run join it.
    streams_known: AtomicUsize,
    stream_ready: Condvar,
}

impl<'a, W: Work> Scheduler<'a, W> {
    pub fn new(work: &'a W, threads: usize, params: Params, stop: &'a AtomicBool, gauges: &'a Gauges) -> Self {
        Scheduler {
            work,
            params,
            shared: Mutex::new(Shared {
                counts: Counts::default(),
                queue: VecDeque::new(),
                parked: Vec::new(),
                woken: vec![false; threads],
                exhausted: false,
                active: threads,
            }),
            wakeups: (0..threads).map(|_| Condvar::new()).collect(),
            stop,
            gauges,
            free_streams: Mutex::new((0..work.usable()).collect()),
            streams_known: AtomicUsize::new(work.usable()),
            stream_ready: Condvar::new(),
        }
    }

    pub fn threads(&self) -> usize {
        self.wakeups.len()
    }

    fn wake_one(&self, s: &mut Shared<W::Block>) {
        if let Some(id) = s.parked.pop() {
            s.counts.parked -= 1;
            s.woken[id] = true;
            self.wakeups[id].notify_one();
        }
    }

    fn wake_all(&self, s: &mut Shared<W::Block>) {
        while !s.parked.is_empty() {
            self.wake_one(s);
        }
    }

    fn publish(&self, s: &Shared<W::Block>) {
        self.gauges.set_queued(s.queue.len());
        self.gauges.set_parked(s.counts.parked, s.counts.overflow);
    }

    /// Runs worker `id` until the work is done, a step fails, or `stop` is set. Call it from
    /// `threads()` threads, with ids 0..threads.
    pub fn worker(&self, id: usize) -> Result<()> {
        let r = self.worker_loop(id);
        let mut s = self.shared.lock().expect("scheduler lock");
        s.active -= 1;
        // Parked threads count as active: without this wake-up, the end of the work would
        // wait for their park timeout.
        let drained = s.exhausted && s.queue.is_empty();
        if r.is_err() || s.active == 0 || drained || self.stop.load(Ordering::Relaxed) {
            s.exhausted = true;
            self.wake_all(&mut s);
        }
        r
    }

    fn worker_loop(&self, id: usize) -> Result<()> {
        let mut next = Next::Read;
        let mut held: Option<W::Block> = None;
        {
            let mut s = self.shared.lock().expect("scheduler lock");
            s.counts.readers += 1;
        }
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            match next {
                Next::Read => {
                    let got = {
                        let _g = self.gauges.reading();
                        self.work.read()?
                    };
                    let mut s = self.shared.lock().expect("scheduler lock");
                    s.counts.readers -= 1;
                    match got {
                        Some(block) => {
                            let d = after_read(&s.counts, &self.params);
                            if d.enqueue {
                                s.queue.push_back(block);
                                s.counts.queued = s.queue.len();
                                if s.counts.queued >= self.params.high_watermark {
                                    s.counts.overflow = true;
                                }
                            } else {
                                held = Some(block);
                            }
                            next = d.next;
                            match next {
                                Next::Process => s.counts.processors += 1,
                                Next::Read => s.counts.readers += 1,
                                Next::Block => {}
                            }
                            if d.wake {
                                self.wake_one(&mut s);
                            }
                        }
                        None => {
                            s.exhausted = true;
                            if s.counts.processors >= self.params.cpus {
                                // Enough threads are draining the queue already.
                                return Ok(());
                            }
                            match s.queue.pop_front() {
                                Some(b) => {
                                    held = Some(b);
                                    s.counts.queued = s.queue.len();
                                    s.counts.processors += 1;
                                    next = Next::Process;
                                }
                                None => return Ok(()),
                            }
                        }
                    }
                    self.publish(&s);
                    if next == Next::Block && !self.park(id, s) {
                        return self.left();
                    }
                    if next == Next::Block {
                        next = Next::Read;
                        self.shared.lock().expect("scheduler lock").counts.readers += 1;
                    }
                }
                Next::Process => {
                    let mut block = held.take().expect("a block to process");
                    {
                        // One state at a time: the processing guard ends before sending starts.
                        {
                            let _g = self.gauges.processing();
                            self.work.process(&mut block);
                        }
                        let _g = self.gauges.sending();
                        self.with_stream(|i| self.work.send(i, block))?;
                    }
                    let mut s = self.shared.lock().expect("scheduler lock");
                    s.counts.processors -= 1;
                    let mut d = after_process(&s.counts, &self.params);
                    if s.exhausted && d.next != Next::Process {
                        // Nothing left to read: drain the queue (no more than CPUS at once) or leave.
                        if s.counts.processors >= self.params.cpus {
                            return Ok(());
                        }
                        match s.queue.pop_front() {
                            Some(b) => {
                                s.counts.processors += 1;
                                held = Some(b);
                                s.counts.queued = s.queue.len();
                                next = Next::Process;
                                self.publish(&s);
                                continue;
                            }
                            None => return Ok(()),
                        }
                    }
                    if d.next == Next::Process {
                        held = s.queue.pop_front();
                        s.counts.queued = s.queue.len();
                        s.counts.processors += 1;
                    }
                    if s.counts.overflow && s.counts.queued <= self.params.low_watermark {
                        s.counts.overflow = false;
                        // Reading may resume: let a parked thread do it.
                        d.wake = true;
                        if d.next == Next::Block {
                            d.next = read_or_block(&s.counts, &self.params);
                        }
                    }
                    if d.next == Next::Read {
                        s.counts.readers += 1;
                    }
                    if d.wake && !s.parked.is_empty() {
                        self.wake_one(&mut s);
                    }
                    next = d.next;
                    self.publish(&s);
                    if next == Next::Block {
                        if !self.park(id, s) {
                            return self.left();
                        }
                        next = Next::Read;
                        self.shared.lock().expect("scheduler lock").counts.readers += 1;
                    }
                }
                Next::Block => unreachable!("Block is handled where it is decided"),
            }
        }
    }

    /// Takes a free stream for the duration of one send (the workers share the streams). The
    /// one free longest goes first: with fewer workers sending at once than there are streams,
    /// a stack would hand the same few back every time and leave the rest idle.
    fn with_stream(&self, f: impl FnOnce(usize) -> Result<()>) -> Result<()> {
        let i = {
            let mut free = self.free_streams.lock().expect("streams lock");
            // Every stream busy sending: this worker waits on the sockets.
            let mut _waiting = None;
            loop {
                if self.stop.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let (known, open) = (self.streams_known.load(Ordering::Relaxed), self.work.usable());
                if open > known {
                    free.extend(known..open);
                    self.streams_known.store(open, Ordering::Relaxed);
                }
                if let Some(i) = free.pop_front() {
                    break i;
                }
                _waiting.get_or_insert_with(|| self.gauges.instead(Busy::Sending, Wait::Socket));
                free = self.stream_ready.wait_timeout(free, Duration::from_millis(50)).expect("streams lock").0;
            }
        };
        let r = f(i);
        self.free_streams.lock().expect("streams lock").push_back(i);
        self.stream_ready.notify_one();
        r
    }

    /// A worker leaving after a park: cancelled if `stop` woke it, done otherwise.
    fn left(&self) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Parks worker `id` until woken. False when it should leave (work exhausted and drained).
    fn park(&self, id: usize, mut s: std::sync::MutexGuard<'_, Shared<W::Block>>) -> bool {
        if s.exhausted && s.queue.is_empty() {
            return false;
        }
        s.parked.push(id);
        s.counts.parked += 1;
        s.woken[id] = false;
        self.publish(&s);
        while !s.woken[id] {
            if self.stop.load(Ordering::Relaxed) || (s.exhausted && s.queue.is_empty() && s.counts.processors == 0) {
                if let Some(pos) = s.parked.iter().position(|&p| p == id) {
                    s.parked.remove(pos);
                    s.counts.parked -= 1;
                }
                return false;
            }
            s = self.wakeups[id].wait_timeout(s, Duration::from_millis(50)).expect("scheduler lock").0;
        }
        self.publish(&s);
        !(s.exhausted && s.queue.is_empty())
    }

    /// Parked ids, top of the stack last (for tests).
    #[cfg(test)]
    fn parked_stack(&self) -> Vec<usize> {
        self.shared.lock().unwrap().parked.clone()
    }
}

/// Runs `work` on `crew.workers` adaptive workers until its reads are exhausted and every block
/// read was sent, or it stops.
pub fn run<W: Work>(work: &W, crew: &Crew<'_>) {
    let params = Params {
        cpus: cpus(),
        // One reader always: it keeps the disk queue fed while the others process.
        min_io_threads: 1,
        high_watermark: (crew.buffers / 2).max(2),
        low_watermark: (crew.buffers / 8).max(1),
    };
    let sched = Scheduler::new(work, crew.workers, params, crew.stop, crew.gauges);
    std::thread::scope(|s| {
        for i in 0..crew.workers {
            let (sched, name) = (&sched, format!("lh-aw-{i}"));
            spawn(s, name.clone(), "worker", work, move || {
                // Every block ends on the NIC: workers live in the network zone.
                work.pin(Role::Net, i, &name);
                guarded(work, || match sched.worker(i) {
                    Err(Error::Cancelled) if work.stopped() => Ok(()),
                    r => r,
                })
            });
        }
    });
}

#[cfg(test)]
mod tests;
