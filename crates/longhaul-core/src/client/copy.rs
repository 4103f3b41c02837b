//! A third-party copy: this side asks one node to push a tree to another and watches.

use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::session::handshake::{self, Dial};
use crate::session::progress::{every, Done, Progress};
use crate::session::send::SendOptions;
use crate::sys::tls::ClientTls;
use crate::wire::auth::Secret;
use crate::wire::frame::{self, Msg};

use super::Received;
use std::ops::ControlFlow;

/// How a third-party copy runs: the streams and block size the pushing node uses, and how this
/// side reaches that node.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub streams: u16,
    pub block_size: u32,
    pub secret: Option<Secret>,
    /// TLS to the node asked to push, and how to trust it; `None` is plaintext.
    pub tls: Option<ClientTls>,
    /// Connecting, and the longest silence of the node while it copies.
    pub timeout: Duration,
    /// The pushing node sends whole-file digests and the receiving one checks every file.
    pub verify_full: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        let send = SendOptions::default();
        CopyOptions {
            streams: send.streams,
            block_size: send.block_size,
            secret: None,
            tls: None,
            timeout: send.io_timeout,
            verify_full: false,
        }
    }
}

/// Asks the node at `from` to push `src` (under its root) to the node at `to`, into `dest`
/// there. The data goes from node to node; this side sees progress and the outcome (the
/// receiving node's summary). With `verify_full` the pushing node sends whole-file digests and
/// the receiving one checks every file read back.
pub fn copy(
    from: &str,
    src: &[u8],
    to: &str,
    dest: &[u8],
    opts: &CopyOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Received> {
    let started = Instant::now();
    let CopyOptions { streams, block_size, timeout, verify_full, .. } = *opts;
    let dial = Dial { addr: from, secret: opts.secret.as_ref(), tls: opts.tls.as_ref(), connect_timeout: timeout, io_timeout: timeout };
    let wanted = handshake::wanted(false, verify_full);
    let (mut control, _, hello) = handshake::open(&dial, wanted)?;
    handshake::require(&hello, wanted & frame::FEATURE_VERIFY_FULL)?;
    frame::write_msg(&mut control, &Msg::Copy { to: to.to_owned(), src: src.to_vec(), dest: dest.to_vec(), streams, block_size })?;
    // The node reports progress every 100 ms; a node silent for the timeout is stuck.
    let watcher = control.try_clone().map_err(Error::net("cloning a socket"))?;
    let done = Done::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            every(Duration::from_millis(20), &done, || {
                if cancel.load(Ordering::Relaxed) {
                    let _ = watcher.shutdown(Shutdown::Both);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
        });
        // COPY_PROGRESS carries what the pushing node's engine has done, resumed blocks
        // included, and nothing to tell them apart: the progress counts it all as moved (a
        // resumed copy's rate runs high until the end); the summary, from the receiving node,
        // counts what travelled exactly.
        let mut total = None;
        let r = loop {
            match frame::expect_reply(&mut control, 0) {
                Ok(Msg::CopyProgress { bytes_done, bytes_total, files_done, files_total }) => {
                    total = Some(bytes_total);
                    on_progress(&Progress {
                        bytes_done,
                        bytes_total,
                        bytes_moved: bytes_done,
                        files_done,
                        files_total,
                        files_in_flight: 0,
                        seconds: started.elapsed().as_secs_f64(),
                        per_stream_bytes: Vec::new(),
                    })
                }
                Ok(Msg::Summary(summary)) => break Ok(Received::new(summary.clone(), total.unwrap_or(summary.bytes).max(summary.bytes))),
                Ok(m) => break Err(m.unexpected("COPY_PROGRESS or SUMMARY")),
                Err(_) if cancel.load(Ordering::Relaxed) => break Err(Error::Cancelled),
                Err(e) => break Err(e),
            }
        };
        done.raise();
        r
    })
}
