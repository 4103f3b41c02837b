//! The records LISTING and READV carry (moved out of frame.rs, which the layer check keeps
//! under 600 lines).

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
