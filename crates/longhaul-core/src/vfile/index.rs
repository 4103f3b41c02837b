//! The content index table: a dataset described as one logical byte stream (mdtmFTP's "large
//! virtual file"). Each regular file owns the range `[offset, offset + size)` of that stream, in
//! a stable tree order, so a block of the stream can span many small files and no file costs a
//! round trip of its own.
//!
//! The binary form is little-endian and versioned, paths are prefix-compressed against the
//! previous entry, integers are LEB128 varints, and an XXH3-64 of everything before it closes
//! the table. `decode` trusts nothing: the checksum, every count, size, offset and path rule is
//! checked before anything is allocated in proportion to what the input claims.

use std::cmp::Ordering;

use crate::error::{lossy, Error, Result};
use crate::hash::xxh3;

pub const INDEX_MAGIC: [u8; 4] = *b"LHIX";
pub const INDEX_VERSION: u16 = 1;
/// 16 Mi entries: a larger tree is refused with `E_LIMIT` before any data moves (the user sends
/// it as several transfers of its subdirectories; USAGE says so). Keeps a hostile count from
/// asking the receiver for gigabytes of entry structs.
pub const MAX_ENTRIES: u64 = 1 << 24;
/// Linux's PATH_MAX and NAME_MAX.
pub const MAX_PATH: usize = 4096;
pub const MAX_COMPONENT: usize = 255;
pub const MAX_TARGET: usize = 4096;
/// 1 EiB: far above any dataset, far below u64 overflow when offsets are added.
pub const MAX_TOTAL: u64 = 1 << 60;
/// Data extents listed for one sparse file (FEATURE_SPARSE); a file with more is sent whole,
/// its holes as zeros, so that a fragmented file cannot make the index grow without bound.
pub const MAX_EXTENTS: usize = 1024;
/// Header flag: a section of sparse files' data extents follows the entries.
const FLAG_EXTENTS: u16 = 1;
/// Header flag: a section of every entry's numeric owner and/or group follows (FEATURE_OWNER).
const FLAG_OWNERS: u16 = 2;
/// Header flag: a section of entries' extended attributes follows (FEATURE_XATTRS).
const FLAG_XATTRS: u16 = 4;
/// Names and values of one entry's extended attributes together: an entry with more is sent
/// without them (and named), so that no entry asks the receiver for much memory.
pub const MAX_XATTR_BYTES: usize = 64 << 10;
/// Which ids an owners section holds.
pub const OWNER_UID: u8 = 1;
pub const OWNER_GID: u8 = 2;

const HEADER_LEN: usize = 4 + 2 + 2 + 4 + 8;
const TRAILER_LEN: usize = 8;
/// The smallest encoded entry: kind, shared, suffix length, one suffix byte, mode, mtime.
const MIN_ENTRY_LEN: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Dir = 1,
    File = 2,
    Symlink = 3,
    /// Another name of a file listed earlier in the index (FEATURE_HARD_LINKS): no bytes of
    /// its own in the stream; the receiver links it to that file once the file is final.
    HardLink = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Dir),
            2 => Some(Kind::File),
            3 => Some(Kind::Symlink),
            4 => Some(Kind::HardLink),
            _ => None,
        }
    }
}

/// One entry of the index. Both ends hold one per file for a whole transfer, so it is kept
/// small: the byte strings are boxed slices (no spare capacity, 16 bytes inline; an empty one
/// allocates nothing), 64 bytes in all plus the path's own bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated, as the bytes are on disk (not necessarily UTF-8).
    pub path: Box<[u8]>,
    pub kind: Kind,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub mtime_ns: i64,
    /// Bytes in the stream; 0 for directories and symlinks.
    pub size: u64,
    /// Start of this file in the virtual stream; 0 for directories and symlinks. For a hard
    /// link: the position in the index of the file it is a name of (an earlier entry, always
    /// a `File`); kept in this field so that an entry stays 64 bytes.
    pub offset: u64,
    /// Symlink target, kept as is (never followed); empty for other kinds.
    pub target: Box<[u8]>,
}

/// A checked, ordered content index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    entries: Vec<Entry>,
    total: u64,
    /// Entries that own stream bytes (files with size > 0), in stream order.
    data_files: Vec<u32>,
    /// Sparse files (FEATURE_SPARSE), by entry, increasing: where their data is; the rest of
    /// each is holes. Kept beside the entries rather than in them: few files are sparse.
    sparse: Vec<Sparse>,
    /// Each entry's numeric owner and group, when the sender asked for them to be kept.
    owners: Option<Owners>,
    /// Entries' extended attributes, by entry, increasing (`--xattrs`).
    xattrs: Vec<Xattrs>,
}

/// A part of a stream range that falls in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub entry: usize,
    /// Offset inside the file.
    pub file_offset: u64,
    /// Offset inside the requested range.
    pub range_offset: u64,
    pub len: u64,
}

/// The canonical order: component by component, so a directory comes right before its
/// children and a subtree is contiguous. That is byte order with `/` below every other byte,
/// decided at the first byte where the paths differ (a sort of 100,000 paths spent 19% of the
/// scan comparing split components).
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let same = common_prefix(a, b);
    match (a.get(same), b.get(same)) {
        (Some(&x), Some(&y)) => separator_first(x).cmp(&separator_first(y)),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

/// `/` sorts before every byte (even NUL, which no valid path holds).
fn separator_first(c: u8) -> u16 {
    if c == b'/' {
        0
    } else {
        c as u16 + 1
    }
}

/// How many leading bytes `a` and `b` share, eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Checks that `path` is a clean relative path that cannot leave the directory it is joined to.
pub fn check_path(path: &[u8]) -> Result<()> {
    let shown = || lossy(path);
    if path.is_empty() {
        return Err(Error::BadPath { path: shown(), why: "empty path" });
    }
    if path[0] == b'/' {
        return Err(Error::PathEscape { path: shown(), why: "absolute path" });
    }
    if path.len() > MAX_PATH {
        return Err(Error::Limit { what: "path length", limit: MAX_PATH as u64, got: path.len() as u64 });
    }
    if path.split(|&c| c == b'/').any(|c| c == b"..") {
        return Err(Error::PathEscape { path: shown(), why: "`..` component" });
    }
    if path.contains(&0) {
        return Err(Error::BadPath { path: shown(), why: "NUL byte" });
    }
    for c in path.split(|&c| c == b'/') {
        if c.is_empty() {
            return Err(Error::BadPath { path: shown(), why: "empty component" });
        }
        if c == b"." {
            return Err(Error::BadPath { path: shown(), why: "`.` component" });
        }
        if c.len() > MAX_COMPONENT {
            return Err(Error::Limit { what: "path component length", limit: MAX_COMPONENT as u64, got: c.len() as u64 });
        }
    }
    Ok(())
}

pub(crate) fn parent_of(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&c| c == b'/').map(|i| &path[..i])
}

/// Whether `path` lies inside directory `dir` (at any depth).
fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

impl Index {
    /// Builds an index from scanned entries: sorts them, assigns stream offsets and checks them
    /// with the same rules as `decode`.
    pub fn from_entries(mut entries: Vec<Entry>) -> Result<Index> {
        entries.sort_unstable_by(|a, b| path_cmp(&a.path, &b.path));
        let mut cursor = 0u64;
        for e in &mut entries {
            if e.kind == Kind::File {
                e.offset = cursor;
                cursor = cursor.checked_add(e.size).ok_or_else(|| Error::Index("total size overflows".into()))?;
            } else if e.kind == Kind::HardLink {
                e.size = 0;
            } else {
                e.size = 0;
                e.offset = 0;
            }
        }
        Index::checked(entries, cursor)
    }

    /// Validates a full entry list: order, uniqueness, path rules, parents, sizes, offsets.
    fn checked(entries: Vec<Entry>, total: u64) -> Result<Index> {
        if entries.len() as u64 > MAX_ENTRIES {
            return Err(Error::Limit { what: "index entries", limit: MAX_ENTRIES, got: entries.len() as u64 });
        }
        if total > MAX_TOTAL {
            return Err(Error::Limit { what: "dataset size", limit: MAX_TOTAL, got: total });
        }
        // The entries on the way down to the current one. In tree order (checked below) an
        // entry's ancestors in the index are the ones left here once those it is not under
        // are popped, so its parent, if listed, is on top: no map of every path is needed.
        let mut ancestors: Vec<usize> = Vec::new();
        let mut cursor = 0u64;
        let mut data_files = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            check_path(&e.path)?;
            if i > 0 {
                match path_cmp(&entries[i - 1].path, &e.path) {
                    Ordering::Less => {}
                    Ordering::Equal => return Err(Error::Duplicate { path: lossy(&e.path) }),
                    Ordering::Greater => return Err(Error::Index(format!("entries out of order at {:?}", lossy(&e.path)))),
                }
            }
            while ancestors.last().is_some_and(|&a| !is_under(&e.path, &entries[a].path)) {
                ancestors.pop();
            }
            if let Some(parent) = parent_of(&e.path) {
                match ancestors.last().map(|&a| &entries[a]).filter(|a| *a.path == *parent).map(|a| a.kind) {
                    Some(Kind::Dir) => {}
                    Some(Kind::Symlink) => return Err(Error::PathEscape { path: lossy(&e.path), why: "parent is a symlink" }),
                    Some(Kind::File | Kind::HardLink) => return Err(Error::Index(format!("parent of {:?} is a file", lossy(&e.path)))),
                    None => return Err(Error::Index(format!("parent of {:?} is not in the index", lossy(&e.path)))),
                }
            }
            if e.mode & !0o7777 != 0 {
                return Err(Error::Index(format!("mode {:o} of {:?} has bits beyond 0o7777", e.mode, lossy(&e.path))));
            }
            match e.kind {
                Kind::File => {
                    if e.offset != cursor {
                        return Err(Error::Index(format!("offset of {:?} is {} where {} was expected", lossy(&e.path), e.offset, cursor)));
                    }
                    cursor = cursor
                        .checked_add(e.size)
                        .filter(|&c| c <= total)
                        .ok_or_else(|| Error::Index(format!("size of {:?} runs past the total", lossy(&e.path))))?;
                    if !e.target.is_empty() {
                        return Err(Error::Index("a file has a link target".into()));
                    }
                    if e.size > 0 {
                        data_files.push(i as u32);
                    }
                }
                Kind::HardLink => {
                    // Linked to a file already made when the receiver reaches this entry.
                    let to = usize::try_from(e.offset).ok().filter(|&k| k < i);
                    if to.is_none_or(|k| entries[k].kind != Kind::File) {
                        return Err(Error::Index(format!("hard link {:?} names entry {}, not a file before it", lossy(&e.path), e.offset)));
                    }
                    if e.size != 0 || !e.target.is_empty() {
                        return Err(Error::Index(format!("hard link {:?} has a size or a target", lossy(&e.path))));
                    }
                }
                Kind::Dir | Kind::Symlink => {
                    if e.size != 0 || e.offset != 0 {
                        return Err(Error::Index(format!("{:?} is not a file but has a size or offset", lossy(&e.path))));
                    }
                    if e.kind == Kind::Dir && !e.target.is_empty() {
                        return Err(Error::Index("a directory has a link target".into()));
                    }
                    if e.kind == Kind::Symlink {
                        if e.target.is_empty() || e.target.contains(&0) {
                            return Err(Error::BadPath { path: lossy(&e.path), why: "symlink target empty or with NUL" });
                        }
                        if e.target.len() > MAX_TARGET {
                            return Err(Error::Limit {
                                what: "symlink target length",
                                limit: MAX_TARGET as u64,
                                got: e.target.len() as u64,
                            });
                        }
                    }
                }
            }
            ancestors.push(i);
        }
        if cursor != total {
            return Err(Error::Index(format!("file sizes add up to {cursor}, the header says {total}")));
        }
        Ok(Index { entries, total, data_files, sparse: Vec::new(), owners: None, xattrs: Vec::new() })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Bytes in the virtual stream.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.entries.iter().filter(|e| e.kind == kind).count()
    }

    /// The same tree with every hard link made a file of its own (its target's size and
    /// bytes, read from its own name), for a peer without FEATURE_HARD_LINKS. The entries keep
    /// their positions; returns how many links became files.
    pub fn without_hard_links(&self) -> Result<(Index, u64)> {
        let mut n = 0;
        let entries = self
            .entries
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if e.kind == Kind::HardLink {
                    e.kind = Kind::File;
                    e.size = self.entries[e.offset as usize].size;
                    n += 1;
                }
                e
            })
            .collect();
        let index = Index::from_entries(entries)?.with_sparse(self.sparse.clone())?.with_owners(self.owners.clone())?;
        Ok((index.with_xattrs(self.xattrs.clone())?, n))
    }

    /// The entry whose bytes hold stream offset `offset`, by binary search.
    pub fn locate(&self, offset: u64) -> Option<usize> {
        if offset >= self.total {
            return None;
        }
        let k = self.data_files.partition_point(|&i| self.entries[i as usize].offset <= offset);
        // k >= 1 because the first data file starts at 0 and offset < total.
        Some(self.data_files[k - 1] as usize)
    }

    /// The pieces of `[start, start + len)`, file by file, in stream order.
    pub fn pieces(&self, start: u64, len: u64) -> Pieces<'_> {
        let end = start.saturating_add(len).min(self.total);
        let k = self.data_files.partition_point(|&i| self.entries[i as usize].offset <= start);
        Pieces { index: self, next: k.saturating_sub(1), pos: start, start, end }
    }

    /// Stream offset at which a data file ends, for progress accounting.
    pub fn data_file_ends(&self) -> impl Iterator<Item = u64> + '_ {
        self.data_files.iter().map(|&i| {
            let e = &self.entries[i as usize];
            e.offset + e.size
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_with_sparse(&self.entries, self.total, &self.sparse);
        self.encode_sections(&mut out);
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Index> {
        let (entries, total, sparse, owners, xattrs) = decode_entries(buf)?;
        Index::checked(entries, total)?.with_sparse(sparse)?.with_owners(owners)?.with_xattrs(xattrs)
    }
}

pub struct Pieces<'a> {
    index: &'a Index,
    next: usize,
    pos: u64,
    start: u64,
    end: u64,
}

impl Iterator for Pieces<'_> {
    type Item = Piece;
    fn next(&mut self) -> Option<Piece> {
        if self.pos >= self.end {
            return None;
        }
        let i = *self.index.data_files.get(self.next)? as usize;
        let e = &self.index.entries[i];
        let file_offset = self.pos - e.offset;
        let len = (e.offset + e.size).min(self.end) - self.pos;
        let piece = Piece { entry: i, file_offset, range_offset: self.pos - self.start, len };
        self.pos += len;
        self.next += 1;
        Some(piece)
    }
}

/// Encodes entries as they are, without checking them: `Index::encode` for real use, and this
/// for tests that need a hostile table.
pub fn encode_entries(entries: &[Entry], total: u64) -> Vec<u8> {
    encode_with_sparse(entries, total, &[])
}

/// As `encode_entries`, with a section of sparse files' extents when there are any (header
/// flag 1, so that a decoder without FEATURE_SPARSE refuses it rather than misreads it).
pub fn encode_with_sparse(entries: &[Entry], total: u64, sparse: &[Sparse]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + TRAILER_LEN + entries.len() * 24);
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&(if sparse.is_empty() { 0 } else { FLAG_EXTENTS }).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    let mut prev: &[u8] = &[];
    for e in entries {
        put_entry(&mut out, e, prev, false);
        prev = &e.path;
    }
    if !sparse.is_empty() {
        put_varint(&mut out, sparse.len() as u64);
        for s in sparse {
            put_varint(&mut out, s.entry as u64);
            put_varint(&mut out, s.extents.len() as u64);
            for &(start, len) in &*s.extents {
                put_varint(&mut out, start);
                put_varint(&mut out, len);
            }
        }
    }
    let sum = xxh3(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

type Sections = (Vec<Entry>, u64, Vec<Sparse>, Option<Owners>, Vec<Xattrs>);

fn decode_entries(buf: &[u8]) -> Result<Sections> {
    if buf.len() < HEADER_LEN + TRAILER_LEN {
        return Err(Error::Index(format!("{} bytes is shorter than a header", buf.len())));
    }
    if buf[..4] != INDEX_MAGIC {
        return Err(Error::Index("bad magic".into()));
    }
    let (body, trailer) = buf.split_at(buf.len() - TRAILER_LEN);
    let want = u64::from_le_bytes(trailer.try_into().expect("8 bytes"));
    if xxh3(body) != want {
        return Err(Error::Index("checksum mismatch".into()));
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    if version != INDEX_VERSION {
        return Err(Error::Index(format!("unsupported index version {version}")));
    }
    let flags = u16::from_le_bytes([buf[6], buf[7]]);
    if flags & !(FLAG_EXTENTS | FLAG_OWNERS | FLAG_XATTRS) != 0 {
        return Err(Error::Index(format!("unknown flags {flags:#x}")));
    }
    let count = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")) as u64;
    let total = u64::from_le_bytes(buf[12..20].try_into().expect("8 bytes"));
    if count > MAX_ENTRIES {
        return Err(Error::Limit { what: "index entries", limit: MAX_ENTRIES, got: count });
    }
    if total > MAX_TOTAL {
        return Err(Error::Limit { what: "dataset size", limit: MAX_TOTAL, got: total });
    }
    let room = (body.len() - HEADER_LEN) / MIN_ENTRY_LEN;
    if count > room as u64 {
        return Err(Error::Index(format!("{count} entries cannot fit in {} bytes", body.len())));
    }
    let mut r = Reader { buf: &body[HEADER_LEN..], pos: 0 };
    let mut entries: Vec<Entry> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let e = read_entry(&mut r, entries.last().map(|e| &*e.path).unwrap_or(&[]), false)?;
        entries.push(e);
    }
    let (sparse, owners, xattrs) = meta::decode_sections(&mut r, flags, entries.len())?;
    if r.pos != r.buf.len() {
        return Err(Error::Index(format!("{} bytes left after the last entry", r.buf.len() - r.pos)));
    }
    Ok((entries, total, sparse, owners, xattrs))
}

mod codec;
pub(crate) use codec::{put_entry, put_varint, read_entry, Reader};

mod meta;
pub use meta::{Owners, Sparse, Xattr, Xattrs};

#[cfg(test)]
mod tests;
