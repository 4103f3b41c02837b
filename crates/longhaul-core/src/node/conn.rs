//! A connection's life: accepted and counted against the caps, greeted in the lobby (the
//! handshake's node half, session::handshake), then a thread of its own for a control
//! connection (one session or a run of requests) or a data connection (attached to its session).

use super::conn_limit::{send_now, Next, Refusal, Stage, Waiting};
use super::stats::stats;
use super::{bench, copy, pull, push, requests, Caller, Inner};
use crate::error::{Error, Result};
use crate::session::handshake;
use crate::sys::net::Deadline;
use crate::sys::tls::ServerTls;
use crate::wire::frame::{self, Msg, Token};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts, counts the connection against the caps and hands it to the lobby; no thread is
/// spawned here. Over a cap the socket is answered and closed on this thread (crate::node::conn_limit).
pub(super) fn accept_loop(inner: &Arc<Inner>, listener: TcpListener) {
    for conn in listener.incoming() {
        if inner.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(sock) = conn else {
            // EMFILE and friends: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(peer) = sock.peer_addr().map(|a| a.ip()) else { continue };
        let slot = match inner.conns.acquire(peer) {
            Ok(slot) => slot,
            // Full: an idle socket still in its handshake makes room (crate::node::conn_limit).
            Err(Refusal::Total(_)) if inner.lobby.evict_oldest() => match inner.conns.acquire(peer) {
                Ok(slot) => slot,
                Err(r) => {
                    refuse(inner, &sock, r);
                    continue;
                }
            },
            Err(r) => {
                refuse(inner, &sock, r);
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        if let Some(cc) = &inner.congestion.set {
            // Chosen at start on a socket of the same kind: a failure here leaves the default.
            let _ = crate::sys::congestion::set(&sock, cc);
        }
        // Every write the node makes on this connection (an answer, a READV's sendfile, a
        // pull's blocks) fails after the idle timeout without progress, so a client that asks
        // and never reads frees its thread and descriptor then.
        let _ = sock.set_write_timeout(Some(inner.opts.idle_timeout));
        let stage = if inner.opts.tls.is_some() { Stage::Tls } else { Stage::First };
        inner.lobby.admit(sock, peer, slot, stage, inner.opts.handshake_timeout);
    }
}

/// A connection past a cap: a plaintext ERROR E_BUSY if it fits the socket buffer now (a TLS
/// client could not read it, so it is just closed), never a wait.
pub(super) fn refuse(inner: &Inner, sock: &TcpStream, why: Refusal) {
    inner.conns.count_refused();
    let e = why.error();
    inner.state.count_error(e.code());
    if inner.opts.tls.is_none() {
        send_now(sock, &Msg::error(&e).encode());
    }
}

/// The handshake, a frame at a time, for a connection in the lobby: HELLO is answered, AUTH
/// checked (a wrong token learns nothing but E_AUTH, and the connection ends), and a control
/// connection leaves the lobby only once authenticated. Runs on the lobby's thread: nothing
/// here may block.
pub(super) fn greet(inner: &Inner, w: &mut Waiting, msg: Result<Msg>) -> Next {
    let refuse = |w: &Waiting, e: Error| {
        inner.state.count_error(e.code());
        inner.state.note_refusal(w.peer, &e);
        send_now(&w.sock, &Msg::error(&e).encode());
        Next::Close
    };
    let msg = match msg {
        Ok(m) => m,
        Err(e) => return refuse(w, e),
    };
    match (w.stage, msg) {
        (Stage::First, Msg::Hello { min, max, nonce, features }) => {
            let (hello_ok, ours) = match handshake::answer_hello(min, max, inner.limits(), inner.opts.secret.is_some()) {
                Ok(answer) => answer,
                Err(e) => return refuse(w, e),
            };
            if !send_now(&w.sock, &hello_ok.encode()) {
                return Next::Close;
            }
            if inner.opts.secret.is_some() {
                w.stage = Stage::Auth { client: nonce, ours, features };
                w.until = Instant::now() + inner.opts.handshake_timeout;
                Next::Wait
            } else {
                w.stage = Stage::Control { features };
                Next::Leave
            }
        }
        (Stage::First, Msg::DataHello { token, .. }) => {
            w.stage = Stage::Data { token };
            if session_known(inner, &token) {
                return Next::Leave;
            }
            // A pulling client opens its data connections right after its READY, which this
            // node may not have read yet: an unknown token gets a short grace period, in the
            // lobby (crate::node::conn_limit), so a made-up one costs no thread.
            w.until = Instant::now() + inner.opts.handshake_timeout.min(Duration::from_secs(5));
            Next::Wait
        }
        (Stage::Auth { client, ours, features }, Msg::Auth { mac }) => {
            let secret = inner.opts.secret.as_ref().expect("AUTH is awaited only with a token");
            let auth_ok = match handshake::answer_auth(secret, &client, &ours, &mac) {
                Ok(m) => m,
                Err(e) => return refuse(w, e),
            };
            if !send_now(&w.sock, &auth_ok.encode()) {
                return Next::Close;
            }
            w.stage = Stage::Control { features };
            Next::Leave
        }
        (Stage::Auth { .. }, _) => refuse(w, Error::Auth("wrong token")),
        (_, m) => refuse(w, Error::Protocol(format!("a connection must start with HELLO or DATA_HELLO, not {:?}", m.frame_type()))),
    }
}

/// Whether a data connection's token names a push or a pull waiting for its streams.
pub(super) fn session_known(inner: &Inner, token: &Token) -> bool {
    inner.sessions.lock().expect("sessions lock").contains_key(token) || inner.pulls.lock().expect("pulls lock").contains_key(token)
}

/// A connection leaving the lobby gets its own thread; its slot goes with it and is freed when
/// the thread ends. If no thread can be made, the connection is closed.
pub(super) fn leave(inner: &Arc<Inner>, w: Waiting) {
    let i = Arc::clone(inner);
    let _ = std::thread::Builder::new().name("lh-conn".into()).spawn(move || {
        // A panic here ends this connection only; the node goes on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle_conn(&i, w)));
    });
}

pub(super) fn handle_conn(inner: &Arc<Inner>, w: Waiting) {
    let Waiting { sock, peer, slot, stage, .. } = w;
    let mut sock = sock;
    let result = match stage {
        // The TLS handshake, then the engine's end of the relay goes back to the lobby for
        // HELLO and AUTH, with the same slot.
        Stage::Tls => {
            if let Some(tls) = &inner.opts.tls {
                if let Some(s) = start_tls(inner, sock, tls) {
                    // The relay's pair has its own buffers: the write deadline must be on the
                    // engine's end too, or a stalled TLS reader would hold the writer for ever.
                    let _ = s.set_write_timeout(Some(inner.opts.idle_timeout));
                    inner.lobby.admit(s, peer, slot, Stage::First, inner.opts.handshake_timeout);
                    inner.lobby.wake();
                }
            }
            return;
        }
        // A panic in a session is answered as E_PANIC (a bug, not to be retried), not a drop.
        Stage::Control { features } => crate::panic::catch("connection", || control(inner, &mut sock, peer, features)),
        Stage::Data { token } => {
            // A pulling client opens its data connections right after its READY, which this
            // node may not have read yet: an unknown token gets a short grace period.
            let until = Instant::now() + inner.opts.handshake_timeout.min(Duration::from_secs(5));
            loop {
                let session = inner.sessions.lock().expect("sessions lock").get(&token).cloned();
                let pull = inner.pulls.lock().expect("pulls lock").get(&token).cloned();
                match (session, pull) {
                    (Some(r), _) => return r.run_stream(sock),
                    (None, Some(tx)) => {
                        // The slot is freed when this thread ends, while the socket lives on in
                        // the pull: counted by the pull's own connection instead (its streams
                        // are bounded by max_streams).
                        let _ = tx.try_send(sock);
                        return;
                    }
                    (None, None) if Instant::now() < until && !inner.closing.load(Ordering::Relaxed) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    (None, None) => break Err(Error::Protocol("unknown session token".into())),
                }
            }
        }
        Stage::First | Stage::Auth { .. } => return,
    };
    if let Err(e) = result {
        inner.state.count_error(e.code());
        // Now or never: after a write timeout the peer is not reading, and waiting another
        // idle timeout to tell it so would only hold the thread longer.
        send_now(&sock, &Msg::error(&e).encode());
    }
    drop(slot);
}

/// TLS on a new connection of a node that requires it: the handshake (within the handshake
/// timeout) and the relay, or ERROR E_TLS in plaintext to a client that did not start TLS.
pub(super) fn start_tls(inner: &Inner, mut sock: TcpStream, tls: &ServerTls) -> Option<TcpStream> {
    let peer = sock.peer_addr().ok().map(|a| a.ip());
    let refused = match crate::sys::tls::starts_tls(&sock, inner.opts.handshake_timeout) {
        Ok(None) => return None,
        Ok(Some(true)) => match crate::sys::tls::accept(sock, tls, inner.opts.handshake_timeout) {
            Ok(s) => return Some(s),
            Err(e) => {
                inner.state.count_error(e.code());
                if let Some(peer) = peer {
                    inner.state.note_refusal(peer, &e);
                }
                return None;
            }
        },
        Ok(Some(false)) => Error::Tls(
            "this node requires TLS: connect with --tls-pin (tlsPin) and the fingerprint the node prints, or --tls-ca (tlsCa)".into(),
        ),
        Err(e) => e,
    };
    inner.state.count_error(refused.code());
    if let Some(peer) = peer {
        inner.state.note_refusal(peer, &refused);
    }
    let _ = frame::write_msg(&mut sock, &Msg::error(&refused));
    None
}

/// An authenticated control connection (the lobby did HELLO and AUTH): one session or a run
/// of requests.
pub(super) fn control(inner: &Arc<Inner>, sock: &mut TcpStream, peer: IpAddr, features: u64) -> Result<()> {
    let caller = Caller { inner, peer, features };
    let limits = inner.limits();
    loop {
        // Between requests a connection may idle for the idle timeout; a session's MANIFEST
        // must come within the handshake timeout of the HELLO (checked by the same deadline).
        let wait = inner.opts.handshake_timeout.max(inner.opts.idle_timeout);
        let msg = match frame::read_msg(&mut Deadline::new(sock, wait), limits.max_manifest)? {
            None => return Ok(()),
            Some(m) => m,
        };
        let _ = sock.set_read_timeout(None);
        let answered = match msg {
            Msg::Bench { streams, block_size, size } => return bench::bench(caller, sock, streams, block_size, size),
            Msg::Manifest { dest, streams, block_size, index } => {
                return push::push(caller, sock, dest, streams, block_size, &index);
            }
            Msg::Get { path, streams, block_size, keep } => return pull::pull(caller, sock, &path, streams, block_size, keep),
            Msg::Copy { to, src, dest, streams, block_size } => return copy::copy(caller, sock, &to, &src, &dest, streams, block_size),
            Msg::List { path } => requests::list(inner, sock, &path)?,
            Msg::Readv { paths, segments } => requests::readv(inner, sock, peer, &paths, &segments)?,
            Msg::Stats => frame::write_msg(sock, &Msg::StatsOk { json: stats(inner).to_json() }).map(Ok)?,
            Msg::TreeSums { path } => super::tree_sums::tree_sums(inner, sock, &path)?,
            m => return Err(Error::Protocol(format!("unexpected {:?} frame on a control connection", m.frame_type()))),
        };
        // A refused request (a limit, a missing path) is answered and the connection goes on.
        if let Err(e) = answered {
            inner.state.count_error(e.code());
            frame::write_msg(sock, &Msg::error(&e))?;
        }
    }
}
