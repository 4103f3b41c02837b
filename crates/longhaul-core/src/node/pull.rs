//! A pull: this node sends a tree under its root to the client, over data connections the
//! client opens.

use super::budget;
use super::path::{check_session_shape, resolve_source};
use super::state::Direction;
use super::{Caller, Inner};
use crate::error::{Error, Result};
use crate::session::exchange;
use crate::session::progress::Progress;
use crate::session::progress::Watch;
use crate::session::send::{pool_shape, SchedulerKind, SendOptions, Verify};
use crate::session::send::{summed, transmit, Attached, Scanned};
use crate::sys::net::Deadline;
use crate::vfile::index::Kind;
use crate::vfile::scan::scan_within;
use crate::wire::frame;
use crossbeam_channel::bounded;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Instant;

/// Options for the sender engine when the node itself sends (pull, copy). When the client's
/// HELLO asked for whole-file verification, the node sends file digests (pull) or asks the
/// receiving node for it too (copy).
pub(super) fn node_send_options(inner: &Inner, streams: u16, block_size: u32, features: u64) -> SendOptions {
    SendOptions {
        streams,
        block_size,
        // Enough for two blocks per stream in flight and the readers' next ones, but never
        // more than the push pool's count whatever streams a client asks for; fewer still for
        // less data (sender::pool_shape). The memory budget bounds the sum.
        pool_buffers: (2 * streams as usize + 4).min(inner.opts.pool_buffers).max(1),
        scheduler: SchedulerKind::Pipelined,
        cores: inner.opts.cores.clone(),
        pin: inner.opts.pin,
        sysfs_root: inner.opts.sysfs_root.clone(),
        io_timeout: inner.opts.idle_timeout,
        summary_timeout: Some(inner.opts.idle_timeout),
        secret: inner.opts.secret.clone(),
        tls: inner.opts.peer_tls.clone(),
        verify: if features & frame::FEATURE_VERIFY_FULL != 0 { Verify::Full } else { Verify::Block },
        confine: Some(inner.root.clone()),
        congestion: inner.opts.congestion.clone(),
        ..SendOptions::default()
    }
}

/// A file's number and BLAKE3 (`send::summed`), held while a `--checksum` pull runs.
const DIGEST_BYTES: u64 = 4 + 32;

/// A pull: this node sends `path` to the client over data connections the client opens.
/// `keep`: GET's `KEEP_*`, what of its metadata the client asked for (FEATURE_META_SYNC).
pub(super) fn pull(caller: Caller<'_>, sock: &mut TcpStream, path: &[u8], streams: u16, block_size: u32, keep: u8) -> Result<()> {
    let Caller { inner, peer, features } = caller;
    inner.admit()?;
    inner.memory.check_room()?;
    check_session_shape(&inner.limits(), streams, block_size)?;
    let source = resolve_source(&inner.root, path)?;
    let started = Instant::now();
    let scanned = scan_within(&source, 4, Some(&inner.root), &Default::default())?;
    let scanned = match (features & frame::FEATURE_HARD_LINKS == 0).then(|| scanned.for_peer_without_links()).transpose()?.flatten() {
        Some(flat) => flat,
        None => scanned,
    };
    let scanned = match (features & frame::FEATURE_SPARSE == 0).then(|| scanned.for_peer_without_sparse()).transpose()?.flatten() {
        Some(whole) => whole,
        None => scanned,
    };
    let which = keep & (frame::KEEP_OWNER | frame::KEEP_GROUP);
    let scanned = match which != 0 && features & frame::FEATURE_OWNER != 0 {
        // KEEP_OWNER and KEEP_GROUP are the index's OWNER_UID and OWNER_GID.
        true => scanned.with_owners(which)?,
        false => scanned,
    };
    // Those over 64 KiB or unreadable here are left out: the file arrives without them.
    let scanned = match keep & frame::KEEP_XATTRS != 0 && features & frame::FEATURE_XATTRS != 0 {
        true => scanned.with_xattrs()?.0,
        false => scanned,
    };
    let scan_seconds = started.elapsed().as_secs_f64();
    let index = &scanned.index;
    let encoded = index.encode();
    // The pool this pull will allocate, sized to its data, and its index come out of the
    // node's memory before either is held for the transfer.
    let opts = node_send_options(inner, streams, block_size, features);
    let (buf, count) = pool_shape(&opts, streams, index.total());
    let _memory = inner.memory.reserve(buf as u64 * count as u64 + budget::index_share(encoded.len(), index.entries().len()))?;
    // `get --checksum`: the client decides what it holds by content, from this node's BLAKE3 of
    // each file (read once here; `verify: full` then sends them without reading the tree again)
    // against its own. The digests are held for the pull: out of the node's memory too.
    let checksum = features & frame::FEATURE_CHECKSUM != 0 && features & frame::FEATURE_RESUME != 0;
    let _digest_memory = checksum.then(|| inner.memory.reserve(index.entries().len() as u64 * DIGEST_BYTES)).transpose()?;
    let computed = OnceLock::new();
    let stopped = || inner.closing.load(Ordering::Relaxed);
    let digests = || summed(&scanned, &computed, &stopped);
    let offer = exchange::Offer {
        dest: path,
        streams,
        block_size,
        index: encoded,
        total: index.total(),
        resume: features & frame::FEATURE_RESUME != 0,
        sums: checksum.then_some(exchange::Sums { mode: frame::SUMS_CONTENT, digests: &digests }),
        mirror: None,
        bench: false,
        pieces: None,
        proof: None,
    };
    // READY (and the PLAN of what an earlier attempt left the client) within the handshake
    // timeout; the client may take fewer streams than offered.
    let exchange::Accepted { token, streams, skip, .. } = exchange::offer(&mut Deadline::new(sock, inner.opts.handshake_timeout), offer)?;
    let _ = sock.set_read_timeout(None);
    let (tx, rx) = bounded::<TcpStream>(streams as usize);
    {
        let mut pulls = inner.pulls.lock().expect("pulls lock");
        if pulls.contains_key(&token) || inner.sessions.lock().expect("sessions lock").contains_key(&token) {
            return Err(Error::Protocol("session token already in use".into()));
        }
        pulls.insert(token, tx);
    }
    let until = Instant::now() + inner.opts.handshake_timeout;
    let mut sockets = Vec::with_capacity(streams as usize);
    while sockets.len() < streams as usize {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(s) => sockets.push(s),
            Err(_) => break,
        }
    }
    inner.pulls.lock().expect("pulls lock").remove(&token);
    if sockets.len() < streams as usize {
        return Err(Error::Timeout("the client did not open its data connections"));
    }
    for s in &sockets {
        s.set_write_timeout(Some(inner.opts.idle_timeout)).map_err(Error::net("setting a timeout"))?;
    }
    let active = inner.state.begin(peer, Direction::Out, path, index.total(), index.count(Kind::File) as u64, streams);
    let control = sock.try_clone().map_err(Error::net("cloning a socket"))?;
    let progress = |p: &Progress| active.done.store(p.bytes_done, Ordering::Relaxed);
    let src = Scanned { scan: &scanned, started, scan_seconds, digests: computed.into_inner() };
    let watch = Watch { cancel: &inner.closing, on_progress: &progress };
    let result =
        transmit(src, Attached { control, peer, sockets, grow: None, endgame: false }, &opts, inner.throttle(peer), &skip, None, watch);
    inner.state.count_bytes(peer, 0, active.done.load(Ordering::Relaxed));
    inner.state.end(&active, result.as_ref().map(|_| ()));
    result.map(|_| ())
}
