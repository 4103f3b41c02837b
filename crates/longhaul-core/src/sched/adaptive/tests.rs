use std::sync::atomic::AtomicU64;
use std::sync::Mutex as StdMutex;

use super::*;

const P: Params = Params { cpus: 2, min_io_threads: 1, high_watermark: 4, low_watermark: 1 };

fn c(readers: usize, processors: usize, parked: usize, queued: usize, overflow: bool) -> Counts {
    Counts { readers, processors, parked, queued, overflow }
}

#[test]
fn transitions_follow_the_published_table() {
    use Next::*;
    // (counts excluding the deciding thread, decision after READ)
    let after_read_table: &[(Counts, Next, bool, bool)] = &[
        // processors < CPUS: process the block just read; wake a parked thread if readers are short.
        (c(0, 0, 0, 0, false), Process, false, false),
        (c(0, 1, 2, 0, false), Process, false, true),
        (c(1, 0, 2, 0, false), Process, false, false),
        // processors == CPUS: queue it; keep reading while readers are short...
        (c(0, 2, 0, 0, false), Read, true, false),
        (c(1, 2, 0, 0, false), Read, true, false),
        // ...else block.
        (c(2, 2, 0, 0, false), Block, true, false),
        // Queuing this block reaches the high watermark: overflow, so block even if short.
        (c(0, 2, 0, 3, false), Block, true, false),
        (c(0, 2, 0, 0, true), Block, true, false),
    ];
    for (i, (counts, next, enqueue, wake)) in after_read_table.iter().enumerate() {
        let d = after_read(counts, &P);
        assert_eq!((d.next, d.enqueue, d.wake), (*next, *enqueue, *wake), "after_read row {i}: {counts:?}");
    }
    let after_process_table: &[(Counts, Next, bool)] = &[
        // Queue not empty and processors < CPUS: keep processing.
        (c(1, 0, 0, 2, false), Process, false),
        (c(0, 1, 1, 2, false), Process, true),
        // Queue empty: read if readers are short...
        (c(0, 0, 0, 0, false), Read, false),
        (c(1, 2, 0, 0, false), Read, false),
        // ...or block.
        (c(1, 0, 0, 0, false), Block, false),
        (c(1, 1, 0, 0, false), Block, false),
        // Processors full: read or block by the same rule.
        (c(0, 2, 0, 3, false), Read, false),
        (c(2, 2, 0, 3, false), Block, false),
        // Overflow: never read.
        (c(0, 2, 0, 4, true), Block, false),
    ];
    for (i, (counts, next, wake)) in after_process_table.iter().enumerate() {
        let d = after_process(counts, &P);
        assert_eq!((d.next, d.wake), (*next, *wake), "after_process row {i}: {counts:?}");
        assert!(!d.enqueue);
    }
}

/// A synthetic workload: `n` blocks; read and process each cost a busy-wait.
struct Synthetic {
    n: u64,
    next: AtomicU64,
    read_us: u64,
    process_us: u64,
    seen: StdMutex<Vec<u64>>,
    max_readers: AtomicUsize,
    max_processors: AtomicUsize,
    gauges: Gauges,
}

use std::sync::atomic::AtomicUsize;

fn spin(us: u64) {
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

impl Work for Synthetic {
    type Block = u64;
    fn read(&self) -> Result<Option<u64>> {
        let b = self.next.fetch_add(1, Ordering::Relaxed);
        if b >= self.n {
            return Ok(None);
        }
        // Sleeping stands for waiting on a disk that is not in the page cache.
        std::thread::sleep(Duration::from_micros(self.read_us));
        let s = self.gauges.snapshot(0.0);
        self.max_readers.fetch_max(s.reading as usize, Ordering::Relaxed);
        Ok(Some(b))
    }
    fn process(&self, b: &mut u64) {
        spin(self.process_us);
        let s = self.gauges.snapshot(0.0);
        self.max_processors.fetch_max(s.processing as usize, Ordering::Relaxed);
        self.seen.lock().unwrap().push(*b);
    }
    fn send(&self, _stream: usize, _b: u64) -> Result<()> {
        Ok(())
    }
    /// More streams than threads: no worker waits for one.
    fn streams(&self) -> usize {
        16
    }
    fn stopped(&self) -> bool {
        false
    }
    fn fail(&self, e: Error) {
        panic!("the synthetic work does not fail: {e}");
    }
}

fn synthetic(n: u64, read_us: u64, process_us: u64) -> Synthetic {
    Synthetic {
        n,
        next: AtomicU64::new(0),
        read_us,
        process_us,
        seen: StdMutex::new(Vec::new()),
        max_readers: AtomicUsize::new(0),
        max_processors: AtomicUsize::new(0),
        gauges: Gauges::default(),
    }
}

fn run(threads: usize, n: u64, read_us: u64, process_us: u64, params: Params) -> Synthetic {
    let w = synthetic(n, read_us, process_us);
    let stop = AtomicBool::new(false);
    {
        let s = Scheduler::new(&w, threads, params, &stop, &w.gauges);
        std::thread::scope(|scope| {
            for id in 0..threads {
                let s = &s;
                scope.spawn(move || s.worker(id).unwrap());
            }
        });
        assert!(s.parked_stack().is_empty(), "every parked thread left");
    }
    w
}

#[test]
fn every_block_is_processed_exactly_once() {
    for threads in [1, 2, 3, 8] {
        let w = run(threads, 300, 20, 20, P);
        let mut seen = w.seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..300).collect::<Vec<_>>(), "{threads} threads");
    }
}

#[test]
fn it_tunes_itself_between_cached_and_uncached_reads() {
    let params = Params { cpus: 2, min_io_threads: 1, high_watermark: 16, low_watermark: 4 };
    // Uncached: reads wait (2 ms) and processing is quick: most threads end up reading.
    let slow_disk = run(8, 200, 2000, 50, params);
    // Cached: reads are instant and processing is heavy: no more than CPUS process.
    let heavy_cpu = run(8, 200, 0, 500, params);
    assert!(slow_disk.max_readers.load(Ordering::Relaxed) >= 4, "readers {}", slow_disk.max_readers.load(Ordering::Relaxed));
    assert!(heavy_cpu.max_processors.load(Ordering::Relaxed) <= 2, "processors {}", heavy_cpu.max_processors.load(Ordering::Relaxed));
}

#[test]
fn the_queue_stays_near_its_high_watermark() {
    let params = Params { cpus: 1, min_io_threads: 4, high_watermark: 3, low_watermark: 1 };
    let w = synthetic(200, 0, 200);
    let stop = AtomicBool::new(false);
    let s = Scheduler::new(&w, 6, params, &stop, &w.gauges);
    let max_q = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|id| {
                let s = &s;
                scope.spawn(move || s.worker(id).unwrap())
            })
            .collect();
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                max_q.fetch_max(w.gauges.snapshot(0.0).queued as usize, Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        for h in handles {
            h.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    // Each of the 6 threads may add one block after the last check: high + threads at most.
    assert!(max_q.load(Ordering::Relaxed) <= 3 + 6, "queue reached {}", max_q.load(Ordering::Relaxed));
    assert_eq!(w.seen.lock().unwrap().len(), 200);
}

#[test]
fn parked_threads_are_woken_last_in_first_out() {
    let w = synthetic(0, 0, 0);
    let stop = AtomicBool::new(false);
    let s = Scheduler::new(&w, 4, P, &stop, &w.gauges);
    let mut sh = s.shared.lock().unwrap();
    for id in [2, 0, 3] {
        sh.parked.push(id);
        sh.counts.parked += 1;
    }
    s.wake_one(&mut sh);
    assert_eq!(sh.woken, vec![false, false, false, true], "the last parked (3) is woken first");
    s.wake_one(&mut sh);
    assert!(sh.woken[0]);
    assert_eq!(sh.parked, vec![2]);
}

#[test]
fn stop_ends_every_worker() {
    let w = synthetic(1_000_000, 100, 0);
    let stop = AtomicBool::new(false);
    let s = Scheduler::new(&w, 4, P, &stop, &w.gauges);
    std::thread::scope(|scope| {
        let hs: Vec<_> = (0..4)
            .map(|id| {
                let s = &s;
                scope.spawn(move || s.worker(id))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            assert!(matches!(h.join().unwrap(), Err(Error::Cancelled)));
        }
    });
}

#[test]
fn the_end_of_the_work_wakes_parked_threads_at_once() {
    // Heavy processing with 8 threads on 2 "CPUs" parks most of them; when the last block is
    // done they must leave at once, not after their park timeout (50 ms).
    // 40 blocks x 200 us on 2 processors is ~4 ms of work. Without the wake-up every run takes
    // at least the park timeout; with it, the fastest of five stays well under it even when
    // other tests share the two CPUs (one run alone can be descheduled past it).
    let params = Params { cpus: 2, min_io_threads: 1, high_watermark: 4, low_watermark: 1 };
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let w = run(8, 40, 0, 200, params);
        assert_eq!(w.seen.into_inner().unwrap().len(), 40);
        fastest = fastest.min(t.elapsed());
    }
    assert!(fastest < Duration::from_millis(40), "the fastest of 5 runs took {fastest:?}");
}
