//! What a connection costs the node before it has said who it is, and how many it may hold.
//!
//! Every accepted socket takes a [`Slot`] from the [`Limiter`]: a global cap and a per-peer cap
//! (by IP address), released when the connection ends, whoever ends it. A socket past a cap is
//! refused in the accept thread itself (a short ERROR E_BUSY, or just closed on a TLS node)
//! without a thread ever being spawned for it.
//!
//! Admitted sockets then wait in the [`Lobby`]: one thread and one epoll set for all of them,
//! not a thread each. The lobby reads their first frames without blocking, answers HELLO with
//! HELLO_OK and checks AUTH (through the server's `greet` callback), and only a connection that
//! has authenticated (or sent DATA_HELLO, whose token the server checks) leaves it for a thread
//! of its own. So 2,000 sockets that connect and say nothing, or send a byte a second, cost a
//! descriptor and a few hundred bytes each, and the handshake timeout closes them. A poll-based
//! stage rather than a fixed pool of handshake threads: a pool of N is held by N slow clients
//! for the whole handshake timeout, and everyone behind them waits; the lobby has no such N.
//!
//! When the global cap is full, a new connection evicts the oldest one still in the lobby
//! (sshd's MaxStartups drops early for the same reason): an attacker filling the cap with idle
//! sockets only churns its own sockets, while a real client, whose handshake takes a round trip,
//! is very unlikely to be the oldest. Authenticated connections are never evicted.
//!
//! A TLS node cannot read frames before the TLS handshake, which rustls runs on blocking I/O
//! here: its connections wait in the lobby for their first byte, then get a thread for the
//! handshake (within the handshake timeout) and a relay thread (crate::sys::tls), and the engine's
//! end of the relay comes back to the lobby for HELLO and AUTH. So on a TLS node a connection
//! that has sent its first byte costs a thread, bounded by the caps.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::net::{IpAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::epoll;

use crate::error::{Error, Result};
use crate::wire::frame::{Msg, Nonce, Token};

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The node holds its most connections.
    Total(usize),
    /// This peer holds its most connections.
    Peer(usize),
}

impl Refusal {
    pub fn error(self) -> Error {
        match self {
            Refusal::Total(n) => Error::Busy(format!("the node holds {n} connections, the most it takes (--max-connections)")),
            Refusal::Peer(n) => {
                Error::Busy(format!("this address holds {n} connections to the node, the most one peer may (--max-per-peer)"))
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    peers: HashMap<IpAddr, usize>,
}

/// Counts open connections, in all and per peer address.
pub struct Limiter {
    max_total: usize,
    max_per_peer: usize,
    counts: Mutex<Counts>,
    refused: AtomicU64,
}

/// The address a peer is counted by: an IPv4 address (or one mapped into IPv6) as it is, an
/// IPv6 address by its /64, the least a site is given, so that one host cannot be 2^64 peers.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One connection's place under the caps; dropping it frees the place.
pub struct Slot {
    limiter: Arc<Limiter>,
    peer: IpAddr,
}

impl Limiter {
    pub fn new(max_total: usize, max_per_peer: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            max_total: max_total.max(1),
            max_per_peer: max_per_peer.max(1),
            counts: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    /// A slot for a connection from `peer`, or why not. The per-peer cap is checked first: a
    /// peer at its own cap is refused even when the node has room.
    pub fn acquire(self: &Arc<Self>, peer: IpAddr) -> std::result::Result<Slot, Refusal> {
        let peer = peer_key(peer);
        let mut c = self.counts.lock().expect("connection counts lock");
        let mine = c.peers.get(&peer).copied().unwrap_or(0);
        if mine >= self.max_per_peer {
            return Err(Refusal::Peer(self.max_per_peer));
        }
        if c.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        c.total += 1;
        *c.peers.entry(peer).or_insert(0) += 1;
        Ok(Slot { limiter: Arc::clone(self), peer })
    }

    pub fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("connection counts lock").total
    }

    /// Connections open now from `peer`.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        self.counts.lock().expect("connection counts lock").peers.get(&peer_key(peer)).copied().unwrap_or(0)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    pub fn max_per_peer(&self) -> usize {
        self.max_per_peer
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limiter.counts.lock().expect("connection counts lock");
        c.total -= 1;
        if let Some(n) = c.peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                // An address seen once must not cost memory for ever.
                c.peers.remove(&self.peer);
            }
        }
    }
}

/// Descriptors a connection may hold: its socket, and on a TLS node the relay's socket pair.
pub fn fds_per_connection(tls: bool) -> usize {
    if tls {
        3
    } else {
        1
    }
}

/// Descriptors kept for everything that is not a connection: files a push's writers and a
/// pull's readers hold open, state files, the journal, epoll, the binding's own.
pub const FD_RESERVE: u64 = 512;

/// Raises the soft RLIMIT_NOFILE to the hard limit (the soft default, 1,024 on most systems, is
/// smaller than the connections a node takes) and returns the soft limit now in force.
pub fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let _ = setrlimit(Resource::Nofile, rustix::process::Rlimit { current: lim.maximum, maximum: lim.maximum });
    }
    getrlimit(Resource::Nofile).current
}

/// The global cap the descriptor limit allows: `wanted`, or fewer when `nofile` (None: no
/// limit) would run out first, so that accept never fails with EMFILE at the cap.
pub fn cap_for_nofile(wanted: usize, nofile: Option<u64>, tls: bool) -> usize {
    match nofile {
        None => wanted,
        Some(n) => wanted.min((n.saturating_sub(FD_RESERVE) / fds_per_connection(tls) as u64).max(16) as usize),
    }
}

/// Where a connection in the lobby is in its handshake.
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    /// A TLS node's connection, waiting for its first byte.
    Tls,
    /// Waiting for HELLO or DATA_HELLO.
    First,
    /// HELLO_OK sent, waiting for AUTH.
    Auth { client: Nonce, ours: Nonce, features: u64 },
    /// Done: a control connection (authenticated if the node has a token).
    Control { features: u64 },
    /// Done: a data connection naming this session.
    Data { token: Token },
}

/// A connection in the lobby.
pub struct Waiting {
    pub sock: TcpStream,
    pub peer: IpAddr,
    pub slot: Slot,
    pub stage: Stage,
    /// The end of the current stage of the handshake.
    pub until: Instant,
    /// The frame being read: header, then body.
    buf: Vec<u8>,
}

/// What the lobby does with a connection after a frame.
pub enum Next {
    /// Wait in the lobby for the next frame.
    Wait,
    /// Leave the lobby: the connection gets a thread.
    Leave,
    /// Close it (the callback has said why on the socket, if it could).
    Close,
}

struct Rooms {
    waiting: BTreeMap<u64, Waiting>,
    next_id: u64,
}

/// The pre-authentication stage: an epoll set of sockets that have not finished the handshake.
pub struct Lobby {
    epoll: OwnedFd,
    wake: OwnedFd,
    rooms: Mutex<Rooms>,
    evicted: AtomicU64,
}

/// The eventfd's key in the epoll set; connections count up from 1.
const WAKE: u64 = 0;

/// How often the lobby looks for connections past their deadline: a deadline is kept within
/// this much, and a sweep of a few thousand entries costs microseconds.
const SWEEP: Duration = Duration::from_millis(100);
/// The largest frame the lobby reads: HELLO, DATA_HELLO and AUTH are under 64 bytes. So a
/// connection that trickles a frame holds at most this much of the node's memory, 4 MiB for
/// 4,096 of them, not a control frame's 64 KiB each.
pub const LOBBY_MAX_FRAME: u32 = 1024;

/// How often a data connection waiting for its session asks again: a pull's streams wait at
/// most this much longer than with a thread each polling.
const PARKED_POLL: Duration = Duration::from_millis(5);

impl Lobby {
    pub fn new() -> Result<Lobby> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll_create", b"lobby", e.into()))?;
        let wake = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)
            .map_err(|e| Error::io("eventfd", b"lobby", e.into()))?;
        epoll::add(&epoll, &wake, epoll::EventData::new_u64(WAKE), epoll::EventFlags::IN)
            .map_err(|e| Error::io("epoll_ctl", b"lobby", e.into()))?;
        Ok(Lobby { epoll, wake, rooms: Mutex::new(Rooms { waiting: BTreeMap::new(), next_id: WAKE + 1 }), evicted: AtomicU64::new(0) })
    }

    /// Takes a connection in; it must finish `stage` within `within`. Dropped (and its slot
    /// freed) if it cannot be watched.
    pub fn admit(&self, sock: TcpStream, peer: IpAddr, slot: Slot, stage: Stage, within: Duration) {
        if sock.set_nonblocking(true).is_err() {
            return;
        }
        let mut rooms = self.rooms.lock().expect("lobby lock");
        let id = rooms.next_id;
        rooms.next_id += 1;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        if epoll::add(&self.epoll, &sock, epoll::EventData::new_u64(id), flags).is_err() {
            return;
        }
        let buf = Vec::new();
        rooms.waiting.insert(id, Waiting { sock, peer, slot, stage, until: Instant::now() + within, buf });
    }

    /// Closes the connection that has waited longest, to make room for a new one; false if
    /// the lobby is empty.
    pub fn evict_oldest(&self) -> bool {
        let mut rooms = self.rooms.lock().expect("lobby lock");
        match rooms.waiting.pop_first() {
            Some((_, w)) => {
                let _ = epoll::delete(&self.epoll, &w.sock);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Connections in the lobby now.
    pub fn len(&self) -> usize {
        self.rooms.lock().expect("lobby lock").waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Wakes `run` (to see `stop`).
    pub fn wake(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    /// The lobby's loop, until `stop`: reads frames as they arrive and gives each whole one to
    /// `greet`; connections that leave go to `leave` (blocking again), outside the lobby's lock.
    /// A connection past its deadline gets `greet(Err(E_TIMEOUT))` and is closed. A data
    /// connection `greet` keeps waiting (its session not known yet: a pull's client may open
    /// its streams before the node has read its READY) is not read any more (its blocks may
    /// follow) but asked after with `known` every few milliseconds, and at its deadline gets
    /// `greet(Err(E_PROTOCOL))`: so a DATA_HELLO with a made-up token costs no thread either.
    pub fn run(
        &self,
        stop: &AtomicBool,
        mut greet: impl FnMut(&mut Waiting, Result<Msg>) -> Next,
        mut known: impl FnMut(&Token) -> bool,
        mut leave: impl FnMut(Waiting),
    ) {
        let mut events = Vec::with_capacity(256);
        let mut last_sweep = Instant::now();
        let mut parked: Vec<u64> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            events.clear();
            let wait = if parked.is_empty() { SWEEP } else { PARKED_POLL };
            let timeout = rustix::event::Timespec { tv_sec: 0, tv_nsec: wait.as_nanos() as _ };
            match epoll::wait(&self.epoll, spare(&mut events), Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(SWEEP),
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let mut leaving = Vec::new();
            {
                let mut rooms = self.rooms.lock().expect("lobby lock");
                for ev in &events {
                    let id = ev.data.u64();
                    if id == WAKE {
                        let mut b = [0u8; 8];
                        let _ = rustix::io::read(&self.wake, &mut b);
                        continue;
                    }
                    // Evicted since the wait returned.
                    let Some(w) = rooms.waiting.get_mut(&id) else { continue };
                    let next = match w.stage {
                        Stage::Tls => match w.sock.peek(&mut [0u8; 1]) {
                            Ok(0) => Next::Close,
                            Ok(_) => Next::Leave,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Next::Wait,
                            Err(_) => Next::Close,
                        },
                        _ => match read_frame(w) {
                            Ok(None) => Next::Wait,
                            Ok(Some(Ok(msg))) => greet(w, Ok(msg)),
                            Ok(Some(Err(e))) => greet(w, Err(e)),
                            // A client without a token hangs up once HELLO_OK asks for AUTH:
                            // a failed login the node's log should show, not a silent close.
                            Err(()) if matches!(w.stage, Stage::Auth { .. }) => {
                                greet(w, Err(Error::Auth("the client hung up instead of authenticating (it has no token?)")))
                            }
                            // End of stream or a reset: nothing to say to it.
                            Err(()) => Next::Close,
                        },
                    };
                    match next {
                        Next::Wait => {
                            if matches!(w.stage, Stage::Data { .. }) {
                                let _ = epoll::delete(&self.epoll, &w.sock);
                                parked.push(id);
                            }
                        }
                        Next::Leave | Next::Close => {
                            let w = rooms.waiting.remove(&id).expect("present");
                            let _ = epoll::delete(&self.epoll, &w.sock);
                            if matches!(next, Next::Leave) && w.sock.set_nonblocking(false).is_ok() {
                                leaving.push(w);
                            }
                        }
                    }
                }
                parked.retain(|id| {
                    let Some(w) = rooms.waiting.get(id) else { return false };
                    let Stage::Data { token } = w.stage else { return false };
                    if !known(&token) {
                        return true;
                    }
                    let w = rooms.waiting.remove(id).expect("present");
                    if w.sock.set_nonblocking(false).is_ok() {
                        leaving.push(w);
                    }
                    false
                });
                if last_sweep.elapsed() >= SWEEP {
                    last_sweep = Instant::now();
                    let now = Instant::now();
                    let late: Vec<u64> = rooms.waiting.iter().filter(|(_, w)| w.until <= now).map(|(&id, _)| id).collect();
                    for id in late {
                        let mut w = rooms.waiting.remove(&id).expect("present");
                        let _ = epoll::delete(&self.epoll, &w.sock);
                        match w.stage {
                            Stage::Tls => {}
                            Stage::Data { .. } => {
                                greet(&mut w, Err(Error::Protocol("unknown session token".into())));
                            }
                            _ => {
                                greet(&mut w, Err(Error::Timeout("the handshake")));
                            }
                        }
                    }
                }
            }
            for w in leaving {
                leave(w);
            }
        }
        // Closing: the connections still waiting are dropped with the lobby's lock.
        self.rooms.lock().expect("lobby lock").waiting.clear();
    }
}

fn spare(v: &mut Vec<epoll::Event>) -> rustix::buffer::SpareCapacity<'_, epoll::Event> {
    rustix::buffer::spare_capacity(v)
}

/// Reads what has arrived of the connection's next frame, never past its end (a data stream's
/// blocks may follow DATA_HELLO at once). `Ok(None)`: not whole yet; `Err(())`: the peer
/// closed or reset.
fn read_frame(w: &mut Waiting) -> std::result::Result<Option<Result<Msg>>, ()> {
    loop {
        let need = if w.buf.len() < 5 {
            5
        } else {
            let len = u32::from_le_bytes(w.buf[..4].try_into().expect("4"));
            if len == 0 {
                return Ok(Some(Err(Error::Protocol("zero-length frame".into()))));
            }
            // The frames of a handshake are small, and nothing else may come first: a bigger
            // header is refused before a byte of its body is buffered.
            if len > LOBBY_MAX_FRAME {
                return Ok(Some(Err(Error::Limit { what: "handshake frame length", limit: LOBBY_MAX_FRAME as u64, got: len as u64 })));
            }
            4 + len as usize
        };
        if w.buf.len() >= 5 && w.buf.len() == need {
            let msg = Msg::decode(w.buf[4], &w.buf[5..]);
            w.buf.clear();
            return Ok(Some(msg));
        }
        let at = w.buf.len();
        w.buf.resize(need, 0);
        match (&w.sock).read(&mut w.buf[at..]) {
            Ok(0) => return Err(()),
            Ok(n) => w.buf.truncate(at + n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                w.buf.truncate(at);
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => w.buf.truncate(at),
            Err(_) => return Err(()),
        }
    }
}

/// Writes a whole small frame now or not at all: a socket in the lobby is non-blocking, and a
/// handshake answer (under 200 bytes) always fits a fresh socket's buffer unless the peer is
/// not reading, in which case it is closed.
pub fn send_now(sock: &TcpStream, bytes: &[u8]) -> bool {
    use rustix::net::{send, SendFlags};
    match send(sock.as_fd(), bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
        Ok(n) => n == bytes.len(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
