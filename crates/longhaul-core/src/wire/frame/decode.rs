//! Decoding a frame's body: every length and count checked against what is left before
//! anything is allocated, and no trailing bytes.

use super::*;

impl Msg {
    /// Decodes a frame's type and body (without the length prefix).
    pub fn decode(ty: u8, body: &[u8]) -> Result<Msg> {
        let ty = FrameType::from_u8(ty).ok_or_else(|| Error::Protocol(format!("unknown frame type {ty:#04x}")))?;
        let mut r = Body { b: body, pos: 0, ty };
        let msg = match ty {
            FrameType::Hello => {
                if r.take(8)? != MAGIC {
                    return Err(Error::Protocol("HELLO without the LONGHAUL magic: not a longhaul peer".into()));
                }
                Msg::Hello { min: r.u16()?, max: r.u16()?, features: r.u64()?, nonce: r.nonce()? }
            }
            FrameType::HelloOk => Msg::HelloOk {
                version: r.u16()?,
                features: r.u64()?,
                limits: Limits {
                    max_streams: r.u16()?,
                    max_block: r.u32()?,
                    max_manifest: r.u32()?,
                    max_readv_segments: r.u32()?,
                    max_readv_segment: r.u32()?,
                },
                auth: r.flag()?,
                nonce: r.nonce()?,
            },
            FrameType::Auth => Msg::Auth { mac: r.take(32)?.try_into().expect("32") },
            FrameType::AuthOk => Msg::AuthOk { mac: r.take(32)?.try_into().expect("32") },
            FrameType::Get => Msg::Get {
                path: r.bytes16()?.to_vec(),
                streams: r.u16()?,
                block_size: r.u32()?,
                keep: if r.left() > 0 { r.u8()? } else { 0 },
            },
            FrameType::List => Msg::List { path: r.bytes16()?.to_vec() },
            FrameType::Listing => {
                let last = r.flag()?;
                let n = r.count(1 + 2 + 4 + 8 + 8)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let kind = r.u8()?;
                    let name = r.bytes16()?.to_vec();
                    entries.push(ListEntry { name, kind, mode: r.u32()?, size: r.u64()?, mtime_ns: r.u64()? as i64 });
                }
                Msg::Listing { last, entries }
            }
            FrameType::Readv => {
                let n = r.u16()? as usize;
                // Each path takes at least its 2-byte length: a count the body cannot hold is
                // refused before anything is allocated for it.
                if n * 2 > r.left() {
                    return Err(Error::Protocol("READV path count exceeds the frame".into()));
                }
                let mut paths = Vec::with_capacity(n);
                for _ in 0..n {
                    paths.push(r.bytes16()?.to_vec());
                }
                let n = r.count(14)?;
                let mut segments = Vec::with_capacity(n);
                for _ in 0..n {
                    segments.push(Segment { file: r.u16()?, offset: r.u64()?, len: r.u32()? });
                }
                Msg::Readv { paths, segments }
            }
            FrameType::ReadvData => {
                let n = r.count(5)?;
                let mut results = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = r.u32()?;
                    let k = r.u8()? as usize;
                    let code = String::from_utf8(r.take(k)?.to_vec()).map_err(|_| Error::Protocol("segment code is not UTF-8".into()))?;
                    results.push(SegmentResult { len, code });
                }
                Msg::ReadvData { results }
            }
            FrameType::Stats => Msg::Stats,
            FrameType::StatsOk => {
                Msg::StatsOk { json: String::from_utf8(r.rest().to_vec()).map_err(|_| Error::Protocol("STATS_OK is not UTF-8".into()))? }
            }
            FrameType::Copy => {
                let to = String::from_utf8(r.bytes16()?.to_vec()).map_err(|_| Error::Protocol("COPY address is not UTF-8".into()))?;
                Msg::Copy { to, src: r.bytes16()?.to_vec(), dest: r.bytes16()?.to_vec(), streams: r.u16()?, block_size: r.u32()? }
            }
            FrameType::CopyProgress => {
                Msg::CopyProgress { bytes_done: r.u64()?, bytes_total: r.u64()?, files_done: r.u64()?, files_total: r.u64()? }
            }
            FrameType::Manifest => {
                let n = r.u16()? as usize;
                let dest = r.take(n)?.to_vec();
                let streams = r.u16()?;
                let block_size = r.u32()?;
                let index = r.rest().to_vec();
                Msg::Manifest { dest, streams, block_size, index }
            }
            FrameType::Ready => Msg::Ready { token: r.token()?, streams: r.u16()? },
            FrameType::Plan => {
                let nblocks = r.u64()?;
                let n = r.count(16)?;
                let mut ranges = Vec::with_capacity(n);
                let mut floor = 0;
                for _ in 0..n {
                    let (first, end) = (r.u64()?, r.u64()?);
                    if first < floor || end <= first || end > nblocks {
                        return Err(Error::Protocol(format!("PLAN range {first}..{end} is empty, unsorted or past block {nblocks}")));
                    }
                    floor = end;
                    ranges.push((first, end));
                }
                Msg::Plan { nblocks, ranges }
            }
            FrameType::DataHello => Msg::DataHello { token: r.token()?, stream: r.u16()? },
            FrameType::Block => Msg::Block { offset: r.u64()?, len: r.u32()?, xxh3: r.u64()? },
            FrameType::BlockRaw => Msg::BlockRaw { offset: r.u64()?, len: r.u32()? },
            FrameType::Bench => Msg::Bench { streams: r.u16()?, block_size: r.u32()?, size: r.u64()? },
            FrameType::BlockB3 => {
                Msg::BlockB3 { offset: r.u64()?, len: r.u32()?, xxh3: r.u64()?, blake3: r.take(32)?.try_into().expect("32") }
            }
            FrameType::Piece => {
                let (offset, len, xxh3) = (r.u64()?, r.u32()?, r.u64()?);
                // As BLOCK, or as BLOCK_B3: the length says which.
                let blake3 = if r.left() == 0 { None } else { Some(r.take(32)?.try_into().expect("32")) };
                if len == 0 {
                    return Err(Error::Protocol(format!("PIECE at {offset} is empty")));
                }
                Msg::Piece { offset, len, xxh3, blake3 }
            }
            FrameType::Held => {
                let last = r.flag()?;
                let n = r.count(8)?;
                if n > MAX_HELD_RANGES {
                    return Err(Error::Protocol(format!("HELD with {n} ranges (at most {MAX_HELD_RANGES})")));
                }
                let mut ranges = Vec::with_capacity(n);
                let mut floor = 0;
                for _ in 0..n {
                    let (first, end) = (r.u32()?, r.u32()?);
                    if first < floor || end <= first {
                        return Err(Error::Protocol(format!("HELD range {first}..{end} is empty or unsorted")));
                    }
                    floor = end;
                    ranges.push((first, end));
                }
                Msg::Held { last, ranges }
            }
            FrameType::StreamEnd => Msg::StreamEnd { blocks: r.u64()?, bytes: r.u64()? },
            FrameType::Done => Msg::Done { blocks: r.u64()?, bytes: r.u64()? },
            FrameType::StreamsOpened => Msg::StreamsOpened { count: r.u16()? },
            FrameType::Summary => Msg::Summary(SummaryMsg {
                bytes: r.u64()?,
                files: r.u64()?,
                dirs: r.u64()?,
                symlinks: r.u64()?,
                blocks: r.u64()?,
                micros: r.u64()?,
                verified: r.u64()?,
                // Present or not as a whole: a partial one is a truncated body.
                disk: if r.left() == 0 {
                    None
                } else {
                    Some(DiskStats {
                        writers: r.u64()?,
                        bytes_written: r.u64()?,
                        write_us: r.u64()?,
                        fsync_us: r.u64()?,
                        busy_us: r.u64()?,
                        idle_us: r.u64()?,
                        queue_full_us: r.u64()?,
                        pool_us: r.u64()?,
                        rate_us: r.u64()?,
                    })
                },
                owner_not_kept: if r.left() == 0 { None } else { Some(r.u64()?) },
                xattrs_not_kept: if r.left() == 0 { None } else { Some(r.u64()?) },
                cpu_us: if r.left() == 0 { None } else { Some(r.u64()?) },
            }),
            FrameType::Sums => {
                let mode = r.u8()?;
                if mode > SUMS_CONFIRM {
                    return Err(Error::Protocol(format!("SUMS mode {mode} is unknown")));
                }
                Msg::Sums { mode, digests: digest_list(&mut r, "SUMS")? }
            }
            FrameType::Unchanged => Msg::Unchanged { files: r.u64()?, bytes: r.u64()? },
            FrameType::Mirror => {
                let flags = r.u8()?;
                if flags > 3 {
                    return Err(Error::Protocol(format!("MIRROR flags {flags:#x} are unknown")));
                }
                let n = r.u16()? as usize;
                // Each rule takes at least its flag and its 2-byte length.
                if n * 3 > r.left() {
                    return Err(Error::Protocol("MIRROR rule count exceeds the frame".into()));
                }
                let mut rules = Vec::with_capacity(n);
                for _ in 0..n {
                    rules.push((r.flag()?, r.bytes16()?.to_vec()));
                }
                Msg::Mirror { delete: flags & 1 != 0, dry_run: flags & 2 != 0, rules }
            }
            FrameType::Changes => {
                let n = r.count(3)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let mark = r.u8()?;
                    if ![MARK_NEW, MARK_UPDATE, MARK_DELETE].contains(&mark) {
                        return Err(Error::Protocol(format!("CHANGES mark {mark:#04x} is unknown")));
                    }
                    items.push((mark, r.bytes16()?.to_vec()));
                }
                Msg::Changes { items }
            }
            FrameType::Tally => {
                let mut v = [0u64; Tally::FIELDS];
                for x in &mut v {
                    *x = r.u64()?;
                }
                Msg::Tally(Tally::from_fields(v))
            }
            FrameType::TreeSums => Msg::TreeSums { path: r.bytes16()?.to_vec() },
            FrameType::TreeSumsPart => {
                let last = r.flag()?;
                let n = r.count(1 + 2 + 4 + 8 + 8 + 2 + 1)?;
                if n > MAX_TREE_SUMS_ENTRIES {
                    return Err(Error::Protocol(format!("TREE_SUMS_PART with {n} entries (at most {MAX_TREE_SUMS_ENTRIES})")));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let kind = r.u8()?;
                    let path = r.bytes16()?.to_vec();
                    let (mode, size, mtime_ns) = (r.u32()?, r.u64()?, r.u64()? as i64);
                    let target = r.bytes16()?.to_vec();
                    let digest = if r.flag()? { Some(r.take(32)?.try_into().expect("32")) } else { None };
                    entries.push(SumEntry { path, kind, mode, size, mtime_ns, target, digest });
                }
                Msg::TreeSumsPart { last, entries }
            }
            FrameType::FileDigests => Msg::FileDigests { digests: digest_list(&mut r, "FILE_DIGESTS")? },
            FrameType::Error => {
                let n = r.u8()? as usize;
                let code = String::from_utf8(r.take(n)?.to_vec()).map_err(|_| Error::Protocol("error code is not UTF-8".into()))?;
                let n = r.u16()? as usize;
                let message = String::from_utf8_lossy(r.take(n)?).into_owned();
                Msg::Error { code, message }
            }
        };
        if r.pos != body.len() {
            return Err(Error::Protocol(format!("{} trailing bytes in a {ty:?} frame", body.len() - r.pos)));
        }
        Ok(msg)
    }
}

/// A list of (entry, BLAKE3) in increasing entry order, at most MAX_DIGESTS_PER_FRAME of them
/// (SUMS, FILE_DIGESTS); `what` names the frame in errors.
fn digest_list(r: &mut Body<'_>, what: &str) -> Result<Vec<(u32, [u8; 32])>> {
    let n = r.u32()? as usize;
    if n > MAX_DIGESTS_PER_FRAME {
        return Err(Error::Protocol(format!("{what} with {n} digests (at most {MAX_DIGESTS_PER_FRAME})")));
    }
    let mut digests: Vec<(u32, [u8; 32])> = Vec::with_capacity(n);
    for _ in 0..n {
        let entry = r.u32()?;
        if digests.last().is_some_and(|&(prev, _)| entry <= prev) {
            return Err(Error::Protocol(format!("{what} entries are not increasing")));
        }
        digests.push((entry, r.take(32)?.try_into().expect("32")));
    }
    Ok(digests)
}

struct Body<'a> {
    b: &'a [u8],
    pos: usize,
    ty: FrameType,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| Error::Protocol(format!("truncated {:?} frame", self.ty)))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn token(&mut self) -> Result<Token> {
        Ok(self.take(TOKEN_LEN)?.try_into().expect("16"))
    }
    fn nonce(&mut self) -> Result<Nonce> {
        Ok(self.take(NONCE_LEN)?.try_into().expect("16"))
    }
    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::Protocol(format!("flag byte {v} in a {:?} frame", self.ty))),
        }
    }
    fn bytes16(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }
    /// A `u32` count of items of at least `min_size` bytes each, checked against the bytes left.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.left() {
            return Err(Error::Protocol(format!("{:?} frame claims {n} items, more than its body holds", self.ty)));
        }
        Ok(n)
    }
}
