//! Protocol v1 frames (docs/PROTOCOL.md). Every frame is `len: u32 LE` (type byte + body),
//! `type: u8`, body. A reader checks `len` against the hard limit for that frame type before it
//! allocates anything; a BLOCK frame's body is a fixed 20-byte header and the block's bytes
//! follow it raw, outside the frame, so they can be sent with sendfile and received straight
//! into a pooled buffer.

use std::io::{Read, Write};

use crate::error::{Error, Result};

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
pub const FEATURES: u64 = FEATURE_XXH3 | FEATURE_BLAKE3 | FEATURE_RESUME | FEATURE_VERIFY_FULL;
/// Digests in one FILE_DIGESTS frame (36 bytes each, within a control frame).
pub const MAX_DIGESTS_PER_FRAME: usize = 1024;
/// Ranges in one PLAN frame (16 bytes each, within a control frame).
pub const MAX_PLAN_RANGES: usize = 4000;
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
    /// A block header that also carries the block's BLAKE3; `len` raw bytes follow.
    BlockB3 {
        offset: u64,
        len: u32,
        xxh3: u64,
        blake3: [u8; 32],
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
    Done {
        blocks: u64,
        bytes: u64,
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
            Msg::Ready { .. } => FrameType::Ready,
            Msg::Plan { .. } => FrameType::Plan,
            Msg::DataHello { .. } => FrameType::DataHello,
            Msg::Block { .. } => FrameType::Block,
            Msg::BlockB3 { .. } => FrameType::BlockB3,
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
            Msg::Done { .. } => FrameType::Done,
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

    /// The whole frame: length, type, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&[0; 4]);
        b.push(self.frame_type() as u8);
        match self {
            Msg::Hello { min, max, features, nonce } => {
                b.extend_from_slice(&MAGIC);
                b.extend_from_slice(&min.to_le_bytes());
                b.extend_from_slice(&max.to_le_bytes());
                b.extend_from_slice(&features.to_le_bytes());
                b.extend_from_slice(nonce);
            }
            Msg::HelloOk { version, features, limits, auth, nonce } => {
                b.extend_from_slice(&version.to_le_bytes());
                b.extend_from_slice(&features.to_le_bytes());
                b.extend_from_slice(&limits.max_streams.to_le_bytes());
                b.extend_from_slice(&limits.max_block.to_le_bytes());
                b.extend_from_slice(&limits.max_manifest.to_le_bytes());
                b.extend_from_slice(&limits.max_readv_segments.to_le_bytes());
                b.extend_from_slice(&limits.max_readv_segment.to_le_bytes());
                b.push(*auth as u8);
                b.extend_from_slice(nonce);
            }
            Msg::Auth { mac } | Msg::AuthOk { mac } => b.extend_from_slice(mac),
            Msg::Get { path, streams, block_size } => {
                put_bytes16(&mut b, path);
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
            }
            Msg::List { path } => put_bytes16(&mut b, path),
            Msg::Listing { last, entries } => {
                b.push(*last as u8);
                b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                for e in entries {
                    b.push(e.kind);
                    put_bytes16(&mut b, &e.name);
                    b.extend_from_slice(&e.mode.to_le_bytes());
                    b.extend_from_slice(&e.size.to_le_bytes());
                    b.extend_from_slice(&e.mtime_ns.to_le_bytes());
                }
            }
            Msg::Readv { paths, segments } => {
                b.extend_from_slice(&(paths.len() as u16).to_le_bytes());
                for p in paths {
                    put_bytes16(&mut b, p);
                }
                b.extend_from_slice(&(segments.len() as u32).to_le_bytes());
                for s in segments {
                    b.extend_from_slice(&s.file.to_le_bytes());
                    b.extend_from_slice(&s.offset.to_le_bytes());
                    b.extend_from_slice(&s.len.to_le_bytes());
                }
            }
            Msg::ReadvData { results } => {
                b.extend_from_slice(&(results.len() as u32).to_le_bytes());
                for r in results {
                    b.extend_from_slice(&r.len.to_le_bytes());
                    b.push(r.code.len().min(255) as u8);
                    b.extend_from_slice(&r.code.as_bytes()[..r.code.len().min(255)]);
                }
            }
            Msg::Stats => {}
            Msg::StatsOk { json } => b.extend_from_slice(json.as_bytes()),
            Msg::Copy { to, src, dest, streams, block_size } => {
                put_bytes16(&mut b, to.as_bytes());
                put_bytes16(&mut b, src);
                put_bytes16(&mut b, dest);
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
            }
            Msg::CopyProgress { bytes_done, bytes_total, files_done, files_total } => {
                for v in [bytes_done, bytes_total, files_done, files_total] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
            Msg::Manifest { dest, streams, block_size, index } => {
                b.extend_from_slice(&(dest.len() as u16).to_le_bytes());
                b.extend_from_slice(dest);
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
                b.extend_from_slice(index);
            }
            Msg::Ready { token, streams } => {
                b.extend_from_slice(token);
                b.extend_from_slice(&streams.to_le_bytes());
            }
            Msg::Plan { nblocks, ranges } => {
                b.extend_from_slice(&nblocks.to_le_bytes());
                b.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
                for (first, end) in ranges {
                    b.extend_from_slice(&first.to_le_bytes());
                    b.extend_from_slice(&end.to_le_bytes());
                }
            }
            Msg::DataHello { token, stream } => {
                b.extend_from_slice(token);
                b.extend_from_slice(&stream.to_le_bytes());
            }
            Msg::Block { offset, len, xxh3 } => {
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&xxh3.to_le_bytes());
            }
            Msg::BlockB3 { offset, len, xxh3, blake3 } => {
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&xxh3.to_le_bytes());
                b.extend_from_slice(blake3);
            }
            Msg::StreamEnd { blocks, bytes } | Msg::Done { blocks, bytes } => {
                b.extend_from_slice(&blocks.to_le_bytes());
                b.extend_from_slice(&bytes.to_le_bytes());
            }
            Msg::FileDigests { digests } => {
                b.extend_from_slice(&(digests.len() as u32).to_le_bytes());
                for (entry, d) in digests {
                    b.extend_from_slice(&entry.to_le_bytes());
                    b.extend_from_slice(d);
                }
            }
            Msg::Summary(s) => {
                for v in [s.bytes, s.files, s.dirs, s.symlinks, s.blocks, s.micros, s.verified] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
            Msg::Error { code, message } => {
                b.push(code.len().min(255) as u8);
                b.extend_from_slice(&code.as_bytes()[..code.len().min(255)]);
                let m = &message.as_bytes()[..message.len().min(MAX_ERROR_MESSAGE)];
                b.extend_from_slice(&(m.len() as u16).to_le_bytes());
                b.extend_from_slice(m);
            }
        }
        let len = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&len.to_le_bytes());
        b
    }

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
            FrameType::Get => Msg::Get { path: r.bytes16()?.to_vec(), streams: r.u16()?, block_size: r.u32()? },
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
            FrameType::BlockB3 => {
                Msg::BlockB3 { offset: r.u64()?, len: r.u32()?, xxh3: r.u64()?, blake3: r.take(32)?.try_into().expect("32") }
            }
            FrameType::StreamEnd => Msg::StreamEnd { blocks: r.u64()?, bytes: r.u64()? },
            FrameType::Done => Msg::Done { blocks: r.u64()?, bytes: r.u64()? },
            FrameType::Summary => Msg::Summary(SummaryMsg {
                bytes: r.u64()?,
                files: r.u64()?,
                dirs: r.u64()?,
                symlinks: r.u64()?,
                blocks: r.u64()?,
                micros: r.u64()?,
                verified: r.u64()?,
            }),
            FrameType::FileDigests => {
                let n = r.u32()? as usize;
                if n > MAX_DIGESTS_PER_FRAME {
                    return Err(Error::Protocol(format!("FILE_DIGESTS with {n} digests (at most {MAX_DIGESTS_PER_FRAME})")));
                }
                let mut digests = Vec::with_capacity(n);
                for _ in 0..n {
                    let entry = r.u32()?;
                    if digests.last().is_some_and(|&(prev, _)| entry <= prev) {
                        return Err(Error::Protocol("FILE_DIGESTS entries are not increasing".into()));
                    }
                    digests.push((entry, r.take(32)?.try_into().expect("32")));
                }
                Msg::FileDigests { digests }
            }
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

fn put_bytes16(b: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    b.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    b.extend_from_slice(bytes);
}

/// The largest frame a reader accepts, per type. MANIFEST's bound is the node's advertised
/// `max_manifest`; BLOCK's body is always 20 bytes.
fn frame_limit(ty: u8, max_manifest: u32) -> u32 {
    match FrameType::from_u8(ty) {
        Some(FrameType::Manifest) => max_manifest.saturating_add(1 + 2 + 2 + 4 + 4096),
        Some(FrameType::Block) => 1 + 20,
        Some(FrameType::BlockB3) => 1 + 52,
        Some(FrameType::Readv) => MAX_READV_FRAME,
        Some(FrameType::ReadvData | FrameType::StatsOk) => MAX_REPLY_FRAME,
        _ => MAX_CONTROL_FRAME,
    }
}

/// Reads one frame. `Ok(None)` on a clean end of stream before the first byte.
pub fn read_msg(r: &mut impl Read, max_manifest: u32) -> Result<Option<Msg>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(Error::Protocol("connection closed inside a frame header".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::net("reading a frame")(e)),
        }
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4"));
    let ty = head[4];
    if len == 0 {
        return Err(Error::Protocol("zero-length frame".into()));
    }
    let limit = frame_limit(ty, max_manifest);
    if len > limit {
        return Err(Error::Limit { what: "frame length", limit: limit as u64, got: len as u64 });
    }
    let mut body = vec![0u8; len as usize - 1];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Protocol("connection closed inside a frame".into()),
        _ => Error::net("reading a frame")(e),
    })?;
    Msg::decode(ty, &body).map(Some)
}

/// Reads one frame and fails on end of stream.
pub fn expect_msg(r: &mut impl Read, max_manifest: u32) -> Result<Msg> {
    read_msg(r, max_manifest)?.ok_or_else(|| Error::Protocol("connection closed by the peer".into()))
}

/// Reads one frame; the peer's ERROR comes back as that error (`Error::remote`).
pub fn expect_reply(r: &mut impl Read, max_manifest: u32) -> Result<Msg> {
    match expect_msg(r, max_manifest)? {
        Msg::Error { code, message } => Err(Error::remote(&code, &message)),
        m => Ok(m),
    }
}

impl Msg {
    /// This frame where `expected` should have come.
    pub fn unexpected(&self, expected: &str) -> Error {
        Error::Protocol(format!("expected {expected}, got {:?}", self.frame_type()))
    }
}

/// The receiver's PLAN (a sender's next frame when resume was agreed) for a transfer of
/// `nblocks` blocks: its `[first, end)` ranges of blocks not to send, or the peer's ERROR.
pub fn expect_plan(r: &mut impl Read, nblocks: u64) -> Result<Vec<(u64, u64)>> {
    match expect_reply(r, 0)? {
        Msg::Plan { nblocks: n, ranges } if n == nblocks => Ok(ranges),
        Msg::Plan { nblocks: n, .. } => Err(Error::Protocol(format!("PLAN for {n} blocks, the transfer has {nblocks}"))),
        m => Err(m.unexpected("PLAN")),
    }
}

pub fn write_msg(w: &mut impl Write, msg: &Msg) -> Result<()> {
    w.write_all(&msg.encode()).map_err(Error::net("writing a frame"))
}

#[cfg(test)]
mod tests;
