//! A third-party copy: this node pushes a tree under its root to another node; the client
//! that asked watches its progress.

use super::budget;
use super::path::{check_session_shape, resolve_source};
use super::pull::node_send_options;
use super::state::Direction;
use super::Caller;
use crate::error::{Error, Result};
use crate::session::progress::Progress;
use crate::session::progress::{every, Done, Watch};
use crate::session::send::pool_shape;
use crate::session::send::scan_and_send;
use crate::wire::frame::{self, Msg};
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A third-party copy: this node pushes `src` to the node at `to`; the client watches.
pub(super) fn copy(
    caller: Caller<'_>,
    sock: &mut TcpStream,
    to: &str,
    src: &[u8],
    dest: &[u8],
    streams: u16,
    block_size: u32,
) -> Result<()> {
    let Caller { inner, peer, features } = caller;
    // Before anything else: a target the operator did not list is never connected to.
    inner.copy_to.check(to)?;
    inner.admit()?;
    inner.memory.check_room()?;
    // The node's own limits, not what the receiving node advertises, bound the copy's blocks
    // and streams, and so its pool.
    check_session_shape(&inner.limits(), streams, block_size)?;
    let source = resolve_source(&inner.root, src)?;
    let active = inner.state.begin(peer, Direction::Copy, src, 0, 0, streams);
    let opts = node_send_options(inner, streams, block_size, features);
    let cancel = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    // The client going away cancels the copy.
    let mut watch = sock.try_clone().map_err(Error::net("cloning a socket"))?;
    let files = [AtomicU64::new(0), AtomicU64::new(0)];
    let sent = Done::default();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let _ = frame::read_msg(&mut watch, 0);
            if !finished.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            }
        });
        let sender = s.spawn(|| {
            let _raise = sent.on_drop();
            let progress = |p: &Progress| {
                active.done.store(p.bytes_done, Ordering::Relaxed);
                active.bytes_total.store(p.bytes_total, Ordering::Relaxed);
                active.files_total.store(p.files_total, Ordering::Relaxed);
                files[0].store(p.files_done, Ordering::Relaxed);
                files[1].store(p.files_total, Ordering::Relaxed);
            };
            let stop = || cancel.load(Ordering::Relaxed) || inner.closing.load(Ordering::Relaxed);
            // The engine polls its cancel flag; mirror ours and the node's into it.
            let flag = AtomicBool::new(false);
            let copied = Done::default();
            std::thread::scope(|s2| {
                let r = s2.spawn(|| {
                    let _raise = copied.on_drop();
                    crate::panic::catch("copy", || {
                        // Memory is reserved after the scan (the index's size is known) and
                        // before the connection and the pool.
                        let admit = |scan: &crate::vfile::scan::Scan| {
                            let (buf, count) = pool_shape(&opts, streams, scan.index.total());
                            let share = budget::index_share(scan.index.encode().len(), scan.index.entries().len());
                            inner.memory.reserve(buf as u64 * count as u64 + share)
                        };
                        scan_and_send(&source, to, dest, &opts, Watch { cancel: &flag, on_progress: &progress }, &admit)
                    })
                });
                every(Duration::from_millis(20), &copied, || {
                    if stop() {
                        flag.store(true, Ordering::Relaxed);
                    }
                    ControlFlow::Continue(())
                });
                r.join().unwrap_or_else(|p| Err(crate::panic::from_payload("copy", p)))
            })
        });
        // Progress to the client every 100 ms, which also shows it the node is alive.
        every(Duration::from_millis(100), &sent, || {
            let msg = Msg::CopyProgress {
                bytes_done: active.done.load(Ordering::Relaxed),
                bytes_total: active.bytes_total.load(Ordering::Relaxed),
                files_done: files[0].load(Ordering::Relaxed),
                files_total: files[1].load(Ordering::Relaxed),
            };
            if frame::write_msg(sock, &msg).is_err() {
                cancel.store(true, Ordering::SeqCst);
            }
            ControlFlow::Continue(())
        });
        finished.store(true, Ordering::SeqCst);
        let r = sender.join().unwrap_or_else(|p| Err(crate::panic::from_payload("copy", p)));
        let reply = match &r {
            // An older client would refuse the disk figures it did not ask for.
            Ok(summary) => Msg::Summary(frame::SummaryMsg {
                disk: summary.receiver.disk.clone().filter(|_| features & frame::FEATURE_DISK_STATS != 0),
                ..summary.receiver.clone()
            }),
            Err(e) => Msg::error(e),
        };
        let _ = frame::write_msg(sock, &reply);
        let _ = sock.shutdown(std::net::Shutdown::Both);
        r
    });
    inner.state.count_bytes(peer, 0, active.done.load(Ordering::Relaxed));
    inner.state.end(&active, result.as_ref().map(|_| ()));
    // Already answered above, so the caller does not count it: counted here.
    if let Err(e) = &result {
        inner.state.count_error(e.code());
    }
    Ok(())
}
