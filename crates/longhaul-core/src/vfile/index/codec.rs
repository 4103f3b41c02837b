//! One entry's binary form and the varint reader under it, shared by the whole index
//! (version 1) and its segments (version 2, `vfile::segment`), so that both carry entries
//! byte for byte alike.

use super::*;

/// Appends `e` with its path prefix-compressed against `prev` (the previous entry's path, or
/// empty for the first entry of a table or a segment). `by_path`: a hard link carries the path
/// of its file in `target` (segments: a receiver holding a window of the index could not look
/// an entry number up) rather than that file's position in `offset` (the whole index).
pub(crate) fn put_entry(out: &mut Vec<u8>, e: &Entry, prev: &[u8], by_path: bool) {
    let shared = prev.iter().zip(&e.path).take_while(|(a, b)| a == b).count();
    out.push(e.kind as u8);
    put_varint(out, shared as u64);
    put_varint(out, (e.path.len() - shared) as u64);
    out.extend_from_slice(&e.path[shared..]);
    put_varint(out, e.mode as u64);
    put_varint(out, zigzag(e.mtime_ns));
    match e.kind {
        Kind::File => {
            put_varint(out, e.size);
            put_varint(out, e.offset);
        }
        Kind::Symlink => {
            put_varint(out, e.target.len() as u64);
            out.extend_from_slice(&e.target);
        }
        Kind::HardLink if by_path => {
            put_varint(out, e.target.len() as u64);
            out.extend_from_slice(&e.target);
        }
        Kind::HardLink => put_varint(out, e.offset),
        Kind::Dir => {}
    }
}

/// Reads one entry whose path is compressed against `prev` (`by_path` as for `put_entry`);
/// checks what bounds an allocation (path and target lengths) and the mode, not the path
/// rules, which need the context.
pub(crate) fn read_entry(r: &mut Reader<'_>, prev: &[u8], by_path: bool) -> Result<Entry> {
    let kind = r.u8()?;
    let kind = Kind::from_u8(kind).ok_or_else(|| Error::Index(format!("unknown entry kind {kind}")))?;
    let shared = r.varint()? as usize;
    let suffix_len = r.varint()? as usize;
    if shared > prev.len() {
        return Err(Error::Index("shared prefix longer than the previous path".into()));
    }
    if shared.saturating_add(suffix_len) > MAX_PATH {
        return Err(Error::Limit { what: "path length", limit: MAX_PATH as u64, got: shared as u64 + suffix_len as u64 });
    }
    let suffix = r.bytes(suffix_len)?;
    let mut path = Vec::with_capacity(shared + suffix_len);
    path.extend_from_slice(&prev[..shared]);
    path.extend_from_slice(suffix);
    let mode = r.varint()?;
    if mode > 0o7777 {
        return Err(Error::Index(format!("mode {mode:o} has bits beyond 0o7777")));
    }
    let mtime_ns = unzigzag(r.varint()?);
    let (mut size, mut offset, mut target) = (0, 0, Vec::new());
    match kind {
        Kind::File => {
            size = r.varint()?;
            offset = r.varint()?;
        }
        Kind::Symlink => target = read_target(r, "symlink target length")?,
        Kind::HardLink if by_path => target = read_target(r, "hard link target length")?,
        Kind::HardLink => offset = r.varint()?,
        Kind::Dir => {}
    }
    Ok(Entry { path: path.into(), kind, mode: mode as u32, mtime_ns, size, offset, target: target.into() })
}

fn read_target(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u8>> {
    let n = r.varint()? as usize;
    if n > MAX_TARGET {
        return Err(Error::Limit { what, limit: MAX_TARGET as u64, got: n as u64 });
    }
    Ok(r.bytes(n)?.to_vec())
}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| Error::Index("truncated".into()))?;
        self.pos += 1;
        Ok(b)
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| Error::Index("truncated".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = (b & 0x7f) as u64;
            if shift == 63 && bits > 1 {
                return Err(Error::Index("varint overflows 64 bits".into()));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Index("varint longer than 10 bytes".into()))
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
