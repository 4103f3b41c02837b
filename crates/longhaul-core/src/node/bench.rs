//! A bench session (BENCH, FEATURE_DISCARD; `longhaul bench`): a client sends generated data
//! over a normal session (its streams, rate limits, placement and checksums), and this node checks
//! every block and throws it away (`Receive::discarding`). Nothing is stored, journaled or
//! reserved from the capacity; the transfer is in the table and the log as `bench`, and the
//! SUMMARY carries the CPU time the node spent on it.

use super::path::check_session_shape;
use super::state::Direction;
use super::{node_placement, Caller};
use crate::error::{Error, Result};
use crate::session::exchange;
use crate::session::recv::{Fsync, Receive, SessionParams};
use crate::session::send::bench_index;
use crate::sys::cputime::thread_cpu_us;
use crate::vfile::index::Kind;
use crate::wire::auth;
use crate::wire::frame::{self, Msg};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(super) fn bench(caller: Caller<'_>, sock: &mut TcpStream, streams: u16, block_size: u32, size: u64) -> Result<()> {
    let Caller { inner, peer, features } = caller;
    let cpu_at_start = thread_cpu_us();
    if !inner.opts.bench {
        return Err(Error::Denied("this node refuses bench sessions (it was started with serve --no-bench)".into()));
    }
    inner.admit()?;
    check_session_shape(&inner.limits(), streams, block_size)?;
    if size == 0 {
        return Err(Error::Protocol("a bench of 0 bytes".into()));
    }
    let index = bench_index(size)?;
    let active = inner.state.begin(peer, Direction::Bench, b"", index.total(), index.count(Kind::File) as u64, streams);
    let token = auth::random_bytes::<{ frame::TOKEN_LEN }>()?;
    let params = SessionParams {
        dest: Vec::new(),
        streams,
        block_size,
        writers: 0,
        token,
        placement: node_placement(inner, peer),
        idle_timeout: inner.opts.idle_timeout,
        throttle: inner.throttle(peer),
        counter: Arc::clone(&active.done),
        fsync: Fsync::None,
        verify_full: false,
        resume: None,
        keep_setid: false,
        space: None,
    };
    let recv = match Receive::discarding(inner.root_fd.as_fd(), index, params, Arc::clone(&inner.pool)) {
        Ok(r) => r,
        Err(e) => {
            inner.state.end(&active, Err(&e));
            return Err(e);
        }
    };
    inner.sessions.lock().expect("sessions lock").insert(token, Arc::clone(&recv));
    if inner.closing.load(Ordering::SeqCst) {
        recv.fail(Error::Busy("the node is shutting down".into()));
    }
    let result = exchange::accept(sock, token, streams, None, None).and_then(|()| {
        recv.watch_control(sock)?;
        recv.wait_and_finish()
    });
    inner.sessions.lock().expect("sessions lock").remove(&token);
    inner.state.count_bytes(peer, recv.bytes_received(), 0);
    inner.state.end(&active, result.as_ref().map(|_| ()));
    let mut summary = result?;
    // The receivers' time is in the summary already; this thread's (the handshake, the
    // exchange, the wait) joins it.
    let control = thread_cpu_us().saturating_sub(cpu_at_start);
    summary.cpu_us = summary.cpu_us.map(|us| us + control);
    if features & frame::FEATURE_DISK_STATS == 0 {
        summary.disk = None;
        summary.cpu_us = None;
    }
    frame::write_msg(sock, &Msg::Summary(summary))
}
