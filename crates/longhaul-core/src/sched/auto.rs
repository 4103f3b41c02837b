//! `auto`: runs a window of blocks with each scheduler, measures how fast each sent its window,
//! and runs the rest with the faster; and `drive`, which runs a transfer's blocks through the
//! scheduler asked for.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::panic;
use crate::sched::{adaptive, cpus, pipelined, Crew, Feed, SchedulerKind, SchedulerReport, Work};

/// Runs the blocks of `feed` through the scheduler `kind` (for `auto`: a probe of each first).
/// `None` if the work failed or stopped, or the scheduler left blocks untaken.
pub fn drive<W: Work>(work: &W, feed: &Feed, kind: SchedulerKind, crew: &Crew<'_>) -> Option<SchedulerReport> {
    let run_phase = |k: SchedulerKind| match k {
        SchedulerKind::Adaptive => adaptive::run(work, crew),
        _ => pipelined::run(work, crew),
    };
    let nblocks = feed.count();
    let report = match kind {
        SchedulerKind::Pipelined | SchedulerKind::Adaptive => {
            feed.open_to(nblocks);
            run_phase(kind);
            SchedulerReport { requested: kind.name(), used: kind.name(), reason: format!("{} as asked", kind.name()), probe: vec![] }
        }
        SchedulerKind::Auto => {
            // Below 16 windows' worth the probe (a phase boundary and the loser's window)
            // would cost more than a wrong choice.
            let window = probe_window(nblocks, feed.plan().block_size);
            // The streams open now, or as many as may join: `--streams auto` under CUBIC grows
            // to 8-16 during the run, and an adaptive choice made at 2 then starved them (a
            // 256 MiB push on profile b: 128 s adaptive against 31 s pipelined).
            let streams = if work.may_grow() { work.streams() } else { work.usable() };
            if let Some(reason) = adaptive_cannot_feed(streams, cpus(), work.may_grow()) {
                feed.open_to(nblocks);
                run_phase(SchedulerKind::Pipelined);
                SchedulerReport { requested: "auto", used: "pipelined", reason, probe: vec![] }
            } else if nblocks < 16 * window {
                feed.open_to(nblocks);
                run_phase(SchedulerKind::Pipelined);
                SchedulerReport {
                    requested: "auto",
                    used: "pipelined",
                    reason: format!("{nblocks} blocks are too few to probe both schedulers; pipelined"),
                    probe: vec![],
                }
            } else {
                // Adaptive first, then pipelined. The second probe is not drained: if it wins,
                // its limit is raised while it runs, so auto pays one phase boundary, not two.
                let (a, _) = probe_phase(work, feed, window, 0, || run_phase(SchedulerKind::Adaptive), |_| false);
                // Leaving the running pipelined probe costs a phase boundary: adaptive must be
                // clearly faster (5%, about the probe's own noise here) to be worth it.
                let keep_pipelined = |p: f64| p * 1.05 >= a;
                let (p, extended) = probe_phase(work, feed, window, window, || run_phase(SchedulerKind::Pipelined), keep_pipelined);
                let used = if keep_pipelined(p) { SchedulerKind::Pipelined } else { SchedulerKind::Adaptive };
                if !extended || feed.taken() < nblocks {
                    // Either the winner is the first probe, or the second ended before its limit
                    // was raised: run the winner over what is left.
                    feed.open_to(nblocks);
                    run_phase(used);
                }
                SchedulerReport {
                    requested: "auto",
                    used: used.name(),
                    reason: format!(
                        "probe of {window} blocks each: adaptive {:.0} MiB/s, pipelined {:.0} MiB/s; {} for the rest",
                        a / 1048576.0,
                        p / 1048576.0,
                        used.name()
                    ),
                    probe: vec![("adaptive", a), ("pipelined", p)],
                }
            }
        }
    };
    if work.stopped() {
        return None;
    }
    if feed.taken() < nblocks {
        work.fail(Error::Protocol("the scheduler stopped before the last block".into()));
        return None;
    }
    Some(report)
}

/// Why `auto` runs pipelined without a probe when there are more streams than adaptive can
/// keep sending on: its workers send only while they PROCESS, and at most one per CPU does, so
/// with more streams than CPUs some streams sit idle in turn, and an idle stream's congestion
/// window starts over. With 8 streams on 2 CPUs over 50 ms the adaptive probe moved 36-42 MiB/s
/// against 74-99 for 2 streams, and a push with `auto` took 10.5 s against 9.9 with
/// `--scheduler pipelined` (bench/RESULTS.md, "--streams 8"). None when adaptive can take part.
pub fn adaptive_cannot_feed(streams: usize, cpus: usize, growing: bool) -> Option<String> {
    let up_to = if growing { "up to " } else { "" };
    (streams > cpus).then(|| {
        format!(
            "{up_to}{streams} streams, more than the {cpus} CPUs adaptive sends on at once: pipelined, one sender per stream, without a probe"
        )
    })
}

/// Blocks in each of `auto`'s probe windows: a twentieth of the transfer, at least 8 blocks
/// (enough to measure past thread start-up) and at most 32 blocks or 128 MiB, whichever is
/// more. (A cap of 32 blocks alone was 128 MiB with 4 MiB blocks but 32 MiB with 1 MiB ones: a
/// window too short to time two schedulers apart.)
pub fn probe_window(nblocks: u64, block_size: u64) -> u64 {
    let most = (PROBE_WINDOW_BYTES / block_size.max(1)).max(32);
    (nblocks / 20).clamp(8, most)
}

const PROBE_WINDOW_BYTES: u64 = 128 << 20;

/// Runs one probe window of `window` blocks on a scheduler (started by `run`) and measures its
/// rate as the window's bytes over the time until all of them were sent. The scheduler may take
/// `extra` blocks past the window meanwhile, so it is still running at full pace when the
/// decision comes: if `keep(rate)` says so, the limit is raised to the end and it carries on.
/// (Timing until blocks are merely taken would flatter the pipelined scheduler, whose queues
/// take a whole window before any of it is sent.) Returns the rate and whether the limit was
/// raised.
fn probe_phase<W: Work>(
    work: &W,
    feed: &Feed,
    window: u64,
    extra: u64,
    run: impl FnOnce() + Send,
    keep: impl FnOnce(f64) -> bool,
) -> (f64, bool) {
    let nblocks = feed.count();
    let from = feed.taken();
    let upto = (from + window).min(nblocks);
    feed.open_to((upto + extra).min(nblocks));
    let bytes = feed.bytes(from, upto) as f64;
    std::thread::scope(|s| {
        let t = Instant::now();
        let h = s.spawn(move || {
            if let Err(err) = panic::catch("driver", || {
                run();
                Ok(())
            }) {
                work.fail(err);
            }
        });
        let mut first_unsent = from;
        while !h.is_finished() && !work.stopped() {
            while first_unsent < upto && feed.is_sent(first_unsent) {
                first_unsent += 1;
            }
            if first_unsent == upto {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let rate = bytes / t.elapsed().as_secs_f64().max(1e-9);
        let extended = keep(rate);
        if extended {
            feed.open_to(nblocks);
        }
        let _ = h.join();
        (rate, extended)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_streams_than_cpus_skip_the_adaptive_probe() {
        assert_eq!(adaptive_cannot_feed(2, 2, false), None);
        assert_eq!(adaptive_cannot_feed(1, 2, false), None);
        assert_eq!(adaptive_cannot_feed(8, 16, false), None);
        let why = adaptive_cannot_feed(8, 2, false).expect("8 streams on 2 CPUs");
        assert!(why.starts_with("8 streams, more than the 2 CPUs"), "{why}");
        assert!(adaptive_cannot_feed(3, 2, false).is_some());
        let growing = adaptive_cannot_feed(16, 2, true).expect("up to 16 streams on 2 CPUs");
        assert!(growing.starts_with("up to 16 streams, more than the 2 CPUs"), "{growing}");
    }

    #[test]
    fn probe_windows_are_a_twentieth_within_8_blocks_and_128_mib() {
        const MIB: u64 = 1 << 20;
        // 4 GiB: 128 MiB windows whatever the block size (32 blocks of 4 MiB, 128 of 1 MiB).
        assert_eq!(probe_window(1024, 4 * MIB), 32);
        assert_eq!(probe_window(4096, MIB), 128);
        // 1 GiB of 1 MiB blocks: a twentieth.
        assert_eq!(probe_window(1024, MIB), 51);
        // Small blocks: a twentieth, up to 128 MiB of them.
        assert_eq!(probe_window(400, 4096), 20);
        assert_eq!(probe_window(1 << 20, 4096), 32768);
        // Few blocks: never under 8.
        assert_eq!(probe_window(100, MIB), 8);
        // Blocks above 4 MiB: 32 of them.
        assert_eq!(probe_window(10_000, 16 * MIB), 32);
    }
}
