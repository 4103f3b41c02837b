//! TREE_SUMS_PART's entry, its caps and its encoding (encode.rs calls `encode_part`).

use super::encode::put_bytes16;

/// Entries in one TREE_SUMS_PART frame: the node sends a part when it has this many, ~60 KB of
/// them, or TREE_SUMS_PART_BYTES of files hashed, whichever comes first.
pub const MAX_TREE_SUMS_ENTRIES: usize = 512;
/// File bytes hashed for one TREE_SUMS_PART: a client sees the walk advance at least this often.
pub const TREE_SUMS_PART_BYTES: u64 = 256 << 20;

/// One entry of a TREE_SUMS_PART.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SumEntry {
    /// Relative to the path asked for, `/`-separated; empty for that path itself (sent first).
    pub path: Vec<u8>,
    /// As ListEntry's: 1 dir, 2 file, 3 symlink, 4 other.
    pub kind: u8,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    /// A symlink's target; empty for the others.
    pub target: Vec<u8>,
    /// A regular file's BLAKE3, as the node read it.
    pub digest: Option<[u8; 32]>,
}

/// The body of a TREE_SUMS_PART after its type byte.
pub(super) fn encode_part(b: &mut Vec<u8>, last: bool, entries: &[SumEntry]) {
    b.push(last as u8);
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        b.push(e.kind);
        put_bytes16(b, &e.path);
        b.extend_from_slice(&e.mode.to_le_bytes());
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&e.mtime_ns.to_le_bytes());
        put_bytes16(b, &e.target);
        match &e.digest {
            Some(d) => {
                b.push(1);
                b.extend_from_slice(d);
            }
            None => b.push(0),
        }
    }
}
