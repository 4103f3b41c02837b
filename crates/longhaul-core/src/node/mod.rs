//! A storage node: a root directory, a listening socket, a capacity, bandwidth limits and a
//! table of transfers. A connection counts against the connection caps from its accept and
//! waits in the lobby (crate::node::conn_limit: one epoll thread for all) until its handshake is done;
//! then it gets a thread. Its first frame says what it is: HELLO opens a control connection
//! (authenticated when the node has a token), DATA_HELLO attaches a data stream to the session
//! its token names. A control connection then carries either one
//! session (MANIFEST: a push; GET: a pull; COPY: a third-party copy) or any number of requests
//! (LIST, READV, STATS). Push sessions share the node's buffer pool; a pull or a copy runs the
//! sender engine with a small pool of its own, and `max_transfers` bounds how many run at once,
//! so the node's memory is bounded whatever its clients do. Nothing a connection does waits on
//! another connection: a stalled peer holds its own threads and buffers only, until the idle
//! timeout frees them.

mod bench;
pub mod budget;
mod conn;
pub mod conn_limit;
mod copy;
pub mod copy_to;
mod mirror;
mod options;
mod path;
mod pull;
mod push;
mod requests;
pub mod state;
pub mod stats;
mod sweep;
mod tree_sums;

pub use options::ServeOptions;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};
use crate::place::placement::{allowed_cpus, Placement};
use crate::pool::Pool;
use crate::rate::{Bucket, Throttle};
use crate::session::recv::Receive;
use crate::sys::congestion::Choice;
use crate::wire::frame::{Limits, Token};
use budget::Budget;
use conn::{accept_loop, greet, leave, session_known};
use conn_limit::{Limiter, Lobby, Next};
use copy_to::CopyTargets;
use requests::ReadvCounters;
use state::NodeState;
use stats::{stats, NodeStats};
use sweep::{sweep, sweep_loop};

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
    /// Connections that have not finished their handshake (crate::node::conn_limit).
    lobby: Lobby,
    memory: Budget,
    copy_to: CopyTargets,
    /// What `opts.congestion` came to on this machine, and the algorithm that makes (read once:
    /// STATS reports it).
    congestion: Choice,
    congestion_name: String,
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

/// Who asked for a session on a control connection: the node, the peer's address, and the
/// features agreed at its handshake.
#[derive(Clone, Copy)]
struct Caller<'a> {
    inner: &'a Arc<Inner>,
    peer: IpAddr,
    features: u64,
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
        let listener = TcpListener::bind(&opts.listen).map_err(|source| Error::Listen { addr: opts.listen.clone(), source })?;
        let listen = listener.local_addr().map_err(Error::net("local address"))?;
        if opts.secret.is_none() && !opts.open_remote && !listen.ip().is_loopback() {
            return Err(Error::Usage(format!(
                "refusing to serve {listen} without authentication: give a token (--token-file or LONGHAUL_TOKEN), listen on a loopback address, or allow it (--open; openRemote in the SDK)"
            )));
        }
        let pool = Pool::new(opts.max_block as usize, opts.pool_buffers)?;
        let nofile = crate::node::conn_limit::raise_nofile();
        let conns =
            Limiter::new(crate::node::conn_limit::cap_for_nofile(opts.max_connections, nofile, opts.tls.is_some()), opts.max_per_peer);
        let lobby = Lobby::new()?;
        let congestion = crate::sys::congestion::choose(&opts.congestion)?;
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
            congestion_name: congestion.effective(),
            congestion,
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
                let greet = |w: &mut crate::node::conn_limit::Waiting, msg| {
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
        self.drainer().drain(timeout)
    }

    /// A handle to drain the node from another thread while its owner keeps the `Server`, free
    /// to `close` it (a second signal): the drain then ends at once.
    pub fn drainer(&self) -> Drainer {
        Drainer(Arc::clone(&self.inner))
    }

    /// The connections refused in their handshake since the last call (failed logins first of
    /// all), for the owner's log.
    pub fn take_refusals(&self) -> Vec<state::Refusal> {
        self.inner.state.take_refusals()
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

/// See `Server::drainer`.
pub struct Drainer(Arc<Inner>);

impl Drainer {
    /// Refuses new transfers and waits up to `timeout` for the running ones to end, or until
    /// the node is closed; true if they all ended.
    pub fn drain(&self, timeout: Duration) -> bool {
        self.0.draining.store(true, Ordering::SeqCst);
        let until = Instant::now() + timeout;
        while self.0.state.active_count() > 0 {
            if Instant::now() >= until || self.0.closing.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

fn fs_create_root(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::io("create root", root.as_os_str().as_encoded_bytes(), e))
}

/// Receivers go near the NIC that reaches the peer, writers near the disk holding the root.
fn node_placement(inner: &Inner, peer: IpAddr) -> Placement {
    Placement::for_peer(&inner.opts.sysfs_root, peer, &inner.root, inner.opts.cores.as_ref(), inner.opts.pin)
        .unwrap_or_else(|e| Placement::unpinned(&allowed_cpus(), format!("no placement: {e}")))
}
