//! A node's statistics (`BindingServer.stats`), as core's `NodeStats`. Absent values are
//! `null`, as in the JSON a remote node's STATS answer carries, so both read the same.

use std::collections::BTreeMap;

/// The node's statistics and its transfer table.
#[napi(object, use_nullable = true)]
pub struct BindingNodeStats {
    pub root: String,
    pub listen: String,
    pub auth: bool,
    pub capacity: Option<f64>,
    pub free: Option<f64>,
    /// Bytes of regular files under the root, as `du -sb` counts them: temporary files included.
    pub stored: f64,
    /// Bytes reserved by pushes running now and not yet written.
    pub reserved: f64,
    /// Temporary `.part` files among `stored`, and their bytes.
    pub parts: f64,
    pub parts_bytes: f64,
    pub active: f64,
    pub completed: f64,
    pub failed: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub pool: BindingPoolStats,
    pub memory: BindingMemoryStats,
    pub limits: Vec<BindingLimitStats>,
    pub peers: Vec<BindingPeerStats>,
    /// Failed transfers by error code.
    pub errors: BTreeMap<String, f64>,
    pub readv: BindingReadvStats,
    pub connections: BindingConnectionStats,
    pub transfers: Vec<BindingTransferRow>,
    pub recent: Vec<BindingTransferRow>,
    pub last_placement: Option<String>,
    pub files_linked: f64,
    pub files_renamed: f64,
    pub last_file_creation: Option<String>,
    /// The TCP congestion control on the connections the node accepts.
    pub congestion: String,
    /// Why not BBR, where `congestion: auto` could not have it.
    pub congestion_note: Option<String>,
}

#[napi(object)]
pub struct BindingPoolStats {
    pub buffers: f64,
    pub available: f64,
    pub buffer_bytes: f64,
    pub locked: bool,
}

#[napi(object)]
pub struct BindingMemoryStats {
    pub budget: f64,
    pub held: f64,
}

/// A bandwidth limit: `scope` "total" (peer null) or "peer".
#[napi(object, use_nullable = true)]
pub struct BindingLimitStats {
    pub scope: String,
    pub peer: Option<String>,
    pub rate: f64,
    pub passed: f64,
    pub utilisation: f64,
}

#[napi(object)]
pub struct BindingPeerStats {
    pub peer: String,
    pub bytes_in: f64,
    pub bytes_out: f64,
}

#[napi(object)]
pub struct BindingReadvStats {
    pub requests: f64,
    pub segments: f64,
    pub bytes: f64,
    pub reads: f64,
}

#[napi(object)]
pub struct BindingConnectionStats {
    pub open: f64,
    pub handshaking: f64,
    pub max: f64,
    pub max_per_peer: f64,
    pub refused: f64,
    pub evicted: f64,
}

/// A row of the node's transfer table.
#[napi(object, use_nullable = true)]
pub struct BindingTransferRow {
    pub id: f64,
    pub peer: String,
    /// "in", "out" or "copy".
    pub direction: String,
    pub path: String,
    pub bytes_done: f64,
    pub bytes_total: f64,
    pub files_total: f64,
    pub streams: u32,
    pub started_unix_ms: f64,
    pub seconds: f64,
    pub rate: f64,
    /// null while active; "ok" or "failed".
    pub outcome: Option<String>,
    pub code: Option<String>,
    /// The error's message when failed (an E_IO names the path and the OS error).
    pub message: Option<String>,
    /// Entries a push with --delete removed (files, symlinks, directories).
    pub deleted: f64,
}

/// A connection the node refused in its handshake (a failed login).
#[napi(object)]
pub struct BindingRefusal {
    /// The peer's IP address.
    pub peer: String,
    pub code: String,
    pub message: String,
    pub unix_ms: f64,
}
