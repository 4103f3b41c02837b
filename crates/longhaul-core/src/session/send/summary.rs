//! What a send reports when it ends.

use crate::place::placement::Placement;
use crate::sched::timeline::Sample;
pub use crate::sched::SchedulerReport;
use crate::session::progress::FastPaths;
use crate::wire::frame::SummaryMsg;

use super::options::{Digest, Verify};

/// An engine thread and the CPU it was bound to.
#[derive(Clone, Debug)]
pub struct ThreadPin {
    pub name: String,
    pub tid: i32,
    pub cpu: usize,
    pub error: Option<String>,
}

/// What the node found already at the destination (UNCHANGED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchanged {
    pub files: u64,
    pub bytes: u64,
    pub by: &'static str,
}

#[derive(Clone, Debug)]
pub struct SendSummary {
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub blocks: u64,
    pub seconds: f64,
    pub scan_seconds: f64,
    /// From the start of the send (as `seconds`, the scan included) to the first data byte
    /// handed to a data socket; `None` when no block was sent (everything resumed or
    /// unchanged).
    pub first_byte_seconds: Option<f64>,
    pub streams: u16,
    pub per_stream_bytes: Vec<u64>,
    pub sendfile_blocks: u64,
    pub sendfile_bytes: u64,
    pub packed_blocks: u64,
    pub packed_bytes: u64,
    pub fast_paths: FastPaths,
    pub skipped: Vec<(String, &'static str)>,
    /// Entries the filter left out (`--exclude`).
    pub excluded: u64,
    /// What the scan found that the transfer does not keep: files with other hard links (sent
    /// as files of their own) and sparse files (their holes sent as zeros).
    pub hard_links: u64,
    pub sparse_files: u64,
    /// Entries whose owner or group (`--owner`/`--group`) was not kept, and why.
    pub owner_not_kept: u64,
    pub owner_not_kept_why: &'static str,
    /// Entries whose extended attributes (`--xattrs`) were not all kept, and why.
    pub xattrs_not_kept: u64,
    pub xattrs_not_kept_why: &'static str,
    pub receiver: SummaryMsg,
    pub scheduler: SchedulerReport,
    pub placement: Placement,
    pub pinned: Vec<ThreadPin>,
    pub timeline: Vec<Sample>,
    pub digest: Digest,
    /// Blocks and bytes the node already held from an earlier attempt (PLAN) and so were not
    /// sent again.
    pub resumed_blocks: u64,
    pub resumed_bytes: u64,
    /// Bytes of the blocks wholly in holes of sparse files: neither sent nor written (the
    /// node leaves them as holes).
    pub hole_bytes: u64,
    /// Blocks the end-game (FEATURE_ENDGAME) sent a second time, on an idle stream while the
    /// first copy was slow on another, and their bytes: neither in `per_stream_bytes` (a block
    /// counts once, on the stream whose copy was written first) nor in `bytes`.
    pub endgame_blocks: u64,
    pub endgame_bytes: u64,
    /// Non-empty files the node found already there and did not receive, their bytes, and how
    /// it decided (`size+mtime`, `BLAKE3`, `size+mtime+BLAKE3`); `None` for a node too old
    /// to say.
    pub unchanged: Option<Unchanged>,
    pub verify: Verify,
    /// The congestion control the data streams ran, and why not BBR where `auto` could not
    /// have it.
    pub congestion: String,
    pub congestion_note: Option<String>,
    /// Control round trips of the session: the handshake's, the manifest exchange's, and the
    /// end's. The same for one file or a million.
    pub round_trips: u32,
    /// With `--streams auto`: how the stream count was chosen (`auto: goodput +95%, +4%,
    /// stopped: ...`); `None` for a fixed count.
    pub streams_reason: Option<String>,
    /// The kernel's TCP_INFO of each data stream at the end (none under TLS).
    pub network: Vec<crate::sys::tcpinfo::TcpStats>,
    /// The same over the transfer, every data stream sampled together (bounded: see
    /// `NetRecorder`); the report draws each stream's RTT, window, rate and resends from it.
    pub network_timeline: Vec<crate::sched::timeline::NetSample>,
    /// What limited the transfer, with the evidence.
    pub verdict: super::Verdict,
    /// With `delete`: what the node removed after the transfer verified (its counts, and the
    /// first paths, deepest first).
    pub deleted: Option<crate::session::mirror::Listed>,
}
