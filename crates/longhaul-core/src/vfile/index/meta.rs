//! The index's optional sections, each behind a header flag and a feature bit: sparse files'
//! data extents (FEATURE_SPARSE), entries' owners and groups (FEATURE_OWNER), entries'
//! extended attributes (FEATURE_XATTRS). A decoder checks every count against the bytes left
//! before it allocates in proportion to it.

use super::*;

/// An extended attribute: its name and value.
pub type Xattr = (Box<[u8]>, Box<[u8]>);

/// One entry's extended attributes: `(name, value)`, names without NUL, at most
/// `MAX_XATTR_BYTES` of names and values together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattrs {
    pub entry: u32,
    pub attrs: Vec<Xattr>,
}

/// Numeric ids of every entry, in index order; `which` says which of the two the receiver
/// applies (`OWNER_UID`, `OWNER_GID`), the other is 0 and not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owners {
    pub which: u8,
    pub ids: Box<[(u32, u32)]>,
}

/// A sparse file's data extents: `(start, len)` in the file, increasing, not touching, each
/// within the file's size. No extent at all is a file that is one hole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sparse {
    pub entry: u32,
    pub extents: Box<[(u64, u64)]>,
}

impl Index {
    /// This index with the data extents of its sparse files, checked: each names a file entry
    /// once, in increasing order, with at most `MAX_EXTENTS` extents that are not empty, do not
    /// overlap or touch, and end within the file.
    pub fn with_sparse(mut self, sparse: Vec<Sparse>) -> Result<Index> {
        let mut last: Option<u32> = None;
        for s in &sparse {
            let e = self.entries.get(s.entry as usize).filter(|e| e.kind == Kind::File);
            let Some(e) = e else {
                return Err(Error::Index(format!("extents name entry {}, which is not a file", s.entry)));
            };
            if last.is_some_and(|l| l >= s.entry) {
                return Err(Error::Index(format!("extents of entry {} out of order or twice", s.entry)));
            }
            last = Some(s.entry);
            if s.extents.len() > MAX_EXTENTS {
                return Err(Error::Limit { what: "data extents of a file", limit: MAX_EXTENTS as u64, got: s.extents.len() as u64 });
            }
            let mut end = 0u64;
            for (k, &(start, len)) in s.extents.iter().enumerate() {
                let stop = start.checked_add(len).filter(|&x| x <= e.size);
                if len == 0 || stop.is_none() || (k > 0 && start <= end) {
                    return Err(Error::Index(format!(
                        "extent {start}+{len} of {:?} is empty, overlaps another or runs past its size {}",
                        lossy(&e.path),
                        e.size
                    )));
                }
                end = stop.unwrap_or(0);
            }
        }
        self.sparse = sparse;
        Ok(self)
    }

    /// This index with every entry's owner and group (`which`: what the receiver applies).
    pub fn with_owners(mut self, owners: Option<Owners>) -> Result<Index> {
        if let Some(o) = &owners {
            if o.ids.len() != self.entries.len() || o.which == 0 || o.which & !(OWNER_UID | OWNER_GID) != 0 {
                return Err(Error::Index(format!("owners section of {} entries, kind {}", o.ids.len(), o.which)));
            }
        }
        self.owners = owners;
        Ok(self)
    }

    pub fn owners(&self) -> Option<&Owners> {
        self.owners.as_ref()
    }

    /// This index with entries' extended attributes, checked: each names an entry once, in
    /// increasing order, not a hard link, with names that are not empty and hold no NUL, within
    /// `MAX_XATTR_BYTES`.
    pub fn with_xattrs(mut self, xattrs: Vec<Xattrs>) -> Result<Index> {
        let mut last: Option<u32> = None;
        for x in &xattrs {
            let e = self.entries.get(x.entry as usize).filter(|e| e.kind != Kind::HardLink);
            if e.is_none() || last.is_some_and(|l| l >= x.entry) {
                return Err(Error::Index(format!("xattrs name entry {}: missing, a hard link, out of order or twice", x.entry)));
            }
            last = Some(x.entry);
            let bytes: usize = x.attrs.iter().map(|(n, v)| n.len() + v.len()).sum();
            if bytes > MAX_XATTR_BYTES {
                return Err(Error::Limit { what: "extended attributes of an entry", limit: MAX_XATTR_BYTES as u64, got: bytes as u64 });
            }
            if x.attrs.iter().any(|(n, _)| n.is_empty() || n.contains(&0)) {
                return Err(Error::Index(format!("an xattr name of entry {} is empty or holds NUL", x.entry)));
            }
        }
        self.xattrs = xattrs;
        Ok(self)
    }

    /// The extended attributes of entry `i`, if it has any in the index.
    pub fn xattrs_of(&self, i: usize) -> Option<&[Xattr]> {
        let k = self.xattrs.binary_search_by_key(&(i as u32), |x| x.entry).ok()?;
        Some(&self.xattrs[k].attrs)
    }

    pub fn has_xattrs(&self) -> bool {
        !self.xattrs.is_empty()
    }

    /// This index without extended attributes, for a peer without FEATURE_XATTRS; how many
    /// entries lost them.
    pub fn without_xattrs(&self) -> (Index, u64) {
        (Index { xattrs: Vec::new(), ..self.clone() }, self.xattrs.len() as u64)
    }

    /// The sparse files and their data extents.
    pub fn sparse(&self) -> &[Sparse] {
        &self.sparse
    }

    /// The data extents of entry `i` if it is a sparse file.
    pub fn extents_of(&self, i: usize) -> Option<&[(u64, u64)]> {
        let k = self.sparse.binary_search_by_key(&(i as u32), |s| s.entry).ok()?;
        Some(&self.sparse[k].extents)
    }

    /// The blocks of `plan` that lie wholly in a hole of one sparse file, as `[first, end)`
    /// ranges in order: neither side sends or receives them, and the receiver leaves them as
    /// holes. Both ends compute them from the index alone.
    pub fn hole_blocks(&self, plan: crate::vfile::blocks::BlockPlan) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for s in &self.sparse {
            let e = &self.entries[s.entry as usize];
            let mut at = 0;
            let holes = s.extents.iter().map(|&(start, len)| {
                let hole = (at, start);
                at = start + len;
                hole
            });
            let holes: Vec<(u64, u64)> = holes.collect();
            for (from, to) in holes.into_iter().chain(std::iter::once((at, e.size))) {
                // Whole blocks only: a block that also holds data (of this file or another)
                // travels, its hole bytes as zeros the receiver does not write.
                let first = (e.offset + from).div_ceil(plan.block_size);
                let end = if e.offset + to == self.total { plan.count() } else { (e.offset + to) / plan.block_size };
                if first < end {
                    match out.last_mut() {
                        Some((_, last)) if *last == first => *last = end,
                        _ => out.push((first, end)),
                    }
                }
            }
        }
        out
    }

    /// Appends the owners and xattrs sections (the extents section is `encode_with_sparse`'s)
    /// before the checksum, which is made again.
    pub(super) fn encode_sections(&self, out: &mut Vec<u8>) {
        if let Some(o) = &self.owners {
            // The section goes before the checksum, which is made again.
            out.truncate(out.len() - TRAILER_LEN);
            let flags = u16::from_le_bytes([out[6], out[7]]) | FLAG_OWNERS;
            out[6..8].copy_from_slice(&flags.to_le_bytes());
            out.push(o.which);
            for &(uid, gid) in &*o.ids {
                if o.which & OWNER_UID != 0 {
                    put_varint(out, uid as u64);
                }
                if o.which & OWNER_GID != 0 {
                    put_varint(out, gid as u64);
                }
            }
            let sum = xxh3(out);
            out.extend_from_slice(&sum.to_le_bytes());
        }
        if !self.xattrs.is_empty() {
            out.truncate(out.len() - TRAILER_LEN);
            let flags = u16::from_le_bytes([out[6], out[7]]) | FLAG_XATTRS;
            out[6..8].copy_from_slice(&flags.to_le_bytes());
            put_varint(out, self.xattrs.len() as u64);
            for x in &self.xattrs {
                put_varint(out, x.entry as u64);
                put_varint(out, x.attrs.len() as u64);
                for (name, value) in &x.attrs {
                    put_varint(out, name.len() as u64);
                    out.extend_from_slice(name);
                    put_varint(out, value.len() as u64);
                    out.extend_from_slice(value);
                }
            }
            let sum = xxh3(out);
            out.extend_from_slice(&sum.to_le_bytes());
        }
    }

    /// This index without owners, for a peer without FEATURE_OWNER.
    pub fn without_owners(&self) -> Index {
        Index { owners: None, ..self.clone() }
    }

    /// This index without its extents, for a peer without FEATURE_SPARSE (its sparse files
    /// then travel whole); how many files lost them.
    pub fn without_sparse(&self) -> (Index, u64) {
        let n = self.sparse.len() as u64;
        (Index { sparse: Vec::new(), ..self.clone() }, n)
    }
}

pub(super) fn decode_sections(r: &mut Reader<'_>, flags: u16, n_entries: usize) -> Result<(Vec<Sparse>, Option<Owners>, Vec<Xattrs>)> {
    let mut sparse = Vec::new();
    if flags & FLAG_EXTENTS != 0 {
        // Counts checked against the bytes left (2 at least an item, 2 an extent) before
        // anything is allocated in proportion to them.
        let n = r.varint()?;
        if n > n_entries as u64 || n > (r.buf.len() - r.pos) as u64 / 2 {
            return Err(Error::Index(format!("{n} sparse files cannot fit")));
        }
        for _ in 0..n {
            let entry = r.varint()?;
            let count = r.varint()?;
            if entry >= n_entries as u64 {
                return Err(Error::Index(format!("extents name entry {entry}, past the last")));
            }
            if count > MAX_EXTENTS as u64 {
                return Err(Error::Limit { what: "data extents of a file", limit: MAX_EXTENTS as u64, got: count });
            }
            if count > (r.buf.len() - r.pos) as u64 / 2 {
                return Err(Error::Index(format!("{count} extents cannot fit")));
            }
            let extents = (0..count).map(|_| Ok((r.varint()?, r.varint()?))).collect::<Result<Vec<_>>>()?;
            sparse.push(Sparse { entry: entry as u32, extents: extents.into() });
        }
    }
    let mut owners = None;
    if flags & FLAG_OWNERS != 0 {
        let which = r.u8()?;
        if which == 0 || which & !(OWNER_UID | OWNER_GID) != 0 {
            return Err(Error::Index(format!("owners section of kind {which}")));
        }
        let id =
            |r: &mut Reader| -> Result<u32> { u32::try_from(r.varint()?).map_err(|_| Error::Index("an owner id past 32 bits".into())) };
        // One byte an id at least: the count was checked against the bytes, so this is bounded.
        let mut ids = Vec::with_capacity(n_entries);
        for _ in 0..n_entries {
            let uid = if which & OWNER_UID != 0 { id(r)? } else { 0 };
            let gid = if which & OWNER_GID != 0 { id(r)? } else { 0 };
            ids.push((uid, gid));
        }
        owners = Some(Owners { which, ids: ids.into() });
    }
    let mut xattrs = Vec::new();
    if flags & FLAG_XATTRS != 0 {
        // Every count against the bytes left (2 at least an item, 2 an attribute) before
        // anything is allocated in proportion to it; lengths are within the bytes by `bytes`.
        let n = r.varint()?;
        if n > n_entries as u64 || n > (r.buf.len() - r.pos) as u64 / 2 {
            return Err(Error::Index(format!("{n} entries with xattrs cannot fit")));
        }
        for _ in 0..n {
            let entry = u32::try_from(r.varint()?).map_err(|_| Error::Index("xattrs of an entry past 32 bits".into()))?;
            let count = r.varint()?;
            if count > (r.buf.len() - r.pos) as u64 / 2 || count > MAX_XATTR_BYTES as u64 {
                return Err(Error::Index(format!("{count} xattrs cannot fit")));
            }
            let mut attrs = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let n = r.varint()? as usize;
                let name = r.bytes(n)?.into();
                let v = r.varint()? as usize;
                attrs.push((name, r.bytes(v)?.into()));
            }
            xattrs.push(Xattrs { entry, attrs });
        }
    }
    Ok((sparse, owners, xattrs))
}
