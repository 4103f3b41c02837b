//! `send`'s summary.

use super::{BindingNetSample, BindingPlacement, BindingReceiverDisk, BindingSample, BindingScheduler, BindingStreamNet, BindingVerdict};

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
    /// From the start of the send (as `seconds`, the scan included) to the first data byte
    /// handed to a data socket; absent when nothing was sent (everything resumed or unchanged).
    pub first_byte_seconds: Option<f64>,
    /// Time the node spent from MANIFEST to its summary.
    pub receiver_seconds: f64,
    /// The node's disk writers and their waits; absent from a node that does not report them.
    pub receiver: Option<BindingReceiverDisk>,
    /// CPU seconds the node's threads spent on the session; a bench only (`longhaul bench`).
    pub receiver_cpu_seconds: Option<f64>,
    pub streams: u32,
    /// With `streams: "auto"`: how the count was chosen (`auto: goodput +95%, +40%, +3%,
    /// stopped: the last step did not pay`); absent for a fixed count.
    pub streams_reason: Option<String>,
    pub per_stream_bytes: Vec<f64>,
    /// Blocks that left with sendfile (zero copy), and their bytes.
    pub sendfile_blocks: f64,
    pub sendfile_bytes: f64,
    /// Blocks packed from one or more files into a pooled buffer, and their bytes.
    pub packed_blocks: f64,
    pub packed_bytes: f64,
    pub fast_paths: BindingFastPaths,
    pub skipped: Vec<BindingSkipped>,
    /// Entries the filters left out (a directory left out counts once).
    pub excluded: f64,
    /// Names of multiply-linked files sent as files of their own (0 unless the node cannot make hard links).
    pub hard_links: f64,
    /// Files with holes: sent and written with the holes as zeros (the sparse layout is not kept).
    pub sparse_files: f64,
    /// Entries whose owner or group (`owner`/`group`) was not kept, and why ("" when none).
    pub owner_not_kept: f64,
    pub owner_not_kept_why: String,
    /// Entries whose extended attributes (`xattrs`) were not all kept, and why ("" when none).
    pub xattrs_not_kept: f64,
    pub xattrs_not_kept_why: String,
    pub scheduler: BindingScheduler,
    pub placement: BindingPlacement,
    /// Thread states sampled every few milliseconds.
    pub timeline: Vec<BindingSample>,
    /// "none" or "blake3".
    pub digest: String,
    /// Blocks and bytes the node already held from an earlier attempt, not sent again.
    pub resumed_blocks: f64,
    pub resumed_bytes: f64,
    /// Bytes of blocks wholly in holes of sparse files: neither sent nor written, left as holes.
    pub hole_bytes: f64,
    /// Blocks sent a second time by the end-game (on an idle stream while the first copy was
    /// slow on another; the node kept the first to arrive), and their bytes: in neither
    /// per_stream_bytes (a block counts once) nor bytes.
    pub endgame_blocks: f64,
    pub endgame_bytes: f64,
    /// Files the node found already there and did not receive; null from a node too old to say.
    pub unchanged: Option<BindingUnchanged>,
    /// "block" or "full".
    pub verify: String,
    /// Files the node read back and found with the sender's whole-file BLAKE3 (verify "full").
    pub verified_files: f64,
    /// The TCP congestion control the data streams ran ("bbr", "cubic", ...).
    pub congestion: String,
    /// Why not BBR, where congestion "auto" could not have it.
    pub congestion_note: Option<String>,
    /// Control round trips of the session (handshake, manifest exchange, end): the same for any number of files.
    pub round_trips: u32,
    /// TCP_INFO of each data stream at the end (none under TLS).
    pub network: Vec<BindingStreamNet>,
    /// TCP_INFO of every data stream over the send, sampled together (at most ~16k samples).
    pub network_timeline: Vec<BindingNetSample>,
    /// What limited the send, and the evidence.
    pub verdict: BindingVerdict,
    /// With delete: what the node removed once the transfer verified.
    pub deleted: Option<super::BindingDeleted>,
}

/// Which fast paths were used, and the reason for each fallback.
#[napi(object)]
pub struct BindingFastPaths {
    pub sendfile: bool,
    pub sendfile_fallback: Option<String>,
    pub mlock: bool,
    pub mlock_fallback: Option<String>,
}

/// A source entry that was not sent (a FIFO, a socket, a device file).
#[napi(object)]
pub struct BindingSkipped {
    pub path: String,
    pub reason: String,
}

/// Files the node found already at the destination, not sent again.
#[napi(object)]
pub struct BindingUnchanged {
    pub files: f64,
    pub bytes: f64,
    /// How: "size+mtime" (the default), "BLAKE3" (checksum) or "size+mtime+BLAKE3" (verify "full": each confirmed by its digest).
    pub by: String,
}
