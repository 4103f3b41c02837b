//! Options for `serve`.

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
    /// TCP congestion control of the connections the node accepts and of a copy's streams: "auto" (default), "system" or an algorithm's name.
    pub congestion: Option<String>,
    /// Bytes of memory for the buffer pools of all transfers and the indexes they hold (default 1 GiB); a transfer past it gets E_BUSY.
    pub memory: Option<f64>,
    /// HOST:PORT targets a copy may go to; others get E_DENIED (default: none).
    pub copy_to: Option<Vec<String>>,
    /// Give pushed files and directories the setuid and setgid bits their sender's index asks for (default false: cleared).
    pub keep_setid: Option<bool>,
    /// Accept bench sessions (`longhaul bench`: generated data checked and discarded); false refuses them with E_DENIED. Default true.
    pub bench: Option<bool>,
    /// Milliseconds the temporary files a failed push keeps for its resume stay after its last block (default 86,400,000: 24 h); then the node removes them.
    pub resume_ttl_ms: Option<f64>,
}

#[napi(object)]
pub struct BindingPeerRate {
    pub peer: String,
    pub rate: f64,
}
