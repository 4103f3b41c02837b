//! A storage node: a root directory, a listening socket, and a table of sessions. Each
//! connection gets a thread; its first frame says what it is: HELLO opens a control session,
//! DATA_HELLO attaches a data stream to the session its token names. Sessions share the node's
//! buffer pool, so the node's memory is bounded by that pool whatever the number of transfers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::frame::{self, Limits, Msg, Token};
use crate::index::Index;
use crate::net::Deadline;
use crate::placement::{allowed_cpus, Placement};
use crate::pool::Pool;
use crate::receive::{Receive, SessionParams};
use crate::topology::Topology;

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub root: PathBuf,
    /// `HOST:PORT`; port 0 picks a free one.
    pub listen: String,
    /// Cores for the node's I/O threads; `None` lets the placement choose (see placement.rs).
    pub cores: Option<crate::placement::CoreSpec>,
    pub pin: crate::placement::PinMode,
    /// Where sysfs and procfs are read from (`/`).
    pub sysfs_root: PathBuf,
    /// A new connection must complete its first frame within this (and a sender its MANIFEST).
    pub handshake_timeout: Duration,
    /// A data connection must deliver each frame, a 4 MiB block included, within this, and a
    /// session that makes no progress for this long is failed with E_TIMEOUT.
    pub idle_timeout: Duration,
    /// The largest block a sender may use; also the size of each pool buffer.
    pub max_block: u32,
    /// Buffers in the node's pool, shared by all sessions.
    pub pool_buffers: usize,
    pub max_streams: u16,
    /// Disk-writer threads per session.
    pub writers: usize,
    pub max_manifest: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            root: PathBuf::from("."),
            listen: "127.0.0.1:0".into(),
            cores: None,
            pin: crate::placement::PinMode::Auto,
            sysfs_root: PathBuf::from("/"),
            // Long enough for a slow WAN handshake, short enough that idle sockets do not pile up.
            handshake_timeout: Duration::from_secs(30),
            // 4 MiB in 60 s is 70 KB/s per stream: slower than that, a stream is stalled.
            idle_timeout: Duration::from_secs(60),
            max_block: crate::sender::DEFAULT_BLOCK_SIZE,
            // 16 x 4 MiB = 64 MiB: two blocks in flight per stream for 8 streams, plus the
            // writers' queue.
            pool_buffers: 16,
            max_streams: 64,
            // Creating small files is metadata-bound, not CPU-bound: more writers than cores
            // overlap the file system's latency (bench/RESULTS.md).
            writers: 4,
            // 256 MiB holds the index of several million files.
            max_manifest: 256 << 20,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    pub bytes_received: u64,
    /// The placement of the most recent session, and why.
    pub last_placement: Option<String>,
}

struct Inner {
    root: PathBuf,
    opts: ServeOptions,
    pool: Arc<Pool>,
    sessions: Mutex<HashMap<Token, Arc<Receive>>>,
    closing: AtomicBool,
    completed: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    last_placement: Mutex<Option<String>>,
}

pub struct Server {
    inner: Arc<Inner>,
    addr: SocketAddr,
    listener: TcpListener,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(opts: ServeOptions) -> Result<Server> {
        fs_create_root(&opts.root)?;
        let root = std::fs::canonicalize(&opts.root).map_err(|e| Error::io("resolve root", opts.root.as_os_str().as_encoded_bytes(), e))?;
        let listener = TcpListener::bind(&opts.listen).map_err(|source| Error::Connect { addr: opts.listen.clone(), source })?;
        let addr = listener.local_addr().map_err(Error::net("local address"))?;
        let pool = Pool::new(opts.max_block as usize, opts.pool_buffers)?;
        let inner = Arc::new(Inner {
            root,
            opts,
            pool,
            sessions: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_placement: Mutex::new(None),
        });
        let l = listener.try_clone().map_err(Error::net("cloning the listener"))?;
        let i = Arc::clone(&inner);
        let accept = std::thread::Builder::new()
            .name("lh-accept".into())
            .spawn(move || accept_loop(&i, l))
            .map_err(|e| Error::io("spawn", b"accept thread", e))?;
        Ok(Server { inner, addr, listener, accept: Some(accept) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.inner.pool
    }

    pub fn stats(&self) -> ServerStats {
        ServerStats {
            active: self.inner.sessions.lock().expect("sessions lock").len() as u64,
            completed: self.inner.completed.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            bytes_received: self.inner.bytes.load(Ordering::Relaxed),
            last_placement: self.inner.last_placement.lock().expect("placement lock").clone(),
        }
    }

    /// Stops accepting, fails the sessions in flight (their temporary files are removed) and
    /// waits for the accept thread.
    pub fn close(&mut self) {
        if self.inner.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        // shutdown(2) on a listening socket wakes a blocked accept on Linux.
        let _ = rustix::net::shutdown(self.listener.as_fd(), rustix::net::Shutdown::Read);
        for r in self.inner.sessions.lock().expect("sessions lock").values() {
            r.fail(Error::Protocol("the node is shutting down".into()));
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
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
        let _ = sock.set_nodelay(true);
        let i = Arc::clone(inner);
        let _ = std::thread::Builder::new().name("lh-conn".into()).spawn(move || {
            // A panic here ends this connection only; the node goes on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle_conn(&i, sock)));
        });
    }
}

fn handle_conn(inner: &Arc<Inner>, mut sock: TcpStream) {
    let first = frame::read_msg(&mut Deadline::new(&sock, inner.opts.handshake_timeout), 0);
    let _ = sock.set_read_timeout(None);
    match first {
        Ok(Some(Msg::Hello { min, max, .. })) => {
            if let Err(e) = control(inner, &mut sock, min, max) {
                let _ = frame::write_msg(&mut sock, &Msg::error(&e));
            }
        }
        Ok(Some(Msg::DataHello { token, .. })) => {
            let session = inner.sessions.lock().expect("sessions lock").get(&token).cloned();
            match session {
                Some(r) => r.run_stream(sock),
                None => {
                    let _ = frame::write_msg(&mut sock, &Msg::error(&Error::Protocol("unknown session token".into())));
                }
            }
        }
        Ok(Some(m)) => {
            let e = Error::Protocol(format!("a connection must start with HELLO or DATA_HELLO, not {:?}", m.frame_type()));
            let _ = frame::write_msg(&mut sock, &Msg::error(&e));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = frame::write_msg(&mut sock, &Msg::error(&e));
        }
    }
}

fn control(inner: &Arc<Inner>, sock: &mut TcpStream, min: u16, max: u16) -> Result<()> {
    if max < frame::VERSION_MIN || min > frame::VERSION_MAX || min > max {
        return Err(Error::Version { ours_min: frame::VERSION_MIN, ours_max: frame::VERSION_MAX, peer_min: min, peer_max: max });
    }
    let limits =
        Limits { max_streams: inner.opts.max_streams, max_block: inner.pool.buf_size() as u32, max_manifest: inner.opts.max_manifest };
    frame::write_msg(sock, &Msg::HelloOk { version: max.min(frame::VERSION_MAX), features: frame::FEATURES, limits })?;
    let manifest =
        frame::expect_msg(&mut Deadline::new(sock, inner.opts.handshake_timeout.max(inner.opts.idle_timeout)), limits.max_manifest);
    let _ = sock.set_read_timeout(None);
    let (dest, streams, block_size, index) = match manifest? {
        Msg::Manifest { dest, streams, block_size, index } => (dest, streams, block_size, index),
        m => return Err(Error::Protocol(format!("expected MANIFEST, got {:?}", m.frame_type()))),
    };
    if streams == 0 || streams > limits.max_streams {
        return Err(Error::Limit { what: "streams", limit: limits.max_streams as u64, got: streams as u64 });
    }
    if block_size < 4096 || block_size > limits.max_block {
        return Err(Error::Limit { what: "block size", limit: limits.max_block as u64, got: block_size as u64 });
    }
    let index = Index::decode(&index)?;
    let token = new_token()?;
    let placement = node_placement(inner, sock);
    *inner.last_placement.lock().expect("placement lock") = Some(match &placement.fallback {
        Some(f) => format!("{}; not pinned: {f}", placement.reason),
        None => format!("{}; pinned", placement.reason),
    });
    let params =
        SessionParams { dest, streams, block_size, writers: inner.opts.writers, token, placement, idle_timeout: inner.opts.idle_timeout };
    let recv = Receive::prepare(&inner.root, index, params, Arc::clone(&inner.pool))?;
    inner.sessions.lock().expect("sessions lock").insert(token, Arc::clone(&recv));
    if inner.closing.load(Ordering::SeqCst) {
        recv.fail(Error::Protocol("the node is shutting down".into()));
    }
    let result = frame::write_msg(sock, &Msg::Ready { token, streams }).and_then(|()| {
        let watch = sock.try_clone().map_err(Error::net("cloning a socket"))?;
        let r = Arc::clone(&recv);
        std::thread::Builder::new()
            .name("lh-control".into())
            .spawn(move || watch_control(&r, watch))
            .map_err(|e| Error::io("spawn", b"control watcher", e))?;
        recv.wait_and_finish()
    });
    inner.sessions.lock().expect("sessions lock").remove(&token);
    inner.bytes.fetch_add(recv.bytes_received(), Ordering::Relaxed);
    match result {
        Ok(summary) => {
            inner.completed.fetch_add(1, Ordering::Relaxed);
            frame::write_msg(sock, &Msg::Summary(summary))
        }
        Err(e) => {
            inner.failed.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// Receivers go near the NIC that reaches the peer, writers near the disk holding the root.
fn node_placement(inner: &Inner, sock: &TcpStream) -> Placement {
    let allowed = allowed_cpus();
    let topo = match Topology::read(&inner.opts.sysfs_root) {
        Ok(t) => t,
        Err(e) => return Placement::unpinned(&allowed, format!("topology unreadable ({e}): threads are not pinned")),
    };
    let net_node = match sock.peer_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(v4)) => topo.interface_for(v4).and_then(|i| topo.node_of_interface(&i)),
        _ => None,
    };
    let disk_node = topo.node_of_path(&inner.root);
    Placement::choose(&topo, net_node, disk_node, inner.opts.cores.as_ref(), &allowed, inner.opts.pin)
        .unwrap_or_else(|e| Placement::unpinned(&allowed, format!("no placement: {e}")))
}

/// Reads the control connection while data flows: DONE, or the sender going away.
fn watch_control(recv: &Receive, mut sock: TcpStream) {
    match frame::read_msg(&mut sock, 0) {
        Ok(Some(Msg::Done { bytes, .. })) => recv.client_done(bytes),
        Ok(Some(Msg::Error { code, message })) => recv.fail(Error::remote(&code, &message)),
        Ok(Some(m)) => recv.fail(Error::Protocol(format!("unexpected {:?} frame on the control connection", m.frame_type()))),
        Ok(None) => recv.fail(Error::Cancelled),
        Err(e) => recv.fail(e),
    }
}

fn new_token() -> Result<Token> {
    let mut t = [0u8; frame::TOKEN_LEN];
    let mut filled = 0;
    while filled < t.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `t`.
        let n = unsafe { libc::getrandom(t[filled..].as_mut_ptr().cast(), t.len() - filled, 0) };
        if n < 0 {
            return Err(Error::io("getrandom", b"", std::io::Error::last_os_error()));
        }
        filled += n as usize;
    }
    Ok(t)
}
