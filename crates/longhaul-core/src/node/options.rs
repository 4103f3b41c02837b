//! What a node is started with (`longhaul serve`), each default with the reason for its value.

use crate::session::recv::Fsync;
use crate::sys::congestion::Congestion;
use crate::sys::tls::{ClientTls, ServerTls};
use crate::wire::auth::Secret;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    pub cores: Option<crate::place::placement::CoreSpec>,
    pub pin: crate::place::placement::PinMode,
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
    /// TLS on every connection (crate::sys::tls); a plaintext client is refused with E_TLS.
    pub tls: Option<Arc<ServerTls>>,
    /// TLS, and how to trust the other node, when this node pushes to another for a copy.
    pub peer_tls: Option<ClientTls>,
    /// The TCP congestion control of every connection the node accepts (it sends a pull's
    /// blocks and READV answers on them) and of a copy's data streams.
    pub congestion: Congestion,
    /// Connections open at once, of every kind and stage (crate::node::conn_limit); past it a new
    /// one evicts the oldest still in its handshake, or is refused with E_BUSY. Lowered at
    /// start to what RLIMIT_NOFILE allows.
    pub max_connections: usize,
    /// Connections open at once from one IP address (an IPv6 host: its /64); past it E_BUSY.
    pub max_per_peer: usize,
    /// Bytes of memory for the buffer pools of all transfers and the content indexes they hold
    /// (crate::node::budget): the push pool counts from the start, each pull and copy its own pool
    /// and index, each push its index. A transfer past it gets E_BUSY with a retry-after hint.
    pub memory: u64,
    /// `HOST:PORT` targets a copy may go to (crate::node::copy_to); empty, the node copies nowhere.
    pub copy_to: Vec<String>,
    /// Give pushed files and directories the setuid and setgid bits their index asks for.
    pub keep_setid: bool,
    /// Accept bench sessions (`longhaul bench`: generated data, checked and discarded, nothing
    /// stored); false refuses them with E_DENIED (`serve --no-bench`). Allowed by default: a
    /// bench costs the node what a push of the same bytes to a fast disk costs, and an
    /// authenticated client may push that much anyway.
    pub bench: bool,
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
            pin: crate::place::placement::PinMode::Auto,
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
            congestion: Congestion::Auto,
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
            bench: true,
            // A resume comes within minutes or hours of its failure (a dropped link, a
            // restarted job); a day covers a night's outage, and bounds how long an abandoned
            // push holds space no one else may use.
            resume_ttl: Duration::from_secs(24 * 3600),
        }
    }
}
