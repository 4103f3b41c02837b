//! A storage node: a root directory, a listening socket, a capacity, bandwidth limits and a
//! table of transfers. A connection counts against the connection caps from its accept and
//! waits in the lobby (crate::conn_limit: one epoll thread for all) until its handshake is done;
//! then it gets a thread. Its first frame says what it is: HELLO opens a control connection
//! (authenticated when the node has a token), DATA_HELLO attaches a data stream to the session
//! its token names. A control connection then carries either one
//! session (MANIFEST: a push; GET: a pull; COPY: a third-party copy) or any number of requests
//! (LIST, READV, STATS). Push sessions share the node's buffer pool; a pull or a copy runs the
//! sender engine with a small pool of its own, and `max_transfers` bounds how many run at once,
//! so the node's memory is bounded whatever its clients do. Nothing a connection does waits on
//! another connection: a stalled peer holds its own threads and buffers only, until the idle
//! timeout frees them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use rustix::fs::{Mode, OFlags};

use crate::auth::{self, Secret};
use crate::beneath::{self, DirCache};
use crate::budget::{self, Budget};
use crate::conn_limit::{Limiter, Lobby, Next, Refusal, Stage, Waiting};
use crate::copy_to::CopyTargets;
use crate::error::{lossy, Error, Result};
use crate::frame::{self, Limits, ListEntry, Msg, Segment, SegmentResult, Token};
use crate::index::{Index, Kind};
use crate::net::{self, Deadline};
use crate::node_state::{Direction, NodeState, STATE_DIR};
use crate::node_stats::{ConnectionStats, LimitStats, MemoryStats, NodeStats, PeerStats, PoolStats, ReadvStats};
use crate::placement::{allowed_cpus, Placement};
use crate::pool::Pool;
use crate::rate::{Bucket, Throttle};
use crate::receive::{Fsync, Receive, ResumeParams, SessionParams};
use crate::scan::scan_within;
use crate::sender::{pool_shape, SchedulerKind, SendOptions, Verify};
use crate::tls::{ClientTls, ServerTls};
use crate::topology::Topology;
use crate::transfer::Progress;

/// Runs of up to a quarter of this are gathered with pread into a staging buffer of this size
/// and sent in one write; longer runs go out with sendfile.
const READV_STAGING: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub root: PathBuf,
    /// `HOST:PORT`; port 0 picks a free one.
    pub listen: String,
    /// The shared token's key. `None` runs without authentication, which `Server::start`
    /// allows on a loopback address only, unless `open_remote`.
    pub secret: Option<Secret>,
    /// Allow an unauthenticated node on a non-loopback address.
    pub open_remote: bool,
    /// Bytes the node may store under its root; `None` is no limit.
    pub capacity: Option<u64>,
    /// Recount the stored bytes by walking the root instead of trusting the saved account.
    pub rescan: bool,
    /// Bytes per second for all transfers together.
    pub rate: Option<u64>,
    /// Bytes per second for all of one peer's streams together.
    pub peer_rates: Vec<(IpAddr, u64)>,
    /// Transfers (push, pull, copy) at once; more are refused with E_BUSY.
    pub max_transfers: usize,
    /// Cores for the node's I/O threads; `None` lets the placement choose (see placement.rs).
    pub cores: Option<crate::placement::CoreSpec>,
    pub pin: crate::placement::PinMode,
    /// Where sysfs and procfs are read from (`/`).
    pub sysfs_root: PathBuf,
    /// A new connection must complete its first frame within this (and a sender its MANIFEST).
    pub handshake_timeout: Duration,
    /// A data connection must deliver each frame, a 4 MiB block included, within this, and a
    /// session that makes no progress for this long is failed with E_TIMEOUT. An idle request
    /// connection is closed after it.
    pub idle_timeout: Duration,
    /// The largest block a sender may use; also the size of each pool buffer.
    pub max_block: u32,
    /// Buffers in the node's pool, shared by all push sessions.
    pub pool_buffers: usize,
    pub max_streams: u16,
    /// Disk-writer threads per session.
    pub writers: usize,
    pub max_manifest: u32,
    pub max_readv_segments: u32,
    pub max_readv_segment: u32,
    /// When received files are made durable.
    pub fsync: Fsync,
    /// TLS on every connection (crate::tls); a plaintext client is refused with E_TLS.
    pub tls: Option<Arc<ServerTls>>,
    /// TLS, and how to trust the other node, when this node pushes to another for a copy.
    pub peer_tls: Option<ClientTls>,
    /// Connections open at once, of every kind and stage (crate::conn_limit); past it a new
    /// one evicts the oldest still in its handshake, or is refused with E_BUSY. Lowered at
    /// start to what RLIMIT_NOFILE allows.
    pub max_connections: usize,
    /// Connections open at once from one IP address (an IPv6 host: its /64); past it E_BUSY.
    pub max_per_peer: usize,
    /// Bytes of memory for the buffer pools of all transfers and the content indexes they hold
    /// (crate::budget): the push pool counts from the start, each pull and copy its own pool
    /// and index, each push its index. A transfer past it gets E_BUSY with a retry-after hint.
    pub memory: u64,
    /// `HOST:PORT` targets a copy may go to (crate::copy_to); empty, the node copies nowhere.
    pub copy_to: Vec<String>,
    /// Give pushed files and directories the setuid and setgid bits their index asks for.
    pub keep_setid: bool,
    /// How long the temporary files a failed push kept for its resume stay (counted as
    /// stored) after its journal was last written; then the node removes them.
    pub resume_ttl: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            root: PathBuf::from("."),
            listen: "127.0.0.1:0".into(),
            secret: None,
            open_remote: false,
            capacity: None,
            rescan: false,
            rate: None,
            peer_rates: Vec::new(),
            // Each pull or copy holds a pool of 2 x streams + 4 blocks, at most pool_buffers,
            // within the memory budget.
            max_transfers: 32,
            cores: None,
            pin: crate::placement::PinMode::Auto,
            sysfs_root: PathBuf::from("/"),
            // Long enough for a slow WAN handshake, short enough that idle sockets do not pile up.
            handshake_timeout: Duration::from_secs(30),
            // 4 MiB in 60 s is 70 KB/s per stream: slower than that, a stream is stalled.
            idle_timeout: Duration::from_secs(60),
            // Senders default to 1 MiB blocks; the node takes up to 4 MiB from any sender.
            max_block: 4 << 20,
            // 16 x 4 MiB = 64 MiB: two blocks in flight per stream for 8 streams, plus the
            // writers' queue.
            pool_buffers: 16,
            max_streams: 64,
            // Creating small files is metadata-bound, not CPU-bound: more writers than cores
            // overlap the file system's latency (bench/RESULTS.md).
            writers: 4,
            // 256 MiB holds the index of several million files.
            max_manifest: 256 << 20,
            // XRootD's kXR_readv envelope.
            max_readv_segments: 1024,
            max_readv_segment: 2 << 20,
            // What cp, rsync and GridFTP do: the page cache and the journal (whose blocks are
            // read back and checked on resume) cover a crash; `file` or `end` for more.
            fsync: Fsync::None,
            tls: None,
            peer_tls: None,
            // Far above what real clients open (a 64-stream push is 65), and 4,096 sockets
            // still in their handshake cost no thread and about 4 MiB; each past the handshake
            // costs one thread. Needs at most 3 descriptors each (TLS) under a raised limit.
            max_connections: 4096,
            // Four full 64-stream transfers from one host at once; one address cannot hold more
            // than a sixteenth of the node's connections.
            max_per_peer: 256,
            // The push pool (64 MiB) and 15 pulls or copies at their largest (16 x 4 MiB), or
            // about 120 at the clients' default 2 streams of 1 MiB blocks (8 MiB each), with
            // room left for their indexes: a small share of a storage server's memory.
            memory: 1 << 30,
            // A copy makes the node connect where a client says: nowhere unless the operator
            // lists it.
            copy_to: Vec::new(),
            // Off: a token lets a client write beneath the root, not make programs that run as
            // the node's user (root, often); an operator storing system trees turns it on.
            keep_setid: false,
            // A resume comes within minutes or hours of its failure (a dropped link, a
            // restarted job); a day covers a night's outage, and bounds how long an abandoned
            // push holds space no one else may use.
            resume_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Default)]
struct ReadvCounters {
    requests: AtomicU64,
    segments: AtomicU64,
    bytes: AtomicU64,
    /// sendfile runs after coalescing.
    reads: AtomicU64,
}

struct Inner {
    root: PathBuf,
    /// The root, held open from the start: every path a client names is opened beneath it.
    root_fd: OwnedFd,
    /// `.longhaul/journal`, held open: push journals are made and removed relative to it.
    journal_dir: Arc<OwnedFd>,
    listen: SocketAddr,
    opts: ServeOptions,
    pool: Arc<Pool>,
    state: NodeState,
    total: Option<Arc<Bucket>>,
    peers: HashMap<IpAddr, Arc<Bucket>>,
    sessions: Mutex<HashMap<Token, Arc<Receive>>>,
    /// Pull sessions waiting for their data connections.
    pulls: Mutex<HashMap<Token, Sender<TcpStream>>>,
    closing: AtomicBool,
    draining: AtomicBool,
    readv: ReadvCounters,
    last_placement: Mutex<Option<String>>,
    /// How the last push named its files (O_TMPFILE + link, or why not).
    last_file_creation: Mutex<Option<String>>,
    files_linked: AtomicU64,
    files_renamed: AtomicU64,
    /// Journal keys of the pushes running now.
    journals: Mutex<std::collections::HashSet<String>>,
    /// Open connections against the caps.
    conns: Arc<Limiter>,
    /// Connections that have not finished their handshake (crate::conn_limit).
    lobby: Lobby,
    memory: Budget,
    copy_to: CopyTargets,
}

impl Inner {
    fn throttle(&self, peer: IpAddr) -> Throttle {
        Throttle::new(self.total.iter().chain(self.peers.get(&peer)).cloned().collect())
    }

    fn limits(&self) -> Limits {
        Limits {
            max_streams: self.opts.max_streams,
            max_block: self.pool.buf_size() as u32,
            max_manifest: self.opts.max_manifest,
            max_readv_segments: self.opts.max_readv_segments,
            max_readv_segment: self.opts.max_readv_segment,
        }
    }

    /// Refuses a new transfer when the node is draining or full.
    fn admit(&self) -> Result<()> {
        if self.draining.load(Ordering::SeqCst) || self.closing.load(Ordering::SeqCst) {
            return Err(Error::Busy("the node is shutting down".into()));
        }
        if self.state.active_count() >= self.opts.max_transfers {
            return Err(Error::Busy(format!("{} transfers are running, the most this node runs at once", self.opts.max_transfers)));
        }
        Ok(())
    }
}

/// Transfers by state, and the stored-bytes account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    pub stored: u64,
}

pub struct Server {
    inner: Arc<Inner>,
    listener: TcpListener,
    accept: Option<JoinHandle<()>>,
    lobby: Option<JoinHandle<()>>,
    sweeper: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(opts: ServeOptions) -> Result<Server> {
        let copy_to = CopyTargets::parse(&opts.copy_to)?;
        fs_create_root(&opts.root)?;
        let root = std::fs::canonicalize(&opts.root).map_err(|e| Error::io("resolve root", opts.root.as_os_str().as_encoded_bytes(), e))?;
        let listener = TcpListener::bind(&opts.listen).map_err(|source| Error::Connect { addr: opts.listen.clone(), source })?;
        let listen = listener.local_addr().map_err(Error::net("local address"))?;
        if opts.secret.is_none() && !opts.open_remote && !listen.ip().is_loopback() {
            return Err(Error::Usage(format!(
                "refusing to serve {listen} without authentication: give a token, or listen on a loopback address, or force it"
            )));
        }
        let pool = Pool::new(opts.max_block as usize, opts.pool_buffers)?;
        let nofile = crate::conn_limit::raise_nofile();
        let conns = Limiter::new(crate::conn_limit::cap_for_nofile(opts.max_connections, nofile, opts.tls.is_some()), opts.max_per_peer);
        let lobby = Lobby::new()?;
        let memory = Budget::new(opts.memory, pool.bytes() as u64)?;
        let root_fd = rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("open root", root.as_os_str().as_bytes(), e.into()))?;
        let state = NodeState::open(&root, root_fd.as_fd(), opts.capacity, opts.rescan)?;
        let journal_dir = Arc::new(state.state_dir().journal_dir()?);
        let inner = Arc::new(Inner {
            root,
            root_fd,
            journal_dir,
            listen,
            pool,
            state,
            total: opts.rate.map(Bucket::new),
            peers: opts.peer_rates.iter().map(|&(ip, r)| (ip, Bucket::new(r))).collect(),
            opts,
            sessions: Mutex::new(HashMap::new()),
            pulls: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            readv: ReadvCounters::default(),
            last_placement: Mutex::new(None),
            last_file_creation: Mutex::new(None),
            files_linked: AtomicU64::new(0),
            files_renamed: AtomicU64::new(0),
            journals: Mutex::new(std::collections::HashSet::new()),
            conns,
            lobby,
            memory,
            copy_to,
        });
        // Before the first push can take a journal up, then every so often on a thread.
        sweep(&inner);
        let i = Arc::clone(&inner);
        let lobby = std::thread::Builder::new()
            .name("lh-lobby".into())
            .spawn(move || {
                // A panic while greeting one connection closes that one; the lobby thread, which
                // every new connection goes through, keeps running.
                let greet = |w: &mut crate::conn_limit::Waiting, msg| {
                    crate::panic::catch("lobby", || Ok(greet(&i, w, msg))).unwrap_or_else(|e| {
                        i.state.count_error(e.code());
                        Next::Close
                    })
                };
                i.lobby.run(&i.closing, greet, |t| session_known(&i, t), |w| leave(&i, w))
            })
            .map_err(|e| Error::io("spawn", b"lobby thread", e))?;
        let l = listener.try_clone().map_err(Error::net("cloning the listener"))?;
        let i = Arc::clone(&inner);
        let accept = std::thread::Builder::new()
            .name("lh-accept".into())
            .spawn(move || accept_loop(&i, l))
            .map_err(|e| Error::io("spawn", b"accept thread", e))?;
        let i = Arc::clone(&inner);
        let sweeper = std::thread::Builder::new()
            .name("lh-sweep".into())
            .spawn(move || sweep_loop(&i))
            .map_err(|e| Error::io("spawn", b"sweep thread", e))?;
        Ok(Server { inner, listener, accept: Some(accept), sweeper: Some(sweeper), lobby: Some(lobby) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.listen
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.inner.pool
    }

    pub fn counts(&self) -> Counts {
        let st = &self.inner.state;
        Counts {
            active: st.active_count() as u64,
            completed: st.completed.load(Ordering::Relaxed),
            failed: st.failed.load(Ordering::Relaxed),
            stored: st.stored(),
        }
    }

    /// The node's statistics and transfer table.
    pub fn stats(&self) -> NodeStats {
        stats(&self.inner)
    }

    /// The same as a JSON document (docs/PROTOCOL.md, STATS): what a STATS request is answered with.
    pub fn stats_json(&self) -> String {
        stats(&self.inner).to_json()
    }

    /// Refuses new transfers and waits up to `timeout` for the running ones to end; true if
    /// they all did.
    pub fn drain(&self, timeout: Duration) -> bool {
        self.inner.draining.store(true, Ordering::SeqCst);
        let until = Instant::now() + timeout;
        while self.inner.state.active_count() > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops accepting, fails the transfers in flight and waits (up to 10 s) until they have
    /// ended and removed their temporary files, so that nothing writes under the root after
    /// `close` returns.
    pub fn close(&mut self) {
        if self.inner.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        // shutdown(2) on a listening socket wakes a blocked accept on Linux.
        let _ = rustix::net::shutdown(self.listener.as_fd(), rustix::net::Shutdown::Read);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        self.inner.lobby.wake();
        if let Some(h) = self.lobby.take() {
            let _ = h.join();
        }
        if let Some(h) = self.sweeper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        // Pushes are failed here; pulls and copies watch `closing`. A push still preparing
        // its tree registers later and fails itself when it sees `closing`.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            for r in self.inner.sessions.lock().expect("sessions lock").values() {
                r.fail(Error::Busy("the node is shutting down".into()));
            }
            if self.inner.state.active_count() == 0 || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

/// How often the node looks for expired journals: a quarter of the resume TTL, so that kept
/// files go within 1.25 TTL, and at least hourly, however long the TTL (one readdir of the
/// journal directory and a stat per journal: nothing to save by waiting longer).
fn sweep_every(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(3600))
}

fn sweep_loop(inner: &Inner) {
    let every = sweep_every(inner.opts.resume_ttl);
    let mut next = Instant::now() + every;
    while !inner.closing.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            // Unparked by `close`.
            std::thread::park_timeout(next - now);
            continue;
        }
        sweep(inner);
        next = Instant::now() + every;
    }
}

/// Removes the journals of pushes that failed longer than the resume TTL ago and the
/// temporary files they kept, and takes those files out of the account.
fn sweep(inner: &Inner) {
    let mut claimed = Vec::new();
    let removed = crate::journal::remove_stale(inner.root_fd.as_fd(), inner.journal_dir.as_fd(), inner.opts.resume_ttl, &mut |key| {
        // A running push's journal is not stale, however long since its last block; and no
        // push may take one up while its files go.
        let free = inner.journals.lock().expect("journals lock").insert(key.to_owned());
        if free {
            claimed.push(key.to_owned());
        }
        free
    });
    let mut journals = inner.journals.lock().expect("journals lock");
    for k in &claimed {
        journals.remove(k);
    }
    drop(journals);
    if removed.files > 0 {
        inner.state.ledger().reclaimed(removed.files, removed.bytes);
        inner.state.save();
    }
}

fn fs_create_root(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::io("create root", root.as_os_str().as_encoded_bytes(), e))
}

/// Accepts, counts the connection against the caps and hands it to the lobby; no thread is
/// spawned here. Over a cap the socket is answered and closed on this thread (crate::conn_limit).
fn accept_loop(inner: &Arc<Inner>, listener: TcpListener) {
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
            // Full: an idle socket still in its handshake makes room (crate::conn_limit).
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
fn refuse(inner: &Inner, sock: &TcpStream, why: Refusal) {
    inner.conns.count_refused();
    let e = why.error();
    inner.state.count_error(e.code());
    if inner.opts.tls.is_none() {
        crate::conn_limit::send_now(sock, &Msg::error(&e).encode());
    }
}

/// The handshake, a frame at a time, for a connection in the lobby: HELLO is answered, AUTH
/// checked (a wrong token learns nothing but E_AUTH, and the connection ends), and a control
/// connection leaves the lobby only once authenticated. Runs on the lobby's thread: nothing
/// here may block.
fn greet(inner: &Inner, w: &mut Waiting, msg: Result<Msg>) -> Next {
    let refuse = |w: &Waiting, e: Error| {
        inner.state.count_error(e.code());
        crate::conn_limit::send_now(&w.sock, &Msg::error(&e).encode());
        Next::Close
    };
    let msg = match msg {
        Ok(m) => m,
        Err(e) => return refuse(w, e),
    };
    match (w.stage, msg) {
        (Stage::First, Msg::Hello { min, max, nonce, features }) => {
            if max < frame::VERSION_MIN || min > frame::VERSION_MAX || min > max {
                let e = Error::Version { ours_min: frame::VERSION_MIN, ours_max: frame::VERSION_MAX, peer_min: min, peer_max: max };
                return refuse(w, e);
            }
            let ours = match auth::nonce() {
                Ok(n) => n,
                Err(e) => return refuse(w, e),
            };
            let hello_ok = Msg::HelloOk {
                version: max.min(frame::VERSION_MAX),
                features: frame::FEATURES,
                limits: inner.limits(),
                auth: inner.opts.secret.is_some(),
                nonce: ours,
            };
            if !crate::conn_limit::send_now(&w.sock, &hello_ok.encode()) {
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
            // lobby (crate::conn_limit), so a made-up one costs no thread.
            w.until = Instant::now() + inner.opts.handshake_timeout.min(Duration::from_secs(5));
            Next::Wait
        }
        (Stage::Auth { client, ours, features }, Msg::Auth { mac }) => {
            let secret = inner.opts.secret.as_ref().expect("AUTH is awaited only with a token");
            if !Secret::check(&secret.client_proof(&client, &ours), &mac) {
                return refuse(w, Error::Auth("wrong token"));
            }
            if !crate::conn_limit::send_now(&w.sock, &Msg::AuthOk { mac: secret.node_proof(&client, &ours) }.encode()) {
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
fn session_known(inner: &Inner, token: &Token) -> bool {
    inner.sessions.lock().expect("sessions lock").contains_key(token) || inner.pulls.lock().expect("pulls lock").contains_key(token)
}

/// A connection leaving the lobby gets its own thread; its slot goes with it and is freed when
/// the thread ends. If no thread can be made, the connection is closed.
fn leave(inner: &Arc<Inner>, w: Waiting) {
    let i = Arc::clone(inner);
    let _ = std::thread::Builder::new().name("lh-conn".into()).spawn(move || {
        // A panic here ends this connection only; the node goes on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle_conn(&i, w)));
    });
}

fn handle_conn(inner: &Arc<Inner>, w: Waiting) {
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
        crate::conn_limit::send_now(&sock, &Msg::error(&e).encode());
    }
    drop(slot);
}

/// TLS on a new connection of a node that requires it: the handshake (within the handshake
/// timeout) and the relay, or ERROR E_TLS in plaintext to a client that did not start TLS.
fn start_tls(inner: &Inner, mut sock: TcpStream, tls: &ServerTls) -> Option<TcpStream> {
    let refused = match crate::tls::starts_tls(&sock, inner.opts.handshake_timeout) {
        Ok(None) => return None,
        Ok(Some(true)) => match crate::tls::accept(sock, tls, inner.opts.handshake_timeout) {
            Ok(s) => return Some(s),
            Err(e) => {
                inner.state.count_error(e.code());
                return None;
            }
        },
        Ok(Some(false)) => Error::Tls("this node requires TLS: connect with tlsPin (the node prints its fingerprint) or tlsCa".into()),
        Err(e) => e,
    };
    inner.state.count_error(refused.code());
    let _ = frame::write_msg(&mut sock, &Msg::error(&refused));
    None
}

/// An authenticated control connection (the lobby did HELLO and AUTH): one session or a run
/// of requests.
fn control(inner: &Arc<Inner>, sock: &mut TcpStream, peer: IpAddr, features: u64) -> Result<()> {
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
            Msg::Manifest { dest, streams, block_size, index } => {
                return push(inner, sock, peer, dest, streams, block_size, &index, features);
            }
            Msg::Get { path, streams, block_size } => return pull(inner, sock, peer, &path, streams, block_size, features),
            Msg::Copy { to, src, dest, streams, block_size } => {
                return copy(inner, sock, peer, &to, &src, &dest, streams, block_size, features)
            }
            Msg::List { path } => list(inner, sock, &path)?,
            Msg::Readv { paths, segments } => readv(inner, sock, peer, &paths, &segments)?,
            Msg::Stats => frame::write_msg(sock, &Msg::StatsOk { json: stats(inner).to_json() }).map(Ok)?,
            m => return Err(Error::Protocol(format!("unexpected {:?} frame on a control connection", m.frame_type()))),
        };
        // A refused request (a limit, a missing path) is answered and the connection goes on.
        if let Err(e) = answered {
            inner.state.count_error(e.code());
            frame::write_msg(sock, &Msg::error(&e))?;
        }
    }
}

fn check_session_shape(limits: &Limits, streams: u16, block_size: u32) -> Result<()> {
    if streams == 0 || streams > limits.max_streams {
        return Err(Error::Limit { what: "streams", limit: limits.max_streams as u64, got: streams as u64 });
    }
    if block_size < 4096 || block_size > limits.max_block {
        return Err(Error::Limit { what: "block size", limit: limits.max_block as u64, got: block_size as u64 });
    }
    Ok(())
}

/// Checks a client-named path and joins it to the root: relative, no `..`, not the node's own
/// directory, and no symlink on the way (the last component too unless `final_link`).
fn resolve(root: &Path, rel: &[u8], final_link: bool) -> Result<PathBuf> {
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    check_request_path(rel)?;
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    let mut p = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        p.push(OsStr::from_bytes(c));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() && (i + 1 < parts.len() || !final_link) => {
                return Err(Error::PathEscape { path: lossy(rel), why: "through a symlink" })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound { path: lossy(rel) }),
            Err(e) => return Err(Error::io("stat", rel, e)),
        }
    }
    Ok(p)
}

/// The rules of a client-named path that need no look at the disk: a clean relative path, not
/// in the node's own directory.
fn check_request_path(rel: &[u8]) -> Result<()> {
    crate::index::check_path(rel)?;
    if rel.split(|&b| b == b'/').next() == Some(STATE_DIR.as_bytes()) {
        return Err(Error::PathEscape { path: lossy(rel), why: "the node's own directory" });
    }
    Ok(())
}

/// Checks the path a pull or a copy sends from: as `resolve`, and not the root itself, which
/// holds the node's own directory (a scan of it would send the state no client may read).
fn resolve_source(root: &Path, rel: &[u8]) -> Result<PathBuf> {
    if rel.is_empty() {
        return Err(Error::BadPath { path: String::new(), why: "name a file or directory under the root, not the root itself" });
    }
    resolve(root, rel, false)
}

/// Bytes of the files a resumed push will not write: already at the destination with the
/// index's size and mtime (the quick check `receive::carried_over` makes), looked at from their
/// directories, opened beneath the root.
fn unchanged_bytes(dest: BorrowedFd<'_>, index: &Index) -> u64 {
    let mut held = crate::receive::ExistingDirs::new(dest);
    let mut dirs = DirCache::default();
    index
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::File && e.size > 0 && held.hold(&e.path))
        .filter(|e| {
            stat_in(dest, &mut dirs, &e.path, None).is_some_and(|st| {
                st.st_size as u64 == e.size && st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128 == e.mtime_ns as i128
            })
        })
        .map(|e| e.size)
        .sum()
}

/// Bytes of the temporary files an earlier attempt of this push (journal `key`) kept under
/// `dest`: they count as stored already, and a resume takes them over.
fn kept_bytes(inner: &Inner, dest: BorrowedFd<'_>, index: &Index, key: &str) -> u64 {
    let journal = format!("{key}.jnl");
    if rustix::fs::statat(&*inner.journal_dir, journal.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_err() {
        return 0;
    }
    let prefix = crate::journal::temp_prefix(key);
    let mut held = crate::receive::ExistingDirs::new(dest);
    let mut dirs = DirCache::default();
    index
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 0 && held.hold(&e.path))
        .filter_map(|(i, e)| stat_in(dest, &mut dirs, &e.path, Some(&format!("{prefix}{i}.part"))))
        // What the receiver will take over (receive::own_part), not a link a local user put there.
        .filter(crate::receive::own_part)
        .map(|st| st.st_size as u64)
        .sum()
}

/// The regular file `path` (or, with `name`, that name in `path`'s directory) under `dest`,
/// looked at from its directory opened beneath `dest`, no symlink followed.
fn stat_in(dest: BorrowedFd<'_>, dirs: &mut DirCache, path: &[u8], name: Option<&str>) -> Option<rustix::fs::Stat> {
    let (dir, last) = dirs.parent(dest, path, beneath::root_refused).ok()?;
    let name = name.map_or(last, OsStr::new);
    let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
    (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile).then_some(st)
}

/// A push: the client sends, this node receives into `dest` under its root. The session is
/// journaled; with the resume feature the client gets a PLAN of what an earlier attempt left;
/// with whole-file verification every file is read back and checked before its rename.
#[allow(clippy::too_many_arguments)]
fn push(
    inner: &Arc<Inner>,
    sock: &mut TcpStream,
    peer: IpAddr,
    dest: Vec<u8>,
    streams: u16,
    block_size: u32,
    encoded: &[u8],
    features: u64,
) -> Result<()> {
    let resume = features & frame::FEATURE_RESUME != 0;
    inner.admit()?;
    check_session_shape(&inner.limits(), streams, block_size)?;
    let index = Index::decode(encoded)?;
    // The pool is the node's, counted at start; the push's own share is its index.
    let _memory = inner.memory.reserve(budget::index_share(encoded.len(), index.entries().len()))?;
    // Checked before anything is created; Receive::prepare checks the rest of the path and the
    // index's top-level entries when the tree lands at the root itself.
    if !dest.is_empty() {
        check_request_path(&dest)?;
    }
    // Capacity is checked before any byte is written.
    // The destination as it is now (nothing is created before the checks below); missing, it
    // holds nothing a resume could keep.
    let dest_dir = beneath::open_dir(inner.root_fd.as_fd(), &dest, beneath::root_refused).ok();
    let total = index.total();
    // The same transfer twice at once would share temporary files: the second waits its turn.
    let key = crate::journal::key(&dest, block_size, encoded);
    let journaled = ActiveJournal::claim(inner, &key)?;
    // What the push may hold at once: all its bytes (a file it replaces stays until its
    // replacement, fallocated from the start, is renamed over it), less the files a resume
    // will not write and the temporary files an earlier attempt kept (counted as stored
    // already). Only the admission: what files take and give back is counted as it happens
    // (ledger.rs). (Crediting the replaced files let concurrent pushes that replace the same
    // file each hold a part of its size with nothing reserved.)
    let unchanged = match &dest_dir {
        Some(d) if resume => unchanged_bytes(d.as_fd(), &index),
        _ => 0,
    };
    let kept = dest_dir.as_ref().map_or(0, |d| kept_bytes(inner, d.as_fd(), &index, &key));
    let grant = inner.state.reserve(total.saturating_sub(unchanged).saturating_sub(kept))?;
    let active = inner.state.begin(peer, Direction::In, &dest, index.total(), index.count(Kind::File) as u64, streams);
    let token = auth::random_bytes::<{ frame::TOKEN_LEN }>()?;
    let placement = node_placement(inner, peer);
    *inner.last_placement.lock().expect("placement lock") = Some(match &placement.fallback {
        Some(f) => format!("{}; not pinned: {f}", placement.reason),
        None => format!("{}; pinned", placement.reason),
    });
    let params = SessionParams {
        dest,
        streams,
        block_size,
        writers: inner.opts.writers,
        token,
        placement,
        idle_timeout: inner.opts.idle_timeout,
        throttle: inner.throttle(peer),
        counter: Arc::clone(&active.done),
        fsync: inner.opts.fsync,
        verify_full: features & frame::FEATURE_VERIFY_FULL != 0,
        resume: Some(ResumeParams { dir: Arc::clone(&inner.journal_dir), key: journaled.0.clone(), use_previous: resume }),
        keep_setid: inner.opts.keep_setid,
        space: Some(Arc::clone(&grant)),
    };
    let recv = match Receive::prepare(inner.root_fd.as_fd(), index, params, Arc::clone(&inner.pool)) {
        Ok(r) => r,
        Err(e) => {
            grant.finish();
            inner.state.save();
            inner.state.end(&active, Err(&e));
            return Err(e);
        }
    };
    // The preallocated parts are in the saved account before data flows: a node killed during
    // the push restarts counting them, as the resume and the sweep expect.
    inner.state.save();
    *inner.last_file_creation.lock().expect("file creation lock") = Some(match recv.tmpfile() {
        Ok(()) => "files in one piece: O_TMPFILE + link; larger files: temporary name + rename".to_owned(),
        Err(why) => format!("temporary name + rename for every file: {why}"),
    });
    inner.sessions.lock().expect("sessions lock").insert(token, Arc::clone(&recv));
    if inner.closing.load(Ordering::SeqCst) {
        recv.fail(Error::Busy("the node is shutting down".into()));
    }
    let result = frame::write_msg(sock, &Msg::Ready { token, streams }).and_then(|()| {
        if resume {
            frame::write_msg(sock, &Msg::Plan { nblocks: recv.nblocks(), ranges: recv.plan() })?;
        }
        recv.watch_control(sock)?;
        recv.wait_and_finish()
    });
    inner.sessions.lock().expect("sessions lock").remove(&token);
    let (linked, renamed) = recv.files_named();
    inner.files_linked.fetch_add(linked, Ordering::Relaxed);
    inner.files_renamed.fetch_add(renamed, Ordering::Relaxed);
    inner.state.count_bytes(peer, recv.bytes_received(), 0);
    // What the session did not take of its reservation goes back now, not when the last
    // thread holding the session lets go of it.
    grant.finish();
    inner.state.save();
    inner.state.end(&active, result.as_ref().map(|_| ()));
    let summary = result?;
    drop(journaled);
    frame::write_msg(sock, &Msg::Summary(summary))
}

/// A journal key in use by a running push; released when dropped.
struct ActiveJournal<'a>(String, &'a Inner);

impl<'a> ActiveJournal<'a> {
    fn claim(inner: &'a Inner, key: &str) -> Result<ActiveJournal<'a>> {
        if !inner.journals.lock().expect("journals lock").insert(key.to_owned()) {
            return Err(Error::Busy("the same transfer (same tree, same destination) is already running on this node".into()));
        }
        Ok(ActiveJournal(key.to_owned(), inner))
    }
}

impl Drop for ActiveJournal<'_> {
    fn drop(&mut self) {
        self.1.journals.lock().expect("journals lock").remove(&self.0);
    }
}

/// Options for the sender engine when the node itself sends (pull, copy). When the client's
/// HELLO asked for whole-file verification, the node sends file digests (pull) or asks the
/// receiving node for it too (copy).
fn node_send_options(inner: &Inner, streams: u16, block_size: u32, features: u64) -> SendOptions {
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
        ..SendOptions::default()
    }
}

/// A pull: this node sends `path` to the client over data connections the client opens.
fn pull(inner: &Arc<Inner>, sock: &mut TcpStream, peer: IpAddr, path: &[u8], streams: u16, block_size: u32, features: u64) -> Result<()> {
    inner.admit()?;
    inner.memory.check_room()?;
    check_session_shape(&inner.limits(), streams, block_size)?;
    let source = resolve_source(&inner.root, path)?;
    let started = Instant::now();
    let scanned = scan_within(&source, 4, Some(&inner.root))?;
    let scan_seconds = started.elapsed().as_secs_f64();
    let index = &scanned.index;
    let encoded = index.encode();
    // The pool this pull will allocate, sized to its data, and its index come out of the
    // node's memory before either is held for the transfer.
    let opts = node_send_options(inner, streams, block_size, features);
    let (buf, count) = pool_shape(&opts, streams, index.total());
    let _memory = inner.memory.reserve(buf as u64 * count as u64 + budget::index_share(encoded.len(), index.entries().len()))?;
    frame::write_msg(sock, &Msg::Manifest { dest: path.to_vec(), streams, block_size, index: encoded })?;
    let token = match frame::expect_msg(&mut Deadline::new(sock, inner.opts.handshake_timeout), 0)? {
        Msg::Ready { token, streams: s } if s == streams => token,
        Msg::Ready { streams: s, .. } => return Err(Error::Protocol(format!("READY for {s} streams, {streams} were offered"))),
        Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
        m => return Err(Error::Protocol(format!("expected READY, got {:?}", m.frame_type()))),
    };
    // With resume, the client says which blocks an earlier attempt left it (PLAN).
    let skip = if features & frame::FEATURE_RESUME != 0 {
        frame::expect_plan(&mut Deadline::new(sock, inner.opts.handshake_timeout), index.total().div_ceil(block_size as u64))?
    } else {
        Vec::new()
    };
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
    let result = crate::sender::transmit(
        &scanned,
        control,
        peer,
        sockets,
        &opts,
        inner.throttle(peer),
        &skip,
        &inner.closing,
        &progress,
        started,
        scan_seconds,
    );
    inner.state.count_bytes(peer, 0, active.done.load(Ordering::Relaxed));
    inner.state.end(&active, result.as_ref().map(|_| ()));
    result.map(|_| ())
}

/// A third-party copy: this node pushes `src` to the node at `to`; the client watches.
#[allow(clippy::too_many_arguments)]
fn copy(
    inner: &Arc<Inner>,
    sock: &mut TcpStream,
    peer: IpAddr,
    to: &str,
    src: &[u8],
    dest: &[u8],
    streams: u16,
    block_size: u32,
    features: u64,
) -> Result<()> {
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
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let _ = frame::read_msg(&mut watch, 0);
            if !finished.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            }
        });
        let sender = s.spawn(|| {
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
            std::thread::scope(|s2| {
                let r = s2.spawn(|| {
                    crate::panic::catch("copy", || {
                        // A file changed while it was read is sent once more from a fresh scan,
                        // as `send` does (sender.rs); a second change fails the copy naming it.
                        let mut again = true;
                        loop {
                            let started = Instant::now();
                            let scanned = scan_within(&source, opts.scan_threads, opts.confine.as_deref())?;
                            let scan_seconds = started.elapsed().as_secs_f64();
                            // Reserved after the scan (the index's size is known) and before the
                            // connection and the pool.
                            let index = &scanned.index;
                            let (buf, count) = pool_shape(&opts, streams, index.total());
                            let share = budget::index_share(index.encode().len(), index.entries().len());
                            let _memory = inner.memory.reserve(buf as u64 * count as u64 + share)?;
                            match crate::sender::send_scanned(&scanned, to, dest, &opts, &flag, &progress, started, scan_seconds) {
                                Err(Error::SourceChanged { why, .. }) if again && crate::sender::resendable(why) => again = false,
                                r => return r,
                            }
                        }
                    })
                });
                while !r.is_finished() {
                    if stop() {
                        flag.store(true, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                r.join().unwrap_or_else(|p| Err(crate::panic::from_payload("copy", p)))
            })
        });
        // Progress to the client every 100 ms, which also shows it the node is alive.
        while !sender.is_finished() {
            let msg = Msg::CopyProgress {
                bytes_done: active.done.load(Ordering::Relaxed),
                bytes_total: active.bytes_total.load(Ordering::Relaxed),
                files_done: files[0].load(Ordering::Relaxed),
                files_total: files[1].load(Ordering::Relaxed),
            };
            if frame::write_msg(sock, &msg).is_err() {
                cancel.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        finished.store(true, Ordering::SeqCst);
        let r = sender.join().unwrap_or_else(|p| Err(crate::panic::from_payload("copy", p)));
        let reply = match &r {
            Ok(summary) => Msg::Summary(summary.receiver.clone()),
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

/// LIST: a directory's entries (sorted by name), or the one entry of a file or a link. The
/// path is opened beneath the root (no symlink on the way; the last component may be one,
/// which is listed, not followed), and each entry is looked at from its directory.
fn list(inner: &Inner, sock: &mut TcpStream, path: &[u8]) -> Result<Result<()>> {
    if !path.is_empty() {
        if let Err(e) = check_request_path(path) {
            return Ok(Err(e));
        }
    }
    let entry = |name: Vec<u8>, st: &rustix::fs::Stat| {
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let kind = match ft {
            rustix::fs::FileType::Directory => 1,
            rustix::fs::FileType::RegularFile => 2,
            rustix::fs::FileType::Symlink => 3,
            _ => 4,
        };
        ListEntry {
            name,
            kind,
            mode: st.st_mode & 0o7777,
            size: if kind == 2 { st.st_size as u64 } else { 0 },
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        }
    };
    let nofollow = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
    let listed: Result<Vec<ListEntry>> = (|| {
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(k) => (&path[..k], &path[k + 1..]),
            None => (&path[..0], path),
        };
        let parent = beneath::open_dir(inner.root_fd.as_fd(), dir, beneath::root_refused)?;
        let name = if name.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(name) };
        let st = rustix::fs::statat(&parent, name, nofollow).map_err(|e| beneath::root_refused(path, e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            return Ok(vec![entry(name.as_bytes().to_vec(), &st)]);
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let d = rustix::fs::openat(&parent, name, flags, Mode::empty()).map_err(|e| beneath::root_refused(path, e))?;
        let mut entries = Vec::new();
        for e in rustix::fs::Dir::read_from(&d).map_err(|e| Error::io("list", path, e.into()))?.flatten() {
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." || (path.is_empty() && name == STATE_DIR.as_bytes()) {
                continue;
            }
            if let Ok(st) = rustix::fs::statat(&d, OsStr::from_bytes(name), nofollow) {
                entries.push(entry(name.to_vec(), &st));
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    })();
    let entries = match listed {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    // Parts of at most ~60 KB, under the control-frame limit. A listing of a large directory
    // is megabytes: written under the same progress deadline as a READV's answer.
    let sock = &mut net::Paced::new(sock, inner.opts.idle_timeout);
    let mut part = Vec::new();
    let mut size = 0;
    for e in entries {
        let n = 1 + 2 + e.name.len() + 20;
        if size + n > 60_000 {
            frame::write_msg(sock, &Msg::Listing { last: false, entries: std::mem::take(&mut part) })?;
            size = 0;
        }
        size += n;
        part.push(e);
    }
    frame::write_msg(sock, &Msg::Listing { last: true, entries: part })?;
    Ok(Ok(()))
}

/// READV: every segment answered in one READV_DATA, in order, each with its own status. The
/// request is checked whole before anything is sent, so a refusal leaves the connection in
/// step. Adjacent segments of a file are read as one run; small runs are gathered into one
/// write, large ones sent with sendfile.
fn readv(inner: &Inner, sock: &mut TcpStream, peer: IpAddr, paths: &[Vec<u8>], segments: &[Segment]) -> Result<Result<()>> {
    if let Err(e) = crate::readv::check(paths.len(), segments, &inner.limits()) {
        return Ok(Err(e));
    }
    // Each file is opened in its directory, opened beneath the root without following
    // symlinks (a symlink on the way, or as the file, is E_PATH_ESCAPE; nothing missing is
    // E_NOT_FOUND), so no lstat walk of the path comes first.
    let root = inner.root_fd.as_fd();
    let mut dirs = DirCache::default();
    let files: Vec<Result<(File, u64)>> = paths
        .iter()
        .map(|rel| {
            check_request_path(rel)?;
            let (dir, name) = dirs.parent(root, rel, beneath::root_refused)?;
            // O_NONBLOCK: a FIFO put in the root must not hold the open until a writer comes.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let f = File::from(rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| beneath::root_refused(rel, e))?);
            let m = f.metadata().map_err(|e| Error::io("stat", rel, e))?;
            if !m.is_file() {
                return Err(Error::BadPath { path: lossy(rel), why: "not a regular file" });
            }
            Ok((f, m.size()))
        })
        .collect();
    let results: Vec<SegmentResult> = segments
        .iter()
        .map(|s| match &files[s.file as usize] {
            Ok((_, size)) => SegmentResult { len: crate::readv::available(s, *size), code: String::new() },
            Err(e) => SegmentResult { len: 0, code: e.code().to_owned() },
        })
        .collect();
    let total: u64 = results.iter().map(|r| r.len as u64).sum();
    let stop = AtomicBool::new(false);
    inner.throttle(peer).take(total, &stop);
    // A client that asks for gigabytes and stops reading is cut after the idle timeout
    // without progress (net::Paced), not after the kernel's restarted timeouts add up.
    let out = &mut net::Paced::new(sock, inner.opts.idle_timeout);
    out.send_header(&Msg::ReadvData { results: results.clone() }.encode()).map_err(Error::net("sending readv data"))?;
    // Small runs are gathered with pread into one staging buffer and leave in one write; a
    // large run goes out with sendfile. Either way each run is one read of the file.
    let mut staging: Vec<u8> = Vec::with_capacity(READV_STAGING);
    let flush = |staging: &mut Vec<u8>, out: &mut net::Paced| -> Result<()> {
        if !staging.is_empty() {
            out.write_all(staging).map_err(Error::net("sending readv data"))?;
            staging.clear();
        }
        Ok(())
    };
    let changed = |file: u16| Error::SourceChanged { path: lossy(&paths[file as usize]), why: "shrank during a readv" };
    let lens: Vec<u32> = results.iter().map(|r| r.len).collect();
    let runs = crate::readv::plan(segments, &lens);
    // Counted before the bytes leave: a client that reads the node's stats right after its
    // answer arrived sees its request in them.
    let c = &inner.readv;
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.segments.fetch_add(segments.len() as u64, Ordering::Relaxed);
    c.bytes.fetch_add(total, Ordering::Relaxed);
    c.reads.fetch_add(runs.len() as u64, Ordering::Relaxed);
    inner.state.count_bytes(peer, 0, total);
    for run in &runs {
        let (f, _) = files[run.file as usize].as_ref().expect("a segment with bytes has its file");
        if run.len as usize <= READV_STAGING / 4 {
            if staging.len() + run.len as usize > READV_STAGING {
                flush(&mut staging, out)?;
            }
            let at = staging.len();
            staging.resize(at + run.len as usize, 0);
            std::os::unix::fs::FileExt::read_exact_at(f, &mut staging[at..], run.offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => changed(run.file),
                _ => Error::io("read", &paths[run.file as usize], e),
            })?;
        } else {
            flush(&mut staging, out)?;
            out.sendfile_all(f, run.offset, run.len as usize).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => changed(run.file),
                _ => Error::net("sending readv data")(e),
            })?;
        }
    }
    flush(&mut staging, out)?;
    Ok(Ok(()))
}

fn stats(inner: &Inner) -> NodeStats {
    let st = &inner.state;
    let (parts, parts_bytes) = st.parts();
    let transfers = st.active_rows();
    let recent = st.recent_rows();
    let peers = st.peer_bytes();
    let limit = |scope: &'static str, peer: Option<String>, b: &Bucket| LimitStats {
        scope,
        peer,
        rate: b.rate(),
        passed: b.passed(),
        utilisation: b.utilisation(),
    };
    let mut limits: Vec<LimitStats> = inner.total.iter().map(|b| limit("total", None, b)).collect();
    limits.extend(inner.peers.iter().map(|(ip, b)| limit("peer", Some(ip.to_string()), b)));
    let c = &inner.readv;
    NodeStats {
        root: inner.root.display().to_string(),
        listen: inner.listen.to_string(),
        auth: inner.opts.secret.is_some(),
        capacity: st.capacity(),
        free: st.capacity().map(|c| c.saturating_sub(st.stored()).saturating_sub(st.reserved())),
        stored: st.stored(),
        reserved: st.reserved(),
        parts,
        parts_bytes,
        active: transfers.len() as u64,
        completed: st.completed.load(Ordering::Relaxed),
        failed: st.failed.load(Ordering::Relaxed),
        bytes_in: peers.values().map(|p| p.bytes_in).sum(),
        bytes_out: peers.values().map(|p| p.bytes_out).sum(),
        pool: PoolStats {
            buffers: inner.pool.count() as u64,
            available: inner.pool.available() as u64,
            buffer_bytes: inner.pool.buf_size() as u64,
            locked: inner.pool.locked(),
        },
        memory: MemoryStats { budget: inner.memory.limit(), held: inner.memory.held() },
        limits,
        peers: peers.iter().map(|(peer, p)| PeerStats { peer: peer.clone(), bytes_in: p.bytes_in, bytes_out: p.bytes_out }).collect(),
        errors: st.errors().into_iter().collect(),
        readv: ReadvStats {
            requests: c.requests.load(Ordering::Relaxed),
            segments: c.segments.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            reads: c.reads.load(Ordering::Relaxed),
        },
        connections: ConnectionStats {
            open: inner.conns.open() as u64,
            handshaking: inner.lobby.len() as u64,
            max: inner.conns.max_total() as u64,
            max_per_peer: inner.conns.max_per_peer() as u64,
            refused: inner.conns.refused(),
            evicted: inner.lobby.evicted(),
        },
        transfers,
        recent,
        last_placement: inner.last_placement.lock().expect("placement lock").clone(),
        files_linked: inner.files_linked.load(Ordering::Relaxed),
        files_renamed: inner.files_renamed.load(Ordering::Relaxed),
        last_file_creation: inner.last_file_creation.lock().expect("file creation lock").clone(),
    }
}

/// Receivers go near the NIC that reaches the peer, writers near the disk holding the root.
fn node_placement(inner: &Inner, peer: IpAddr) -> Placement {
    let allowed = allowed_cpus();
    let topo = match Topology::read(&inner.opts.sysfs_root) {
        Ok(t) => t,
        Err(e) => return Placement::unpinned(&allowed, format!("topology unreadable ({e}): threads are not pinned")),
    };
    let net_node = match peer {
        IpAddr::V4(v4) => topo.interface_for(v4).and_then(|i| topo.node_of_interface(&i)),
        _ => None,
    };
    let disk_node = topo.node_of_path(&inner.root);
    Placement::choose(&topo, net_node, disk_node, inner.opts.cores.as_ref(), &allowed, inner.opts.pin)
        .unwrap_or_else(|e| Placement::unpinned(&allowed, format!("no placement: {e}")))
}
