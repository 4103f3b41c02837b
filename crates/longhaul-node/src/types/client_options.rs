//! Options for `connect`, `get` and `copy`.

#[napi(object)]
pub struct BindingConnectOptions {
    /// The node, as `host:port`.
    pub address: String,
    pub token: Option<String>,
    /// TLS: the node certificate's SHA-256 to trust ("sha256:..." as the node prints it).
    pub tls_pin: Option<String>,
    /// TLS: a PEM file of CA certificates the node's certificate must chain to.
    pub tls_ca: Option<String>,
    /// Milliseconds for connecting and for each reply (default 60,000).
    pub timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct BindingGetOptions {
    /// The node, as `host:port`.
    pub address: String,
    /// What to pull, relative to the node's root.
    pub path: String,
    /// Local directory the pulled file or tree lands in.
    pub dest: String,
    pub streams: Option<u32>,
    pub block_size: Option<u32>,
    pub writers: Option<u32>,
    pub token: Option<String>,
    /// TLS: the node certificate's SHA-256 to trust ("sha256:..." as the node prints it).
    pub tls_pin: Option<String>,
    /// TLS: a PEM file of CA certificates the node's certificate must chain to.
    pub tls_ca: Option<String>,
    pub timeout_ms: Option<u32>,
    pub progress_interval_ms: Option<u32>,
    /// "block" (default) or "full": the node sends a BLAKE3 of every file, checked on the files read back here.
    pub verify: Option<String>,
    /// Resume from this side's journal of an earlier pull and keep files already here with the same size and mtime (default true).
    pub resume: Option<bool>,
    /// Give pulled files and directories the setuid and setgid bits the node's index asks for (default false: cleared).
    pub keep_setid: Option<bool>,
    /// Bytes per second for all streams together.
    pub rate: Option<f64>,
    /// Decide which files are here already by their BLAKE3 (the node's against this side's), not size and mtime (default false).
    pub checksum: Option<bool>,
    /// Keep the node's numeric owners, set when this side runs as root (default false).
    pub owner: Option<bool>,
    /// Keep the node's numeric groups, set when this side runs as root (default false).
    pub group: Option<bool>,
    /// Keep extended attributes: user.* always, the others when this side runs as root (default false).
    pub xattrs: Option<bool>,
}

#[napi(object)]
pub struct BindingCopyOptions {
    /// The node that has the data, as `host:port`.
    pub from: String,
    pub src: String,
    /// The node that receives it, as `from` can reach it.
    pub to: String,
    pub dest: String,
    pub streams: Option<u32>,
    pub block_size: Option<u32>,
    pub token: Option<String>,
    /// TLS to `from` (its certificate's SHA-256); `from` reaches `to` with its own peer TLS settings.
    pub tls_pin: Option<String>,
    /// TLS to `from`: a PEM file of CA certificates.
    pub tls_ca: Option<String>,
    pub timeout_ms: Option<u32>,
    pub progress_interval_ms: Option<u32>,
    /// "block" (default) or "full": `from` sends a BLAKE3 of every file and `to` checks each one read back.
    pub verify: Option<String>,
}
