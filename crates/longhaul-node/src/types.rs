//! Types that cross into JavaScript. Byte counts are `number` (f64): exact up to 2^53, 8 PiB.

use longhaul_core::place::placement::Placement;
use longhaul_core::place::topology::format_cpu_list;
use longhaul_core::sched::timeline::Sample;
use longhaul_core::{Digest, FastPaths, Progress, SendSummary};

/// Options for `send`.
#[napi(object)]
pub struct BindingSendOptions {
    /// A file or a directory to send.
    pub source: String,
    /// The node, as `host:port`.
    pub address: String,
    /// Destination directory under the node's root ("" for the root itself).
    pub dest: String,
    /// Parallel TCP data streams (default 2).
    pub streams: Option<u32>,
    /// Block size in bytes (default 1 MiB).
    pub block_size: Option<u32>,
    /// Buffers in the sender's pool (default 2 * streams + readers).
    pub pool_buffers: Option<u32>,
    /// Disk-reader threads (default min(streams, 4), at least 2).
    pub readers: Option<u32>,
    /// Milliseconds between progress events (default 100).
    pub progress_interval_ms: Option<u32>,
    /// "pipelined", "adaptive" or "auto" (default: auto, a measured probe of both).
    pub scheduler: Option<String>,
    /// Processing besides XXH3: "none" (default) or "blake3" (a BLAKE3 of every block, checked by the node).
    pub digest: Option<String>,
    /// CPUs for I/O threads, e.g. "2-7" (default: chosen from the topology).
    pub cores_io: Option<String>,
    /// CPUs for other work, e.g. "0-1,8-15".
    pub cores_other: Option<String>,
    /// "auto" (pin on several NUMA nodes or with cores set), "always" or "never".
    pub pin: Option<String>,
    /// Pipelined processing threads (default 1, or one per CPU with blake3).
    pub processors: Option<u32>,
    /// Adaptive worker threads (default CPUs + 2).
    pub workers: Option<u32>,
    /// Milliseconds between thread-state samples (default 5).
    pub timeline_interval_ms: Option<u32>,
    /// Milliseconds the node has to answer the handshake and to take each block (default 60,000).
    pub io_timeout_ms: Option<u32>,
    /// The node's shared token.
    pub token: Option<String>,
    /// TLS: the node certificate's SHA-256 to trust ("sha256:..." as the node prints it).
    pub tls_pin: Option<String>,
    /// TLS: a PEM file of CA certificates the node's certificate must chain to.
    pub tls_ca: Option<String>,
    /// Resume from the node's journal of an earlier attempt and skip files it holds with the same size and mtime (default true).
    pub resume: Option<bool>,
    /// "block" (default: XXH3 of every block on arrival) or "full" (also a BLAKE3 of every file, read back by the node before the rename).
    pub verify: Option<String>,
}

/// A progress snapshot.
#[napi(object)]
pub struct BindingProgress {
    pub bytes_done: f64,
    pub bytes_total: f64,
    pub files_done: f64,
    pub files_total: f64,
    pub seconds: f64,
    pub per_stream_bytes: Vec<f64>,
}

impl From<&Progress> for BindingProgress {
    fn from(p: &Progress) -> Self {
        BindingProgress {
            bytes_done: p.bytes_done as f64,
            bytes_total: p.bytes_total as f64,
            files_done: p.files_done as f64,
            files_total: p.files_total as f64,
            seconds: p.seconds,
            per_stream_bytes: p.per_stream_bytes.iter().map(|&b| b as f64).collect(),
        }
    }
}

/// Which fast paths were used, and the reason for each fallback.
#[napi(object)]
pub struct BindingFastPaths {
    pub sendfile: bool,
    pub sendfile_fallback: Option<String>,
    pub mlock: bool,
    pub mlock_fallback: Option<String>,
}

impl From<FastPaths> for BindingFastPaths {
    fn from(f: FastPaths) -> Self {
        BindingFastPaths { sendfile: f.sendfile, sendfile_fallback: f.sendfile_fallback, mlock: f.mlock, mlock_fallback: f.mlock_fallback }
    }
}

/// A source entry that was not sent (a FIFO, a socket, a device file).
#[napi(object)]
pub struct BindingSkipped {
    pub path: String,
    pub reason: String,
}

/// The outcome of a completed `send`.
#[napi(object)]
pub struct BindingSendSummary {
    pub bytes: f64,
    pub files: f64,
    pub dirs: f64,
    pub symlinks: f64,
    pub blocks: f64,
    /// Wall time of the whole send, scan included.
    pub seconds: f64,
    pub scan_seconds: f64,
    /// Time the node spent from MANIFEST to its summary.
    pub receiver_seconds: f64,
    pub streams: u32,
    pub per_stream_bytes: Vec<f64>,
    /// Blocks that left with sendfile (zero copy), and their bytes.
    pub sendfile_blocks: f64,
    pub sendfile_bytes: f64,
    /// Blocks packed from one or more files into a pooled buffer, and their bytes.
    pub packed_blocks: f64,
    pub packed_bytes: f64,
    pub fast_paths: BindingFastPaths,
    pub skipped: Vec<BindingSkipped>,
    pub scheduler: BindingScheduler,
    pub placement: BindingPlacement,
    /// Thread states sampled every few milliseconds.
    pub timeline: Vec<BindingSample>,
    /// "none" or "blake3".
    pub digest: String,
    /// Blocks and bytes the node already held from an earlier attempt, not sent again.
    pub resumed_blocks: f64,
    pub resumed_bytes: f64,
    /// "block" or "full".
    pub verify: String,
    /// Files the node read back and found with the sender's whole-file BLAKE3 (verify "full").
    pub verified_files: f64,
}

/// The scheduler a transfer ran on, and why.
#[napi(object)]
pub struct BindingScheduler {
    pub requested: String,
    pub used: String,
    pub reason: String,
    /// Bytes/s of each scheduler in `auto`'s probe.
    pub probe: Vec<BindingProbe>,
}

#[napi(object)]
pub struct BindingProbe {
    pub scheduler: String,
    pub bytes_per_second: f64,
}

/// Where the engine's threads ran.
#[napi(object)]
pub struct BindingPlacement {
    pub reason: String,
    pub pinned: bool,
    /// Why threads were not pinned, when they were not.
    pub fallback: Option<String>,
    pub disk_cpus: String,
    pub net_cpus: String,
    pub other_cpus: String,
    pub disk_node: Option<u32>,
    pub net_node: Option<u32>,
    pub threads: Vec<BindingThreadPin>,
}

/// One engine thread bound to a CPU.
#[napi(object)]
pub struct BindingThreadPin {
    pub name: String,
    pub tid: i32,
    pub cpu: u32,
    /// Why binding failed, if it did.
    pub error: Option<String>,
}

/// Thread states at one moment of the transfer.
#[napi(object)]
pub struct BindingSample {
    /// Milliseconds since the transfer started.
    pub ms: f64,
    pub reading: u32,
    pub processing: u32,
    pub sending: u32,
    pub writing: u32,
    pub blocked: u32,
    pub queued: u32,
}

impl From<&Sample> for BindingSample {
    fn from(s: &Sample) -> Self {
        BindingSample {
            ms: s.ms,
            reading: s.reading,
            processing: s.processing,
            sending: s.sending,
            writing: s.writing,
            blocked: s.blocked,
            queued: s.queued,
        }
    }
}

fn placement(p: Placement, threads: Vec<longhaul_core::ThreadPin>) -> BindingPlacement {
    BindingPlacement {
        reason: p.reason,
        pinned: p.pin,
        fallback: p.fallback,
        disk_cpus: format_cpu_list(&p.disk_cpus),
        net_cpus: format_cpu_list(&p.net_cpus),
        other_cpus: format_cpu_list(&p.other_cpus),
        disk_node: p.disk_node.map(|n| n as u32),
        net_node: p.net_node.map(|n| n as u32),
        threads: threads.into_iter().map(|t| BindingThreadPin { name: t.name, tid: t.tid, cpu: t.cpu as u32, error: t.error }).collect(),
    }
}

impl From<SendSummary> for BindingSendSummary {
    fn from(s: SendSummary) -> Self {
        BindingSendSummary {
            bytes: s.bytes as f64,
            files: s.files as f64,
            dirs: s.dirs as f64,
            symlinks: s.symlinks as f64,
            blocks: s.blocks as f64,
            seconds: s.seconds,
            scan_seconds: s.scan_seconds,
            receiver_seconds: s.receiver.micros as f64 / 1e6,
            streams: s.streams as u32,
            per_stream_bytes: s.per_stream_bytes.iter().map(|&b| b as f64).collect(),
            sendfile_blocks: s.sendfile_blocks as f64,
            sendfile_bytes: s.sendfile_bytes as f64,
            packed_blocks: s.packed_blocks as f64,
            packed_bytes: s.packed_bytes as f64,
            fast_paths: s.fast_paths.into(),
            skipped: s.skipped.into_iter().map(|(path, why)| BindingSkipped { path, reason: why.to_owned() }).collect(),
            scheduler: BindingScheduler {
                requested: s.scheduler.requested.to_owned(),
                used: s.scheduler.used.to_owned(),
                reason: s.scheduler.reason,
                probe: s
                    .scheduler
                    .probe
                    .into_iter()
                    .map(|(k, bps)| BindingProbe { scheduler: k.to_owned(), bytes_per_second: bps })
                    .collect(),
            },
            placement: placement(s.placement, s.pinned),
            timeline: s.timeline.iter().map(BindingSample::from).collect(),
            digest: match s.digest {
                Digest::None => "none".into(),
                Digest::Blake3 => "blake3".into(),
            },
            resumed_blocks: s.resumed_blocks as f64,
            resumed_bytes: s.resumed_bytes as f64,
            verify: s.verify.name().to_owned(),
            verified_files: s.receiver.verified as f64,
        }
    }
}

/// Options for `serve`.
#[napi(object)]
pub struct BindingServeOptions {
    /// Directory the node stores into; created if missing.
    pub root: String,
    /// Address to listen on (default 127.0.0.1).
    pub host: Option<String>,
    /// Port (default 0: a free one).
    pub port: Option<u32>,
    /// Buffers in the node's pool, shared by all transfers (default 16).
    pub pool_buffers: Option<u32>,
    /// Largest block a sender may use, in bytes (default 4 MiB).
    pub max_block: Option<u32>,
    /// Disk-writer threads per transfer (default 4).
    pub writers: Option<u32>,
    /// Most data streams per transfer (default 64).
    pub max_streams: Option<u32>,
    /// CPUs for the node's I/O threads, e.g. "2-7" (default: chosen from the topology).
    pub cores_io: Option<String>,
    pub cores_other: Option<String>,
    /// "auto", "always" or "never".
    pub pin: Option<String>,
    /// Milliseconds a new connection has for its first frame (default 30,000).
    pub handshake_timeout_ms: Option<u32>,
    /// Milliseconds a data connection has for each frame, and a session for any progress (default 60,000).
    pub idle_timeout_ms: Option<u32>,
    /// The shared secret clients must prove they hold (at least 16 characters).
    pub token: Option<String>,
    /// TLS on every connection; without `tlsCert`/`tlsKey` a self-signed certificate is made.
    pub tls: Option<bool>,
    /// PEM certificate chain for TLS (with `tlsKey`).
    pub tls_cert: Option<String>,
    /// PEM private key for TLS (with `tlsCert`).
    pub tls_key: Option<String>,
    /// TLS to the other node in a copy: its certificate's SHA-256.
    pub peer_tls_pin: Option<String>,
    /// TLS to the other node in a copy: a PEM file of CA certificates.
    pub peer_tls_ca: Option<String>,
    /// Serve without authentication on a non-loopback address.
    pub open_remote: Option<bool>,
    /// Bytes the node may store (default: no limit).
    pub capacity: Option<f64>,
    /// Recount stored bytes by walking the root at start.
    pub rescan: Option<bool>,
    /// Bytes per second for all transfers together.
    pub rate: Option<f64>,
    /// Bytes per second per peer address, shared by all of that peer's streams.
    pub peer_rates: Option<Vec<BindingPeerRate>>,
    /// Transfers at once (default 32).
    pub max_transfers: Option<u32>,
    /// Connections open at once, of every kind (default 4,096); past it the oldest one still in its handshake is closed, or E_BUSY.
    pub max_connections: Option<u32>,
    /// Connections open at once from one IP address (default 256); past it E_BUSY.
    pub max_per_peer: Option<u32>,
    /// When received files are made durable: "none" (default), "file" (fsync each before its rename) or "end" (one syncfs before the summary).
    pub fsync: Option<String>,
    /// Bytes of memory for the buffer pools of all transfers and the indexes they hold (default 1 GiB); a transfer past it gets E_BUSY.
    pub memory: Option<f64>,
    /// HOST:PORT targets a copy may go to; others get E_DENIED (default: none).
    pub copy_to: Option<Vec<String>>,
    /// Give pushed files and directories the setuid and setgid bits their sender's index asks for (default false: cleared).
    pub keep_setid: Option<bool>,
    /// Milliseconds the temporary files a failed push keeps for its resume stay after its last block (default 86,400,000: 24 h); then the node removes them.
    pub resume_ttl_ms: Option<f64>,
}

#[napi(object)]
pub struct BindingPeerRate {
    pub peer: String,
    pub rate: f64,
}

/// A receiving side's account of a finished transfer (a pull's, or the far node's in a copy).
#[napi(object)]
pub struct BindingReceived {
    pub bytes: f64,
    pub files: f64,
    pub dirs: f64,
    pub symlinks: f64,
    pub blocks: f64,
    /// Seconds from the receiver's session start to its end.
    pub receiver_seconds: f64,
    /// Wall time of the whole call.
    pub seconds: f64,
    /// Files read back and found with the sender's whole-file BLAKE3 (verify "full").
    pub verified_files: f64,
}

impl BindingReceived {
    pub fn new(s: &longhaul_core::wire::frame::SummaryMsg, seconds: f64) -> Self {
        BindingReceived {
            bytes: s.bytes as f64,
            files: s.files as f64,
            dirs: s.dirs as f64,
            symlinks: s.symlinks as f64,
            blocks: s.blocks as f64,
            receiver_seconds: s.micros as f64 / 1e6,
            seconds,
            verified_files: s.verified as f64,
        }
    }
}

/// One entry of a listing.
#[napi(object)]
pub struct BindingListEntry {
    pub name: String,
    /// "dir", "file", "symlink" or "other".
    pub kind: String,
    pub mode: u32,
    pub size: f64,
    /// Nanoseconds since the epoch, as a float (exact to the microsecond).
    pub mtime_ns: f64,
}

/// One segment of a vectored read.
#[napi(object)]
pub struct BindingSegment {
    pub path: String,
    pub offset: f64,
    pub length: u32,
}

/// A readv's answer: every segment's bytes in one buffer, in order, and each segment's length
/// and error code ("" when it succeeded).
#[napi(object)]
pub struct BindingReadv {
    pub data: napi::bindgen_prelude::Buffer,
    pub lengths: Vec<u32>,
    pub codes: Vec<String>,
}
