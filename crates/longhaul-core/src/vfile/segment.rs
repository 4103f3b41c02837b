//! The content index in segments (protocol v2, issue 33; a draft the session does not speak
//! yet): the index of a tree cut, in its canonical order, into segments a sender can send while
//! its scan still walks and a receiver can check and drop once their blocks are in, so that
//! neither end holds the whole index whatever the file count.
//!
//! A segment carries its sequence number, the ordinal of its first entry, the range of the
//! virtual file its files own, its entries in version 1's encoding (`index::codec`; its paths
//! prefix-compressed within the segment only, so each decodes alone) and an XXH3-64 of it all.
//! `Segment::decode` checks one segment alone; `Validator` checks each against those before it
//! in a state of fixed size (see there); `SegmentWriter` cuts a walk's entries into segments.

use std::cmp::Ordering;

use crate::error::{lossy, Error, Result};
use crate::hash::xxh3;
use crate::limits::{Bounds, SEGMENT_BYTES, SEGMENT_ENTRIES};
use crate::vfile::index::{
    check_path, parent_of, path_cmp, put_entry, read_entry, Entry, Index, Kind, Reader, MAX_PATH, MAX_TARGET, MAX_TOTAL,
};

pub const SEGMENT_MAGIC: [u8; 4] = *b"LHSG";
pub const SEGMENT_VERSION: u16 = 2;
/// Magic, version, flags, seq, first, start, len, count.
pub const HEADER_LEN: usize = 4 + 2 + 2 + 8 + 8 + 8 + 8 + 4;
const TRAILER_LEN: usize = 8;
/// The smallest encoded entry (as version 1's): kind, shared, suffix length, one suffix byte,
/// mode, mtime.
const MIN_ENTRY_LEN: usize = 6;

/// One segment of the index, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its place in the stream of segments, from 0.
    pub seq: u64,
    /// The ordinal of its first entry in the whole index (the entries of the segments before).
    pub first: u64,
    /// The range `[start, start + len)` of the virtual file its files own, in order; the next
    /// segment starts where this one ends.
    pub start: u64,
    pub len: u64,
    /// In canonical order (`index::path_cmp`), as in version 1, except that a hard link names
    /// its file by path in `target` (`offset` 0): an earlier entry's number means nothing to a
    /// receiver that no longer holds it.
    pub entries: Vec<Entry>,
}

impl Segment {
    /// Where the next segment's range starts.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// The segment as it stands, unchecked: `SegmentWriter` for real use, this for tests that
    /// need a hostile one.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev: &[u8] = &[];
        for e in &self.entries {
            put_entry(&mut body, e, prev, true);
            prev = &e.path;
        }
        seal(self.seq, self.first, self.start, self.len, self.entries.len() as u32, &body)
    }

    /// Decodes and checks one segment alone: its size first (`E_LIMIT` past `SEGMENT_BYTES`),
    /// the checksum, magic, version and flags, its entry count against `SEGMENT_ENTRIES` and
    /// against the bytes present (before allocating entries), every entry's path and kind rules
    /// as version 1's, its entries in strictly increasing order, and its files' offsets
    /// consecutive from `start`, adding up to `len`. What depends on the segments before
    /// (order across them, parents, contiguity) is `Validator`'s.
    pub fn decode(buf: &[u8]) -> Result<Segment> {
        if buf.len() as u64 > SEGMENT_BYTES.max {
            return Err(Error::Limit { what: "index segment bytes", limit: SEGMENT_BYTES.max, got: buf.len() as u64 });
        }
        if buf.len() < HEADER_LEN + TRAILER_LEN {
            return Err(Error::Index(format!("a segment of {} bytes is shorter than its header", buf.len())));
        }
        if buf[..4] != SEGMENT_MAGIC {
            return Err(Error::Index("bad segment magic".into()));
        }
        let (body, trailer) = buf.split_at(buf.len() - TRAILER_LEN);
        if xxh3(body) != u64::from_le_bytes(trailer.try_into().expect("8 bytes")) {
            return Err(Error::Index("segment checksum mismatch".into()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        let version = u16::from_le_bytes([buf[4], buf[5]]);
        if version != SEGMENT_VERSION {
            return Err(Error::Index(format!("unsupported segment version {version}")));
        }
        let flags = u16::from_le_bytes([buf[6], buf[7]]);
        if flags != 0 {
            return Err(Error::Index(format!("unknown segment flags {flags:#x}")));
        }
        let (seq, first, start, len) = (u64_at(8), u64_at(16), u64_at(24), u64_at(32));
        let count = u32::from_le_bytes(buf[40..44].try_into().expect("4 bytes")) as u64;
        if count > SEGMENT_ENTRIES.max {
            return Err(Error::Limit { what: "index segment entries", limit: SEGMENT_ENTRIES.max, got: count });
        }
        if count == 0 {
            return Err(Error::Index(format!("segment {seq} has no entries")));
        }
        if count > ((body.len() - HEADER_LEN) / MIN_ENTRY_LEN) as u64 {
            return Err(Error::Index(format!("{count} entries cannot fit in a segment of {} bytes", buf.len())));
        }
        let end = start.checked_add(len).filter(|&e| e <= MAX_TOTAL);
        let Some(end) = end else {
            return Err(Error::Limit { what: "dataset size", limit: MAX_TOTAL, got: start.saturating_add(len) });
        };
        if first.checked_add(count).is_none() {
            return Err(Error::Index(format!("segment {seq}'s entry ordinals overflow")));
        }
        let mut r = Reader { buf: &body[HEADER_LEN..], pos: 0 };
        let mut entries: Vec<Entry> = Vec::with_capacity(count as usize);
        let mut cursor = start;
        for _ in 0..count {
            let e = read_entry(&mut r, entries.last().map(|e| &*e.path).unwrap_or(&[]), true)?;
            check_alone(&e)?;
            // The validator checks the order again across segments; here it keeps a segment
            // accepted alone one whose own encoding decodes (a repeated path encodes shorter).
            if let Some(prev) = entries.last() {
                match path_cmp(&prev.path, &e.path) {
                    Ordering::Less => {}
                    Ordering::Equal => return Err(Error::Duplicate { path: lossy(&e.path) }),
                    Ordering::Greater => return Err(Error::Index(format!("entries out of order at {:?}", lossy(&e.path)))),
                }
            }
            if e.kind == Kind::File {
                if e.offset != cursor {
                    return Err(Error::Index(format!("offset of {:?} is {} where {} was expected", lossy(&e.path), e.offset, cursor)));
                }
                cursor = cursor
                    .checked_add(e.size)
                    .filter(|&c| c <= end)
                    .ok_or_else(|| Error::Index(format!("size of {:?} runs past its segment's range", lossy(&e.path))))?;
            }
            entries.push(e);
        }
        if cursor != end {
            return Err(Error::Index(format!("segment {seq}'s files add up to {} bytes, its header says {len}", cursor - start)));
        }
        if r.pos != r.buf.len() {
            return Err(Error::Index(format!("{} bytes left after segment {seq}'s last entry", r.buf.len() - r.pos)));
        }
        Ok(Segment { seq, first, start, len, entries })
    }
}

/// Header, body, checksum.
fn seal(seq: u64, first: u64, start: u64, len: u64, count: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TRAILER_LEN);
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    for v in [seq, first, start, len] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(body);
    let sum = xxh3(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The rules one entry obeys whatever surrounds it, with version 1's codes: a clean relative
/// path; permission bits only; sizes and offsets only on files; a symlink's target 1..=4096
/// bytes without NUL; a hard link's target a clean path before its own in canonical order.
fn check_alone(e: &Entry) -> Result<()> {
    check_path(&e.path)?;
    let shown = || lossy(&e.path);
    if e.mode & !0o7777 != 0 {
        return Err(Error::Index(format!("mode {:o} of {:?} has bits beyond 0o7777", e.mode, shown())));
    }
    let no_bytes = e.size == 0 && e.offset == 0;
    match e.kind {
        Kind::File if !e.target.is_empty() => Err(Error::Index(format!("file {:?} has a link target", shown()))),
        Kind::File => Ok(()),
        Kind::Dir if !no_bytes || !e.target.is_empty() => {
            Err(Error::Index(format!("directory {:?} has a size, offset or target", shown())))
        }
        Kind::Dir => Ok(()),
        Kind::Symlink if !no_bytes => Err(Error::Index(format!("symlink {:?} has a size or offset", shown()))),
        Kind::Symlink if e.target.len() > MAX_TARGET => {
            Err(Error::Limit { what: "symlink target length", limit: MAX_TARGET as u64, got: e.target.len() as u64 })
        }
        Kind::Symlink if e.target.is_empty() || e.target.contains(&0) => {
            Err(Error::BadPath { path: shown(), why: "symlink target empty or with NUL" })
        }
        Kind::Symlink => Ok(()),
        Kind::HardLink if !no_bytes => Err(Error::Index(format!("hard link {:?} has a size or offset", shown()))),
        Kind::HardLink => {
            check_path(&e.target)?;
            if path_cmp(&e.target, &e.path) != Ordering::Less {
                return Err(Error::Index(format!("hard link {:?} names itself or a later entry", shown())));
            }
            Ok(())
        }
    }
}

/// Checks a stream of segments, each against those before it: sequence numbers 0, 1, 2, ...;
/// entry ordinals and virtual-file ranges contiguous (no gap, no overlap); entries in strictly
/// increasing canonical order across the whole stream (an equal path is `E_DUPLICATE`); every
/// entry's parent an earlier `dir` entry (a symlink parent `E_PATH_ESCAPE`, a file or hard link
/// parent `E_INDEX`), top-level entries excepted. A refusal spends it: every later segment is
/// refused too.
///
/// Its state is of fixed size, `size_of::<Validator>()` plus `MAX_PATH` bytes for the previous
/// path, however many entries pass (`state_bytes`). Why the previous entry is enough: in
/// canonical order a directory's subtree follows it contiguously, so if entry `e`'s parent `P`
/// is listed at all, every entry between `P` and `e` lies inside `P`'s subtree and the entry
/// just before `e` is `P` itself or lies under `P`. And every proper ancestor of the previous
/// entry is a listed directory (by induction: each entry was accepted only with its parent a
/// listed directory, itself accepted the same way; the first entry must be top-level). So `e`
/// is accepted exactly when its parent is the previous entry and that is a directory, or is a
/// proper ancestor of the previous entry, or `e` is top-level: version 1's rule, decided without
/// any earlier entry but the last. Duplicates are equal neighbours in a strict order, and a
/// path under an earlier file has that file as its parent, the entry just before it. What this
/// cannot check is the kind of the file a hard link names in an earlier segment (only that it
/// comes earlier): the receiver checks that when it makes the link.
#[derive(Debug)]
pub struct Validator {
    next_seq: u64,
    next_entry: u64,
    /// Where the next segment's range starts: the bytes of the virtual file so far.
    cursor: u64,
    prev: Vec<u8>,
    /// None before the first entry.
    prev_kind: Option<Kind>,
    spent: bool,
}

impl Default for Validator {
    fn default() -> Self {
        Validator::new()
    }
}

impl Validator {
    pub fn new() -> Validator {
        // Room for the longest path once, so the state never grows.
        Validator { next_seq: 0, next_entry: 0, cursor: 0, prev: Vec::with_capacity(MAX_PATH), prev_kind: None, spent: false }
    }

    /// Checks `seg` (decoded, so checked alone) against the segments accepted before it.
    pub fn accept(&mut self, seg: &Segment) -> Result<()> {
        if self.spent {
            return Err(Error::Index("a segment after the stream was refused".into()));
        }
        let r = self.accept_unspent(seg);
        self.spent = r.is_err();
        r
    }

    fn accept_unspent(&mut self, seg: &Segment) -> Result<()> {
        if seg.seq != self.next_seq {
            return Err(Error::Index(format!("segment {} where {} was expected", seg.seq, self.next_seq)));
        }
        if seg.first != self.next_entry {
            return Err(Error::Index(format!("segment {} starts at entry {} where {} was expected", seg.seq, seg.first, self.next_entry)));
        }
        if seg.start != self.cursor {
            let how = if seg.start > self.cursor { "a gap" } else { "an overlap" };
            return Err(Error::Index(format!("segment {} starts at byte {}, {how} after {}", seg.seq, seg.start, self.cursor)));
        }
        for e in &seg.entries {
            self.step(e)?;
        }
        self.next_seq += 1;
        self.next_entry += seg.entries.len() as u64;
        self.cursor = seg.end();
        Ok(())
    }

    /// Order and parent of the next entry in the whole stream.
    fn step(&mut self, e: &Entry) -> Result<()> {
        let prev = self.prev_kind.map(|k| (&self.prev[..], k));
        if let Some((p, _)) = prev {
            match path_cmp(p, &e.path) {
                Ordering::Less => {}
                Ordering::Equal => return Err(Error::Duplicate { path: lossy(&e.path) }),
                Ordering::Greater => return Err(Error::Index(format!("entries out of order at {:?}", lossy(&e.path)))),
            }
        }
        if let Some(parent) = parent_of(&e.path) {
            match prev {
                Some((p, Kind::Dir)) if p == parent => {}
                Some((p, Kind::Symlink)) if p == parent => {
                    return Err(Error::PathEscape { path: lossy(&e.path), why: "parent is a symlink" })
                }
                Some((p, _)) if p == parent => return Err(Error::Index(format!("parent of {:?} is a file", lossy(&e.path)))),
                Some((p, _)) if is_under(p, parent) => {}
                _ => return Err(Error::Index(format!("parent of {:?} is not in the index", lossy(&e.path)))),
            }
        }
        self.prev.clear();
        self.prev.extend_from_slice(&e.path);
        self.prev_kind = Some(e.kind);
        Ok(())
    }

    /// Entries accepted so far.
    pub fn entries(&self) -> u64 {
        self.next_entry
    }

    /// Bytes of the virtual file the accepted segments cover.
    pub fn bytes(&self) -> u64 {
        self.cursor
    }

    /// What the validator holds, in bytes: the same after the first entry as after the last.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Validator>() + self.prev.capacity()
    }
}

/// Whether `path` lies inside directory `dir` (at any depth).
fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Cuts a walk's entries, given in canonical order, into encoded segments: a segment is cut
/// when it holds `entries` entries, before an entry that would take it past `bytes`, and
/// whenever the caller flushes (a short deadline, the end of the walk). It gives files their
/// offsets, as `Index::from_entries` does, and checks what it is given as a receiver would
/// (so a sender never cuts a stream its peer refuses). Holds one segment's encoded bytes and a
/// `Validator`, never the entries; no threads, no clock.
#[derive(Debug)]
pub struct SegmentWriter {
    max_entries: u32,
    max_bytes: usize,
    order: Validator,
    seq: u64,
    /// Ordinal of the pending segment's first entry, and the range it starts at.
    first: u64,
    start: u64,
    cursor: u64,
    body: Vec<u8>,
    count: u32,
    /// The pending segment's last path, for prefix compression (reset with each segment).
    last: Vec<u8>,
}

impl SegmentWriter {
    /// A writer cutting at `entries` entries and `bytes` encoded bytes, each within its bounds
    /// (`SEGMENT_ENTRIES`, `SEGMENT_BYTES`).
    pub fn new(entries: u64, bytes: u64) -> Result<SegmentWriter> {
        let within = |b: Bounds, v: u64, what| {
            if b.contains(v) {
                Ok(())
            } else {
                Err(Error::Usage(format!("{what} {v} is outside {}..={}", b.min, b.max)))
            }
        };
        within(SEGMENT_ENTRIES, entries, "segment entries")?;
        within(SEGMENT_BYTES, bytes, "segment bytes")?;
        Ok(SegmentWriter {
            max_entries: entries as u32,
            max_bytes: bytes as usize,
            order: Validator::new(),
            seq: 0,
            first: 0,
            start: 0,
            cursor: 0,
            body: Vec::new(),
            count: 0,
            last: Vec::with_capacity(MAX_PATH),
        })
    }

    /// Adds the walk's next entry; returns the segments it completed (none, one, or two when a
    /// byte cut before it and the entry cut after it meet).
    pub fn push(&mut self, mut e: Entry) -> Result<Vec<Vec<u8>>> {
        match e.kind {
            Kind::File => e.offset = self.cursor,
            Kind::Dir | Kind::Symlink | Kind::HardLink => (e.size, e.offset) = (0, 0),
        }
        check_alone(&e)?;
        let end = self.cursor.checked_add(e.size).filter(|&c| c <= MAX_TOTAL);
        let Some(end) = end else {
            return Err(Error::Limit { what: "dataset size", limit: MAX_TOTAL, got: self.cursor.saturating_add(e.size) });
        };
        self.order.step(&e)?;
        let mut done = Vec::new();
        let mut enc = Vec::new();
        put_entry(&mut enc, &e, &self.last, true);
        if self.count > 0 && HEADER_LEN + self.body.len() + enc.len() + TRAILER_LEN > self.max_bytes {
            done.extend(self.flush());
            enc.clear();
            put_entry(&mut enc, &e, &[], true);
        }
        self.body.extend_from_slice(&enc);
        self.count += 1;
        self.last.clear();
        self.last.extend_from_slice(&e.path);
        self.cursor = end;
        if self.count == self.max_entries {
            done.extend(self.flush());
        }
        Ok(done)
    }

    /// The pending entries as a segment, however few (none: None).
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let out = seal(self.seq, self.first, self.start, self.cursor - self.start, self.count, &self.body);
        self.seq += 1;
        self.first += self.count as u64;
        self.start = self.cursor;
        self.body.clear();
        self.count = 0;
        self.last.clear();
        Some(out)
    }

    /// Entries waiting for the next cut.
    pub fn pending(&self) -> usize {
        self.count as usize
    }
}

/// A whole walk cut into segments (tests, and a sender with its walk at hand).
pub fn encode_segments(entries: impl IntoIterator<Item = Entry>, max_entries: u64, max_bytes: u64) -> Result<Vec<Vec<u8>>> {
    let mut w = SegmentWriter::new(max_entries, max_bytes)?;
    let mut out = Vec::new();
    for e in entries {
        out.extend(w.push(e)?);
    }
    out.extend(w.flush());
    Ok(out)
}

/// A whole index's entries in segment form: each hard link naming its file by path.
pub fn entries_of(index: &Index) -> impl Iterator<Item = Entry> + '_ {
    let all = index.entries();
    all.iter().map(move |e| {
        let mut e = e.clone();
        if e.kind == Kind::HardLink {
            e.target = all[e.offset as usize].path.clone();
            e.offset = 0;
        }
        e
    })
}

#[cfg(test)]
mod tests;
