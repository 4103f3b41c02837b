//! The sending side of a transfer: scan → content index → MANIFEST → blocks over N streams.
//!
//! The block work is the same whatever runs it: READ a block (a block inside one file is hashed
//! through a small scratch buffer and later sent with sendfile; a block of several files is
//! packed into a pooled buffer with one pread per piece), PROCESS it (XXH3 of a packed block,
//! and BLAKE3 when asked), SEND it on a data stream. Two schedulers run that work:
//!
//! - `pipelined` (mdtmFTP): dedicated disk-reader threads, processing threads and one
//!   network-sender thread per stream, joined by bounded queues;
//! - `adaptive` (Vyukov, `sched/adaptive.rs`): interchangeable workers that each READ, PROCESS (and
//!   send on any free stream) or park, by the published rules;
//! - `auto` runs the first blocks with each, measures, and sends the rest with the faster.
//!
//! Prepared blocks wait in queues no longer than the pool, so memory is bounded by the pool.
//! Threads are bound to CPUs when the placement says so (`placement.rs`).

mod digests;
mod endgame;
mod engine;
mod generated;
mod mirror;
mod options;
mod pieces;
mod push;
mod run;
mod summary;
pub(crate) mod tune;
mod verdict;

use std::collections::VecDeque;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::error::{Error, Result};
use crate::panic;
use crate::place::placement::{Placement, Role};
use crate::pool::Pool;
use crate::rate::{Bucket, Throttle};
use crate::sched::auto::drive;
use crate::sched::timeline::{Gauges, NetRecorder, Recorder};
use crate::sched::{Crew, Feed};
use crate::session::progress::{every, Done, FastPaths, Progress, Watch};
use crate::sys::congestion;
use crate::sys::net;
use crate::sys::probe;
use crate::sys::tcpinfo::{self, TcpStats};
use crate::vfile::blocks::BlockPlan;
use crate::vfile::index::{Kind, OWNER_GID, OWNER_UID};
use crate::vfile::scan::{scan_within, Scan};
use crate::wire::frame::{self, Msg};

use digests::file_digests;
pub(crate) use digests::summed;
use engine::{Counters, Engine, RECHECK_EVERY};
pub(crate) use generated::bench_index;
pub use generated::send_generated;
pub(crate) use mirror::plan;
pub(crate) use options::pool_shape;
use options::thread_counts;
pub use options::{Digest, SchedulerKind, SendOptions, Verify, DEFAULT_BLOCK_SIZE, DEFAULT_STREAMS};
use push::send_scanned;
pub(crate) use run::resendable;
use run::{is_checksum, Run};
pub use summary::{SchedulerReport, SendSummary, ThreadPin, Unchanged};
pub use verdict::Verdict;

#[cfg(test)]
mod tests;

/// Scans `source` and sends it to the node at `addr`, into `dest` under its root. A file that
/// changed while it was read is sent once more, from a fresh scan (a new session: the node keeps
/// the files the first one completed, which this one then skips); a second change fails the
/// transfer, naming the file. `admit` runs after each scan and before any connection, and what it
/// returns is held until that attempt ends: a node making a copy reserves the transfer's memory
/// there, once the index's size is known.
pub(crate) fn scan_and_send<G>(
    source: &Path,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    watch: Watch,
    admit: &dyn Fn(&Scan) -> Result<G>,
) -> Result<SendSummary> {
    let mut again = true;
    loop {
        let started = Instant::now();
        let scanned = scan_within(source, opts.scan_threads, opts.confine.as_deref(), &opts.filter)?;
        let scan_seconds = started.elapsed().as_secs_f64();
        let _admitted = admit(&scanned)?;
        mirror::check_source(&scanned, opts)?;
        match send_scanned(Scanned { scan: &scanned, started, scan_seconds, digests: None }, addr, dest, opts, watch) {
            Err(Error::SourceChanged { why, .. }) if again && resendable(why) => again = false,
            r => return r,
        }
    }
}

/// A source scanned for a transfer, and when the transfer began (its scan included).
pub(crate) struct Scanned<'a> {
    pub scan: &'a crate::vfile::scan::Scan,
    pub started: Instant,
    pub scan_seconds: f64,
    /// The BLAKE3 of every file, when the change detection already computed them (SUMS):
    /// `verify: full` sends these rather than reading every file once more.
    pub digests: Option<Vec<digests::FileDigest>>,
}

/// A session's connections once its data streams are attached: the control connection, the
/// peer's address, and one data connection per stream; with `--streams auto`, how to open more.
pub(crate) struct Attached<'a> {
    pub control: TcpStream,
    pub peer: IpAddr,
    pub sockets: Vec<TcpStream>,
    pub grow: Option<Grow<'a>>,
    /// The node takes a block twice in end-game (FEATURE_ENDGAME, endgame.rs).
    pub endgame: bool,
}

/// How a push opens more data connections while it runs (`--streams auto`, a node with
/// FEATURE_STREAMS_AUTO): up to `cap` in all, `open(n)` connecting n more (not introduced).
pub(crate) struct Grow<'a> {
    pub cap: u16,
    pub token: frame::Token,
    pub open: &'a (dyn Fn(u16) -> Result<Vec<TcpStream>> + Sync),
}

/// Sends the blocks of a scanned source over data connections already attached to a session
/// (`sockets`, one per stream), then DONE on `control`, and waits for the receiver's SUMMARY.
/// A client pushing to a node and a node answering a pull both end up here. Blocks in the
/// `[first, end)` ranges of `skip` (the node's PLAN) are not sent.
pub(crate) fn transmit(
    src: Scanned,
    link: Attached<'_>,
    opts: &SendOptions,
    throttle: Throttle,
    skip: &[(u64, u64)],
    held: Option<&[bool]>,
    watch: Watch,
) -> Result<SendSummary> {
    let Scanned { scan: scanned, started, scan_seconds, digests: precomputed } = src;
    let Attached { control, peer, sockets, grow, endgame } = link;
    let Watch { cancel, on_progress } = watch;
    let index = &scanned.index;
    let source = &scanned.base;
    // Threads and pool as for the streams open at the start: streams opened later are for a
    // link held back by loss, where the socket buffers, not the pool, hold what is in flight.
    let streams = sockets.len() as u16;
    let slots = match &grow {
        Some(g) => tune::Slots::with_cap(sockets, g.cap),
        None => tune::Slots::fixed(sockets),
    };
    // From here the receiver may take as long as it needs to write and answer with SUMMARY.
    control.set_read_timeout(None).map_err(Error::net("setting a timeout"))?;
    let placement = Placement::for_peer(&opts.sysfs_root, peer, source, opts.cores.as_ref(), opts.pin)?;

    let (readers, processors, workers) = thread_counts(opts, streams);
    let (buf_size, pool_buffers) = pool_shape(opts, streams, index.total());
    let pool = Pool::new_near(buf_size, pool_buffers, placement.cpu_for(Role::Disk, 0))?;
    let sendfile = probe::sendfile();
    let fast_paths = FastPaths {
        sendfile: sendfile.is_ok() && opts.digest == Digest::None && !opts.generated,
        sendfile_fallback: match (sendfile, opts.digest) {
            (Err(e), _) => Some(e),
            (Ok(()), Digest::Blake3) => Some("a BLAKE3 digest needs every block in a buffer".into()),
            (Ok(()), Digest::None) => None,
        },
        mlock: pool.locked(),
        mlock_fallback: pool.lock_fallback().map(str::to_owned),
    };

    let run = Run {
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        sockets: Mutex::new(
            slots.open_now().iter().map(|s| s.try_clone()).collect::<std::io::Result<_>>().map_err(Error::net("cloning a socket"))?,
        ),
        control: control.try_clone().map_err(Error::net("cloning a socket"))?,
        control_write: Mutex::new(()),
    };
    let plan = BlockPlan::new(index.total(), opts.block_size as u64);
    // Blocks wholly in holes of sparse files travel neither as data nor as resumed ones: the
    // receiver leaves them as holes (a block both in PLAN and in a hole counts as a hole).
    let holes = index.hole_blocks(plan);
    let (hole_blocks, hole_bytes) = Feed::new(plan, &holes).held();
    let mut not_sent = skip.to_vec();
    not_sent.extend_from_slice(&holes);
    // With pieces (HELD): a block made only of files the node holds is not sent either, and
    // of a block it holds in part only the rest goes (`Engine::read_pieces`).
    let held_in_part = held.map_or(0, |h| pieces::held_in_part(index, plan, h, &mut not_sent));
    let feed = Feed::new(plan, &not_sent);
    let (resumed_blocks, resumed_bytes) = feed.held();
    let (resumed_blocks, resumed_bytes) = (resumed_blocks - hole_blocks, resumed_bytes - hole_bytes + held_in_part);
    let tail = endgame::Tail::new(
        endgame && !opts.generated,
        slots.grows(),
        slots.cap(),
        feed.count(),
        frame::endgame_duplicates(slots.cap() as u16),
    );
    let engine = Engine {
        index,
        stamps: &scanned.stamps,
        base: scanned.base_fd.as_fd(),
        dirs: Mutex::new(Vec::new()),
        pool,
        feed,
        held,
        sendfile: fast_paths.sendfile,
        digest: opts.digest,
        counters: Counters::default(),
        run: &run,
        gauges: Gauges::default(),
        per_stream: (0..slots.cap()).map(|_| AtomicU64::new(0)).collect(),
        stream_blocks: (0..slots.cap()).map(|_| AtomicU64::new(0)).collect(),
        first_byte: OnceLock::new(),
        sockets: &slots,
        placement,
        pinned: Mutex::new(Vec::new()),
        throttle,
        in_flight: Mutex::new(VecDeque::new()),
        generated: opts.generated.then(|| generated::pattern(generated::PIECE)),
        unchecked: opts.verify == Verify::None,
        tail,
    };
    let data_ends: Vec<u64> = index.data_file_ends().collect();
    let files_total = index.count(Kind::File) as u64;
    let transfer_started = Instant::now();
    let storage_read_at_start = crate::sys::procio::storage_read_bytes();
    let mut recorder = Recorder::new(opts.timeline_interval);
    let mut net = NetRecorder::new(transfer_started, opts.timeline_interval);

    let driven = Done::default();
    // With `delete`, what the node removed comes before its SUMMARY.
    let deleted = Mutex::new(None);
    let driving = AtomicBool::new(true);
    let (reply, report, tuned) = std::thread::scope(|s| {
        let engine = &engine;
        let driven = &driven;
        let driving = &driving;
        let driver = std::thread::Builder::new()
            .name("lh-drive".into())
            .spawn_scoped(s, move || {
                let _raise = driven.on_drop();
                let crew =
                    Crew { readers, processors, workers, buffers: engine.pool.count(), stop: &engine.run.stop, gauges: &engine.gauges };
                let driven = || {
                    let report = drive(engine, &engine.feed, opts.scheduler, &crew);
                    driving.store(false, Ordering::Relaxed);
                    while !engine.tail.finished() && !engine.run.stopped() {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Ok(report.filter(|_| engine.end_streams()))
                };
                panic::catch("driver", driven).unwrap_or_else(|e| {
                    engine.run.fail(e);
                    None
                })
            })
            .expect("spawning the driver");
        let tuner = grow.as_ref().map(|g| {
            let slots = &slots;
            let run = &run;
            std::thread::Builder::new()
                .name("lh-tune".into())
                .spawn_scoped(s, move || {
                    // Nothing is gained by a stream that joins once every block is on a stream.
                    let over = || run.stopped() || !driving.load(Ordering::Relaxed) || engine.handed() >= engine.feed.count();
                    let left = || engine.feed.count().saturating_sub(engine.handed()) as f64 * opts.block_size as f64;
                    tune::run(slots, g.token, g.open, &|s| run.adopt(s), &over, &left)
                })
                .expect("spawning the tuner")
        });
        let ender = engine.tail.on().then(|| {
            let slots = &slots;
            std::thread::Builder::new()
                .name("lh-endgame".into())
                .spawn_scoped(s, move || {
                    // Runs on after the scheduler is done while a re-send may still gain: the
                    // streams end (and DONE goes) when this does.
                    // A path that stopped acknowledging anything for the I/O timeout once the
                    // scheduler is done is left to the waits after DONE, which time out.
                    let ended = panic::catch("end-game", || {
                        let mut moved = (engine.tail.arrived(), Instant::now());
                        while !engine.run.stopped() {
                            let driven = !driving.load(Ordering::Relaxed);
                            match engine.tail.step(&slots.open_now()) {
                                endgame::Step::Over => break,
                                endgame::Step::Resend(r) => engine.resend(r)?,
                                endgame::Step::Wait { worth } if !worth && driven => break,
                                endgame::Step::Wait { .. } if driven && moved.1.elapsed() > opts.io_timeout => break,
                                endgame::Step::Wait { .. } => std::thread::sleep(Duration::from_millis(5)),
                            }
                            let now = engine.tail.arrived();
                            if now != moved.0 || !driven {
                                moved = (now, Instant::now());
                            }
                        }
                        Ok(())
                    });
                    engine.tail.finish();
                    if let Err(e) = ended {
                        engine.run.fail(e);
                    }
                })
                .expect("spawning the end-game")
        });
        let digester = (opts.verify == Verify::Full && precomputed.is_none()).then(|| {
            std::thread::Builder::new()
                .name("lh-digest".into())
                .spawn_scoped(s, || panic::catch("digester", || file_digests(index, &scanned.stamps, engine.base, &|| run.stopped())))
                .expect("spawning the digester")
        });
        // The node reports errors (a full disk, a bad block) on the control connection while
        // blocks are still flowing; a watcher stops the transfer at once when one arrives.
        let (reply_tx, reply_rx) = bounded::<Result<Msg>>(1);
        let run_ref = &run;
        let deleted = &deleted;
        s.spawn(move || {
            let watched = panic::catch("control watcher", || {
                let mut ctl = &run_ref.control;
                let msg = mirror::before_summary(&mut ctl, deleted);
                if let Ok(Msg::Error { code, message }) = &msg {
                    run_ref.explain(Error::remote(code, message));
                }
                let _ = reply_tx.send(msg);
                Ok(())
            });
            if let Err(e) = watched {
                run_ref.fail(e);
            }
        });

        let mut watermark = 0u64;
        let progress = |watermark: &mut u64| {
            *watermark = engine.feed.done_up_to(*watermark);
            let done_offset = plan.offset(*watermark).min(index.total());
            let per: Vec<u64> = engine.per_stream.iter().take(slots.opened()).map(|a| a.load(Ordering::Relaxed)).collect();
            let moved = per.iter().sum::<u64>();
            let files_done = data_ends.partition_point(|&e| e <= done_offset) as u64;
            // Files begun: those starting below the end of the last block handed out (blocks
            // go out in plan order, so the highest taken is the last one).
            let taken_end = engine.feed.taken_blocks().last().map_or(0, |&b| plan.offset(b + 1).min(index.total()));
            let begun = if taken_end > done_offset {
                (data_ends.partition_point(|&e| e < taken_end) as u64 + 1).min(files_total)
            } else {
                files_done
            };
            Progress {
                bytes_done: resumed_bytes + hole_bytes + moved,
                bytes_total: index.total(),
                bytes_moved: moved,
                files_done,
                files_total,
                files_in_flight: begun.saturating_sub(files_done),
                seconds: transfer_started.elapsed().as_secs_f64(),
                per_stream_bytes: per,
            }
        };
        let mut last_progress = Instant::now();
        let tick = opts.timeline_interval.min(opts.progress_interval).max(Duration::from_millis(1));
        let mut last_recheck = Instant::now();
        let recheck = |last: &mut Instant| {
            if last.elapsed() >= RECHECK_EVERY {
                *last = Instant::now();
                if let Err(e) = engine.recheck_in_flight() {
                    run.fail(e);
                }
            }
        };
        every(tick, driven, || {
            if cancel.load(Ordering::Relaxed) {
                run.fail(Error::Cancelled);
            }
            recorder.tick(&engine.gauges);
            net.tick(&slots.open_now());
            recheck(&mut last_recheck);
            if !run.stopped() && last_progress.elapsed() >= opts.progress_interval {
                last_progress = Instant::now();
                on_progress(&progress(&mut watermark));
            }
            ControlFlow::Continue(())
        });
        let report = driver.join().unwrap_or_else(|p| {
            run.fail(panic::from_payload("driver", p));
            None
        });
        let digested = match (digester, precomputed) {
            (Some(d), _) => Some(d.join()),
            (None, Some(all)) if opts.verify == Verify::Full => Some(Ok(Ok(all))),
            (None, _) => None,
        };
        if let Some(d) = digested {
            match d {
                Ok(Ok(digests)) if !run.stopped() => {
                    for chunk in digests.chunks(frame::MAX_DIGESTS_PER_FRAME) {
                        if let Err(e) = run.write_control(&Msg::FileDigests { digests: chunk.to_vec() }) {
                            run.fail(e);
                            break;
                        }
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => run.fail(e),
                Err(p) => run.fail(panic::from_payload("digester", p)),
            }
        }
        let tuned = tuner.map(|t| t.join().unwrap_or_else(|_| "auto: the tuner failed".to_owned()));
        if let Some(e) = ender {
            let _ = e.join();
        }
        // The node waits for the streams the sender opened in all, sealed by now.
        if grow.is_some() && !run.stopped() {
            if let Err(e) = run.write_control(&Msg::StreamsOpened { count: slots.seal() as u16 }) {
                run.fail(e);
            }
        }
        if !run.stopped() {
            let sent: u64 = engine.per_stream.iter().map(|a| a.load(Ordering::Relaxed)).sum();
            if let Err(e) = run.write_control(&Msg::Done { blocks: engine.feed.count(), bytes: sent }) {
                run.fail(e);
            }
        }
        // Wait for the node's verdict, still honouring cancellation.
        let done_at = Instant::now();
        let reply = loop {
            match reply_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(m) => break Some(m),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break None,
                Err(_) if cancel.load(Ordering::Relaxed) => {
                    run.fail(Error::Cancelled);
                    let _ = run.control.shutdown(Shutdown::Both);
                }
                Err(_) if opts.summary_timeout.is_some_and(|t| done_at.elapsed() > t) => {
                    run.fail(Error::Timeout("the receiver did not answer DONE within the idle timeout"));
                    let _ = run.control.shutdown(Shutdown::Both);
                }
                Err(_) if run.stopped() => {
                    // Give the node a moment to explain a broken stream (no longer than the
                    // I/O timeout: a node that stopped answering will not explain), then stop.
                    if let Ok(m) = reply_rx.recv_timeout(opts.io_timeout.min(Duration::from_secs(2))) {
                        break Some(m);
                    }
                    let _ = run.control.shutdown(Shutdown::Both);
                    break None;
                }
                // The receiver may still be reading the last blocks.
                Err(_) => recheck(&mut last_recheck),
            }
        };
        (reply, report, tuned)
    });
    let _ = control.shutdown(Shutdown::Both);

    // A block the receiver found damaged may have been read from a file changed since the scan.
    if run.failure.lock().expect("failure lock").as_ref().is_some_and(is_checksum) {
        if let Some(e) = engine.changed_source() {
            run.fail(e);
        }
    }
    let remote = match reply {
        Some(Ok(Msg::Summary(s))) if !run.stopped() => Some(s),
        Some(Ok(Msg::Error { code, message })) => {
            run.explain(Error::remote(&code, &message));
            None
        }
        Some(Ok(m)) if !run.stopped() => {
            run.fail(Error::Protocol(format!("expected SUMMARY, got {:?}", m.frame_type())));
            None
        }
        Some(Err(e)) if !run.stopped() => {
            run.fail(e);
            None
        }
        _ => None,
    };
    if let Some(e) = run.failure.lock().expect("failure lock").take() {
        return Err(e);
    }
    let receiver = remote.ok_or_else(|| Error::Protocol("the node closed the session without a summary".into()))?;
    let scheduler = report.ok_or_else(|| Error::Protocol("the transfer ended without a scheduler report".into()))?;
    let streams = slots.opened() as u16;
    let per_stream_bytes: Vec<u64> = engine.per_stream.iter().take(streams as usize).map(|a| a.load(Ordering::Relaxed)).collect();
    on_progress(&Progress {
        bytes_done: index.total(),
        bytes_total: index.total(),
        bytes_moved: per_stream_bytes.iter().sum(),
        files_done: files_total,
        files_total,
        files_in_flight: 0,
        seconds: transfer_started.elapsed().as_secs_f64(),
        per_stream_bytes: per_stream_bytes.clone(),
    });
    let transfer_seconds = transfer_started.elapsed().as_secs_f64();
    let timeline = recorder.finish(&engine.gauges);
    // Every byte has been acknowledged (the receiver's SUMMARY came): the kernel's account of
    // each stream is complete.
    let network: Vec<TcpStats> = slots.open_now().iter().filter_map(|s| tcpinfo::read(s).ok()).collect();
    let network_timeline = net.finish(&slots.open_now());
    // A run that moved nothing had no limit: say that, not what the idle streams looked like.
    let verdict = if per_stream_bytes.iter().all(|&b| b == 0) && index.total() > 0 {
        Verdict { limit: "nothing to send", evidence: "every byte was at the destination already; nothing travelled".into() }
    } else {
        let moved: u64 = per_stream_bytes.iter().sum();
        let from_disk = storage_read_at_start
            .zip(crate::sys::procio::storage_read_bytes())
            .map(|(a, b)| b.saturating_sub(a) as f64 / moved.max(1) as f64);
        verdict::verdict(&network, transfer_seconds, &timeline, from_disk)
    };
    Ok(SendSummary {
        bytes: index.total(),
        files: files_total,
        dirs: index.count(Kind::Dir) as u64,
        symlinks: index.count(Kind::Symlink) as u64,
        blocks: plan.count(),
        seconds: started.elapsed().as_secs_f64(),
        scan_seconds,
        first_byte_seconds: engine.first_byte.get().map(|t| t.duration_since(started).as_secs_f64()),
        streams,
        streams_reason: tuned,
        per_stream_bytes,
        sendfile_blocks: engine.counters.sendfile_blocks.load(Ordering::Relaxed),
        sendfile_bytes: engine.counters.sendfile_bytes.load(Ordering::Relaxed),
        packed_blocks: engine.counters.packed_blocks.load(Ordering::Relaxed),
        packed_bytes: engine.counters.packed_bytes.load(Ordering::Relaxed),
        fast_paths,
        skipped: scanned.skipped.clone(),
        excluded: scanned.excluded,
        hard_links: scanned.hard_links,
        sparse_files: scanned.sparse_files,
        owner_not_kept: receiver.owner_not_kept.unwrap_or(0),
        owner_not_kept_why: "the node is not root",
        xattrs_not_kept: receiver.xattrs_not_kept.unwrap_or(0),
        xattrs_not_kept_why: "",
        receiver,
        scheduler,
        pinned: engine.pinned.into_inner().expect("pinned lock"),
        placement: engine.placement,
        timeline,
        digest: opts.digest,
        resumed_blocks,
        resumed_bytes,
        hole_bytes,
        endgame_blocks: engine.tail.twice_blocks.load(Ordering::Relaxed),
        endgame_bytes: engine.tail.twice_bytes.load(Ordering::Relaxed),
        unchanged: None,
        verify: opts.verify,
        congestion: String::new(),
        congestion_note: None,
        round_trips: 0,
        network,
        network_timeline,
        verdict,
        deleted: deleted.into_inner().expect("deleted lock"),
    })
}
