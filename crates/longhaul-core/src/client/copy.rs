//! A third-party copy: this side asks one node to push a tree to another and watches.

use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::session::handshake::{self, Dial};
use crate::session::progress::Progress;
use crate::sys::tls::ClientTls;
use crate::wire::auth::Secret;
use crate::wire::frame::{self, Msg, SummaryMsg};

/// Asks the node at `from` to push `src` (under its root) to the node at `to`, into `dest`
/// there. The data goes from node to node; this side sees progress and the outcome (the
/// receiving node's summary). With `verify_full` the pushing node sends whole-file digests and
/// the receiving one checks every file read back.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    from: &str,
    src: &[u8],
    to: &str,
    dest: &[u8],
    streams: u16,
    block_size: u32,
    secret: Option<&Secret>,
    tls: Option<&ClientTls>,
    timeout: Duration,
    verify_full: bool,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SummaryMsg> {
    let started = Instant::now();
    let dial = Dial { addr: from, secret, tls, connect_timeout: timeout, io_timeout: timeout };
    let wanted = handshake::wanted(false, verify_full);
    let (mut control, _, hello) = handshake::open(&dial, wanted)?;
    handshake::require(&hello, wanted & frame::FEATURE_VERIFY_FULL)?;
    frame::write_msg(&mut control, &Msg::Copy { to: to.to_owned(), src: src.to_vec(), dest: dest.to_vec(), streams, block_size })?;
    // The node reports progress every 100 ms; a node silent for the timeout is stuck.
    let watcher = control.try_clone().map_err(Error::net("cloning a socket"))?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    let _ = watcher.shutdown(Shutdown::Both);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = loop {
            match frame::expect_reply(&mut control, 0) {
                Ok(Msg::CopyProgress { bytes_done, bytes_total, files_done, files_total }) => on_progress(&Progress {
                    bytes_done,
                    bytes_total,
                    files_done,
                    files_total,
                    seconds: started.elapsed().as_secs_f64(),
                    per_stream_bytes: Vec::new(),
                }),
                Ok(Msg::Summary(summary)) => break Ok(summary),
                Ok(m) => break Err(m.unexpected("COPY_PROGRESS or SUMMARY")),
                Err(_) if cancel.load(Ordering::Relaxed) => break Err(Error::Cancelled),
                Err(e) => break Err(e),
            }
        };
        done.store(true, Ordering::Relaxed);
        r
    })
}
