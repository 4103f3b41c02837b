//! Options for `send`.

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
    /// Open more streams during a push while they raise the goodput, starting from `streams`
    /// (default: when `streams` is not given).
    pub streams_auto: Option<bool>,
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
    /// Decide which files the node already holds by content (default false: by size and mtime): both ends hash every file that could be equal, and only those that differ are sent.
    pub checksum: Option<bool>,
    /// Keep every entry's numeric owner (rsync `--owner`; default false): set by a node running as root, named as not kept otherwise.
    pub owner: Option<bool>,
    /// Keep every entry's numeric group (rsync `--group`; default false), as `owner`.
    pub group: Option<bool>,
    /// Keep extended attributes (rsync `-X`; default false): user.* always, the others (ACLs among them) where the node runs as root; named as not kept otherwise.
    pub xattrs: Option<bool>,
    /// "block" (default: XXH3 of every block on arrival) or "full" (also a BLAKE3 of every file, read back by the node before the rename).
    pub verify: Option<String>,
    /// TCP congestion control of the data streams: "auto" (default: BBR where the kernel lets this process use it), "system" (the host's default) or an algorithm's name ("cubic", "bbr", ...).
    pub congestion: Option<String>,
    /// Filter rules in order, each `- PATTERN` (leave out) or `+ PATTERN` (keep), gitignore patterns matched below the source; the first rule that matches decides.
    pub filters: Option<Vec<String>>,
    /// Bytes per second for all streams together.
    pub rate: Option<f64>,
    /// After the transfer verified, remove what the destination holds and the source does not (what the filters leave out is kept).
    pub delete: Option<bool>,
    /// With delete: proceed though the source lists nothing.
    pub force: Option<bool>,
}
