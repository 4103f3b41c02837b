//! Protocol v1 frames (docs/PROTOCOL.md). Every frame is `len: u32 LE` (type byte + body),
//! `type: u8`, body. A reader checks `len` against the hard limit for that frame type before it
//! allocates anything; a BLOCK frame's body is a fixed 20-byte header and the block's bytes
//! follow it raw, outside the frame, so they can be sent with sendfile and received straight
//! into a pooled buffer.

use crate::error::{Error, Result};

mod decode;
mod encode;
mod io;
mod mirror;
mod tree_sums;

pub use io::{expect_msg, expect_plan, expect_reply, read_msg, write_msg};
pub use mirror::{Tally, MARK_DELETE, MARK_NEW, MARK_UPDATE};
pub use tree_sums::{SumEntry, MAX_TREE_SUMS_ENTRIES, TREE_SUMS_PART_BYTES};

pub const MAGIC: [u8; 8] = *b"LONGHAUL";
pub const VERSION_MIN: u16 = 1;
pub const VERSION_MAX: u16 = 1;
/// Feature bits offered at HELLO; the session uses the intersection.
pub const FEATURE_XXH3: u64 = 1;
/// BLOCK_B3 frames: a BLAKE3 of every block, checked by the node beside the XXH3.
pub const FEATURE_BLAKE3: u64 = 2;
/// Resume: in a client's HELLO, "use a journal of this push if the node has one, and send PLAN
/// after READY"; in HELLO_OK, "this node keeps journals".
pub const FEATURE_RESUME: u64 = 4;
/// Whole-file verification: the sender sends a BLAKE3 of every file (FILE_DIGESTS) before DONE,
/// and the receiver reads each file back once it is written and compares before renaming it.
pub const FEATURE_VERIFY_FULL: u64 = 8;
/// The receiver's disk figures (`DiskStats`) at the end of SUMMARY. A node sends them only to a
/// client that offered the bit: an older client would refuse the longer frame.
pub const FEATURE_DISK_STATS: u64 = 16;
/// Change detection by content: after MANIFEST the sender sends SUMS (how to decide what the
/// receiver already holds, and with BLAKE3 a digest of every file), and after READY and PLAN
/// the receiver answers UNCHANGED (the files it found already there).
pub const FEATURE_CHECKSUM: u64 = 32;
/// Mirror deletion (`--delete`): MIRROR follows MANIFEST, and after the transfer verified the
/// receiver removes what the destination holds and the index does not, then reports it
/// (CHANGES, TALLY) before SUMMARY. A client offers it only when it asks for deletion.
pub const FEATURE_DELETE: u64 = 64;
/// Dry run (`--dry-run`): MIRROR follows MANIFEST, and the receiver answers with the plan
/// (CHANGES, TALLY) instead of READY, writing nothing. Offered only for a dry run.
pub const FEATURE_DRY_RUN: u64 = 128;
/// Index entries of kind 4 (a hard link to an earlier file entry). A sender whose peer lacks
/// it sends every name of a file as a file of its own, and says so.
pub const FEATURE_HARD_LINKS: u64 = 256;
/// Sparse files: the index carries their data extents (header flag 1), blocks wholly in a
/// hole travel neither way, and the receiver leaves them as holes.
pub const FEATURE_SPARSE: u64 = 512;
/// Owners: the index may carry numeric owners and groups (index flag 2), which a receiver
/// running as root sets; SUMMARY then ends with how many it did not set.
pub const FEATURE_OWNER: u64 = 1024;
/// Extended attributes: the index may carry them (index flag 4), the receiver sets them
/// (user.* always, others as root), and SUMMARY ends with how many entries it did not.
pub const FEATURE_XATTRS: u64 = 2048;
/// TREE_SUMS: the node walks a tree under its root and answers each entry's metadata and,
/// for a regular file, its BLAKE3 (`longhaul compare LOCAL HOST:PORT/PATH`).
pub const FEATURE_REMOTE_SUMS: u64 = 4096;
/// `longhaul bench`: the node knows BENCH (blocks checked and discarded, its CPU time last in
/// the SUMMARY; E_DENIED where refused) and BLOCK_RAW. A MANIFEST is a push regardless.
pub const FEATURE_DISCARD: u64 = 8192;
/// `--streams auto`: MANIFEST's `streams` is a cap, the data connections may attach at any time
/// before DONE, and STREAMS_OPENED before DONE says how many the sender opened in all.
pub const FEATURE_STREAMS_AUTO: u64 = 16384;
/// Pieces (issue 32): after PLAN the node sends HELD (the file entries it holds whole), and a
/// block partly held travels as PIECEs, only its bytes in files the node does not hold. An
/// older peer gets whole blocks.
pub const FEATURE_PIECES: u64 = 32768;
/// A pull's metadata: GET ends with a byte of what the client keeps (`KEEP_*`: owners,
/// groups, extended attributes), and the node's index carries them. Sent only to a node that
/// offers the bit (an older one refuses the longer GET).
pub const FEATURE_META_SYNC: u64 = 65536;
/// End-game (issue 31): once every block is on a stream, a push may send a block still in
/// flight on a slow stream once more on an idle one. The node keeps the first verified copy and
/// drops a later one whose checksum is the first's (at most `endgame_duplicates` of them), and
/// completes once every block is here and DONE came, without waiting for the STREAM_END of a
/// data connection the sender shut because all it still carried had arrived on others.
pub const FEATURE_ENDGAME: u64 = 131072;
/// The most blocks a push may send twice in end-game, for `streams` data connections: a few
/// socket buffers' worth of blocks per stream; more is the sender's protocol error.
pub fn endgame_duplicates(streams: u16) -> u64 {
    64 * streams.max(1) as u64
}
/// GET's `keep`: the numeric owner (as the index's `OWNER_UID`), the group (`OWNER_GID`),
/// extended attributes.
pub const KEEP_OWNER: u8 = 1;
pub const KEEP_GROUP: u8 = 2;
pub const KEEP_XATTRS: u8 = 4;
// One bit a line, so that branches adding bits merge without conflict.
#[rustfmt::skip]
pub const FEATURES: u64 = FEATURE_XXH3
    | FEATURE_BLAKE3
    | FEATURE_RESUME
    | FEATURE_VERIFY_FULL
    | FEATURE_DISK_STATS
    | FEATURE_CHECKSUM
    | FEATURE_DELETE
    | FEATURE_DRY_RUN
    | FEATURE_HARD_LINKS
    | FEATURE_SPARSE
    | FEATURE_OWNER
    | FEATURE_XATTRS
    | FEATURE_REMOTE_SUMS
    | FEATURE_DISCARD
    | FEATURE_STREAMS_AUTO
    | FEATURE_PIECES
    | FEATURE_META_SYNC
    | FEATURE_ENDGAME;
/// SUMS modes. By size and mtime alone (the default; no digests follow).
pub const SUMS_STAMP: u8 = 0;
/// By content: every file at the destination with the entry's size is hashed, and held when
/// its BLAKE3 is the sender's (`--checksum`).
pub const SUMS_CONTENT: u8 = 1;
/// By size and mtime, each such file confirmed by its BLAKE3 (`--verify full`): one that
/// differs is received again.
pub const SUMS_CONFIRM: u8 = 2;
/// Digests in one FILE_DIGESTS frame (36 bytes each, within a control frame).
pub const MAX_DIGESTS_PER_FRAME: usize = 1024;
/// Ranges in one PLAN frame (16 bytes each, within a control frame).
pub const MAX_PLAN_RANGES: usize = 4000;
/// Entry ranges in one HELD frame (8 bytes each, within a control frame).
pub const MAX_HELD_RANGES: usize = 4000;
/// Control frames other than MANIFEST: far more than any of them needs.
pub const MAX_CONTROL_FRAME: u32 = 64 * 1024;
/// Error messages are cut to this many bytes.
pub const MAX_ERROR_MESSAGE: usize = 4096;
pub const TOKEN_LEN: usize = 16;
pub type Token = [u8; TOKEN_LEN];
pub const NONCE_LEN: usize = 16;
pub type Nonce = [u8; NONCE_LEN];
/// A READV request: its paths and segments (at most the node's advertised limits, checked by
/// the node after decoding so that the connection survives a request over them).
pub const MAX_READV_FRAME: u32 = 8 << 20;
/// Answers bounded by what they carry: a READV_DATA header (per-segment lengths and codes),
/// a STATS_OK document.
pub const MAX_REPLY_FRAME: u32 = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Hello = 0x01,
    HelloOk = 0x02,
    Manifest = 0x03,
    Ready = 0x04,
    DataHello = 0x05,
    Block = 0x06,
    StreamEnd = 0x07,
    Done = 0x08,
    Summary = 0x09,
    BlockB3 = 0x0a,
    Auth = 0x0b,
    AuthOk = 0x0c,
    Get = 0x10,
    List = 0x11,
    Listing = 0x12,
    Readv = 0x13,
    ReadvData = 0x14,
    Stats = 0x15,
    StatsOk = 0x16,
    Copy = 0x17,
    CopyProgress = 0x18,
    Plan = 0x19,
    FileDigests = 0x1a,
    Sums = 0x1b,
    Unchanged = 0x1c,
    Mirror = 0x60,
    Changes = 0x61,
    Tally = 0x62,
    TreeSums = 0x70,
    TreeSumsPart = 0x71,
    BlockRaw = 0x78,
    Bench = 0x79,
    StreamsOpened = 0x7a,
    Piece = 0x7c,
    Held = 0x7d,
    Error = 0x7f,
}

impl FrameType {
    fn from_u8(b: u8) -> Option<FrameType> {
        use FrameType::*;
        Some(match b {
            0x01 => Hello,
            0x02 => HelloOk,
            0x03 => Manifest,
            0x04 => Ready,
            0x05 => DataHello,
            0x06 => Block,
            0x07 => StreamEnd,
            0x08 => Done,
            0x09 => Summary,
            0x0a => BlockB3,
            0x0b => Auth,
            0x0c => AuthOk,
            0x10 => Get,
            0x11 => List,
            0x12 => Listing,
            0x13 => Readv,
            0x14 => ReadvData,
            0x15 => Stats,
            0x16 => StatsOk,
            0x17 => Copy,
            0x18 => CopyProgress,
            0x19 => Plan,
            0x1a => FileDigests,
            0x1b => Sums,
            0x1c => Unchanged,
            0x60 => Mirror,
            0x61 => Changes,
            0x62 => Tally,
            0x70 => TreeSums,
            0x71 => TreeSumsPart,
            0x78 => BlockRaw,
            0x79 => Bench,
            0x7a => StreamsOpened,
            0x7c => Piece,
            0x7d => Held,
            0x7f => Error,
            _ => return None,
        })
    }
}

/// What a node accepts, sent in HELLO_OK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_streams: u16,
    pub max_block: u32,
    pub max_manifest: u32,
    /// Segments in one READV request.
    pub max_readv_segments: u32,
    /// Bytes in one READV segment.
    pub max_readv_segment: u32,
}

/// One entry of a LISTING.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub name: Vec<u8>,
    /// 1 dir, 2 file, 3 symlink, 4 other.
    pub kind: u8,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
}

/// One segment of a READV request: `file` indexes the request's path table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub file: u16,
    pub offset: u64,
    pub len: u32,
}

/// How one READV segment went: `len` bytes of it follow in the data (0 on error, fewer than
/// asked at the end of the file); `code` is empty on success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentResult {
    pub len: u32,
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SummaryMsg {
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub blocks: u64,
    pub micros: u64,
    /// Files whose whole-file BLAKE3 the receiver read back and checked in this session.
    pub verified: u64,
    /// Where the receiver's time went; with FEATURE_DISK_STATS only.
    pub disk: Option<DiskStats>,
    /// Entries whose owner or group the receiver was asked to set and did not (it is not
    /// root); with FEATURE_OWNER, after the disk figures, and only with them.
    pub owner_not_kept: Option<u64>,
    /// Entries with an extended attribute the receiver did not set; with FEATURE_XATTRS,
    /// after `owner_not_kept` (0 there when that was not asked).
    pub xattrs_not_kept: Option<u64>,
    /// The receiver's CPU time for the session (its threads', in microseconds); in a bench
    /// session (FEATURE_DISCARD) only, last, after `xattrs_not_kept` (0 there, and 0 in
    /// `owner_not_kept`, when those were not asked).
    pub cpu_us: Option<u64>,
}

/// A receiver's disk writers and their waits, over the session (times in microseconds, summed
/// over the threads).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DiskStats {
    pub writers: u64,
    pub bytes_written: u64,
    /// In pwrite.
    pub write_us: u64,
    /// In fsync or syncfs (`--fsync file` or `end`).
    pub fsync_us: u64,
    /// Writers handling a block (writes, file creation, renames, the journal).
    pub busy_us: u64,
    /// Writers waiting for a block: the network is the slower.
    pub idle_us: u64,
    /// Network receivers waiting for room in the write queue: the disk is the slower.
    pub queue_full_us: u64,
    /// Network receivers waiting for a free buffer.
    pub pool_us: u64,
    /// Network receivers held by a bandwidth limit.
    pub rate_us: u64,
}

impl DiskStats {
    fn fields(&self) -> [u64; 9] {
        [
            self.writers,
            self.bytes_written,
            self.write_us,
            self.fsync_us,
            self.busy_us,
            self.idle_us,
            self.queue_full_us,
            self.pool_us,
            self.rate_us,
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Hello {
        min: u16,
        max: u16,
        features: u64,
        nonce: Nonce,
    },
    /// `auth`: the node wants an AUTH frame before anything else.
    HelloOk {
        version: u16,
        features: u64,
        limits: Limits,
        auth: bool,
        nonce: Nonce,
    },
    /// The client's proof that it holds the shared token (docs/PROTOCOL.md, Authentication).
    Auth {
        mac: [u8; 32],
    },
    /// The node's proof that it holds the token too.
    AuthOk {
        mac: [u8; 32],
    },
    /// Pull: the node sends `path` (under its root) to the client. The node answers MANIFEST,
    /// the client READY, and the session runs with the roles of a push reversed.
    Get {
        path: Vec<u8>,
        streams: u16,
        block_size: u32,
        /// With FEATURE_META_SYNC: the node's metadata the client keeps (`KEEP_*`), a byte
        /// after `block_size`; 0 (not sent) keeps none.
        keep: u8,
    },
    List {
        path: Vec<u8>,
    },
    /// One part of a listing; the last part has `last` set.
    Listing {
        last: bool,
        entries: Vec<ListEntry>,
    },
    Readv {
        paths: Vec<Vec<u8>>,
        segments: Vec<Segment>,
    },
    /// The answer to READV; the segments' bytes follow the frame raw, in request order.
    ReadvData {
        results: Vec<SegmentResult>,
    },
    Stats,
    /// The node's statistics as a JSON document.
    StatsOk {
        json: String,
    },
    /// Third-party copy: the node pushes `src` (under its root) to the node at `to`, into
    /// `dest` there, and reports COPY_PROGRESS frames, then SUMMARY or ERROR.
    Copy {
        to: String,
        src: Vec<u8>,
        dest: Vec<u8>,
        streams: u16,
        block_size: u32,
    },
    CopyProgress {
        bytes_done: u64,
        bytes_total: u64,
        files_done: u64,
        files_total: u64,
    },
    /// `dest` is relative to the node's root; `index` is the encoded content index.
    Manifest {
        dest: Vec<u8>,
        streams: u16,
        block_size: u32,
        index: Vec<u8>,
    },
    /// A bench (`longhaul bench`, with FEATURE_DISCARD): `size` bytes of generated data on
    /// `streams` data connections, which the node checks and discards; answered like MANIFEST.
    Bench {
        streams: u16,
        block_size: u32,
        size: u64,
    },
    Ready {
        token: Token,
        streams: u16,
    },
    /// After READY, when the client asked to resume: the blocks the node already holds
    /// (verified and written by an earlier attempt), as sorted, disjoint `[first, end)` ranges
    /// of block numbers out of `nblocks`. The sender sends every other block.
    Plan {
        nblocks: u64,
        ranges: Vec<(u64, u64)>,
    },
    DataHello {
        token: Token,
        stream: u16,
    },
    /// Header of a block; `len` raw bytes follow the frame.
    Block {
        offset: u64,
        len: u32,
        xxh3: u64,
    },
    /// A bench's block header without a checksum (`--verify none`); elsewhere E_PROTOCOL.
    BlockRaw {
        offset: u64,
        len: u32,
    },
    /// A block header that also carries the block's BLAKE3; `len` raw bytes follow.
    BlockB3 {
        offset: u64,
        len: u32,
        xxh3: u64,
        blake3: [u8; 32],
    },
    /// With FEATURE_PIECES: a part of a block the receiver holds in part (`offset` and `len`
    /// in the virtual stream, one run of the block's bytes in files it does not hold), checked
    /// by its XXH3 and, where the sender adds it, its BLAKE3; `len` raw bytes follow.
    Piece {
        offset: u64,
        len: u32,
        xxh3: u64,
        blake3: Option<[u8; 32]>,
    },
    /// With FEATURE_PIECES, after PLAN: the file entries the receiver holds whole, as sorted,
    /// disjoint `[first, end)` ranges of entry numbers, over as many frames as it takes (the
    /// last has `last` set).
    Held {
        last: bool,
        ranges: Vec<(u32, u32)>,
    },
    StreamEnd {
        blocks: u64,
        bytes: u64,
    },
    /// With whole-file verification, before DONE on the control connection: the BLAKE3 of
    /// file entries (by index number, increasing within a frame) as the sender read them.
    FileDigests {
        digests: Vec<(u32, [u8; 32])>,
    },
    /// With FEATURE_CHECKSUM, after MANIFEST: how the receiver decides which files it already
    /// holds (`SUMS_*`) and, unless by size and mtime alone, the sender's BLAKE3 of every
    /// non-empty file entry, across as many frames as needed (entries increasing within one).
    Sums {
        mode: u8,
        digests: Vec<(u32, [u8; 32])>,
    },
    /// With FEATURE_CHECKSUM, after READY (and PLAN): the non-empty files the receiver found
    /// already there and will not receive, and their bytes.
    Unchanged {
        files: u64,
        bytes: u64,
    },
    /// With FEATURE_DELETE or FEATURE_DRY_RUN, right after MANIFEST: the sender's filter rules
    /// (include?, pattern), which protect what they leave out from deletion.
    Mirror {
        delete: bool,
        dry_run: bool,
        rules: Vec<(bool, Vec<u8>)>,
    },
    /// Part of a list of (MARK_*, path below the destination) the receiver sends before TALLY.
    Changes {
        items: Vec<(u8, Vec<u8>)>,
    },
    /// The end of a plan (dry run) or of a deletion: what was (or would be) done, counted.
    Tally(Tally),
    Done {
        blocks: u64,
        bytes: u64,
    },
    /// With FEATURE_STREAMS_AUTO, on the control connection before DONE: how many data
    /// connections the sender opened in all (at least 1, at most MANIFEST's `streams`).
    StreamsOpened {
        count: u16,
    },
    /// With FEATURE_REMOTE_SUMS: every entry under `path` (within the root), each regular
    /// file hashed by the node; answered by TREE_SUMS_PART frames, or ERROR.
    TreeSums {
        path: Vec<u8>,
    },
    /// One part of a TREE_SUMS answer (at most MAX_TREE_SUMS_ENTRIES entries, in no particular
    /// order); the last part has `last` set. An ERROR in place of a part ends the answer.
    TreeSumsPart {
        last: bool,
        entries: Vec<SumEntry>,
    },
    Summary(SummaryMsg),
    Error {
        code: String,
        message: String,
    },
}

impl Msg {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Msg::Hello { .. } => FrameType::Hello,
            Msg::HelloOk { .. } => FrameType::HelloOk,
            Msg::Manifest { .. } => FrameType::Manifest,
            Msg::Bench { .. } => FrameType::Bench,
            Msg::Ready { .. } => FrameType::Ready,
            Msg::Plan { .. } => FrameType::Plan,
            Msg::DataHello { .. } => FrameType::DataHello,
            Msg::Block { .. } => FrameType::Block,
            Msg::BlockRaw { .. } => FrameType::BlockRaw,
            Msg::BlockB3 { .. } => FrameType::BlockB3,
            Msg::Piece { .. } => FrameType::Piece,
            Msg::Held { .. } => FrameType::Held,
            Msg::Auth { .. } => FrameType::Auth,
            Msg::AuthOk { .. } => FrameType::AuthOk,
            Msg::Get { .. } => FrameType::Get,
            Msg::List { .. } => FrameType::List,
            Msg::Listing { .. } => FrameType::Listing,
            Msg::Readv { .. } => FrameType::Readv,
            Msg::ReadvData { .. } => FrameType::ReadvData,
            Msg::Stats => FrameType::Stats,
            Msg::StatsOk { .. } => FrameType::StatsOk,
            Msg::Copy { .. } => FrameType::Copy,
            Msg::CopyProgress { .. } => FrameType::CopyProgress,
            Msg::StreamEnd { .. } => FrameType::StreamEnd,
            Msg::FileDigests { .. } => FrameType::FileDigests,
            Msg::Sums { .. } => FrameType::Sums,
            Msg::Unchanged { .. } => FrameType::Unchanged,
            Msg::Mirror { .. } => FrameType::Mirror,
            Msg::Changes { .. } => FrameType::Changes,
            Msg::Tally(_) => FrameType::Tally,
            Msg::Done { .. } => FrameType::Done,
            Msg::StreamsOpened { .. } => FrameType::StreamsOpened,
            Msg::TreeSums { .. } => FrameType::TreeSums,
            Msg::TreeSumsPart { .. } => FrameType::TreeSumsPart,
            Msg::Summary(_) => FrameType::Summary,
            Msg::Error { .. } => FrameType::Error,
        }
    }

    pub fn error(e: &Error) -> Msg {
        let mut message = e.to_string();
        if message.len() > MAX_ERROR_MESSAGE {
            let mut cut = MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Msg::Error { code: e.code().to_owned(), message }
    }
}

#[cfg(test)]
mod tests;
