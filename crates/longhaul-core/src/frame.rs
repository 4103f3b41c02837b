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
pub const FEATURES: u64 = FEATURE_XXH3 | FEATURE_BLAKE3;
/// Control frames other than MANIFEST: far more than any of them needs.
pub const MAX_CONTROL_FRAME: u32 = 64 * 1024;
/// Error messages are cut to this many bytes.
pub const MAX_ERROR_MESSAGE: usize = 4096;
pub const TOKEN_LEN: usize = 16;
pub type Token = [u8; TOKEN_LEN];

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
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SummaryMsg {
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub blocks: u64,
    pub micros: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Hello {
        min: u16,
        max: u16,
        features: u64,
    },
    HelloOk {
        version: u16,
        features: u64,
        limits: Limits,
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
            Msg::DataHello { .. } => FrameType::DataHello,
            Msg::Block { .. } => FrameType::Block,
            Msg::BlockB3 { .. } => FrameType::BlockB3,
            Msg::StreamEnd { .. } => FrameType::StreamEnd,
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
            Msg::Hello { min, max, features } => {
                b.extend_from_slice(&MAGIC);
                b.extend_from_slice(&min.to_le_bytes());
                b.extend_from_slice(&max.to_le_bytes());
                b.extend_from_slice(&features.to_le_bytes());
            }
            Msg::HelloOk { version, features, limits } => {
                b.extend_from_slice(&version.to_le_bytes());
                b.extend_from_slice(&features.to_le_bytes());
                b.extend_from_slice(&limits.max_streams.to_le_bytes());
                b.extend_from_slice(&limits.max_block.to_le_bytes());
                b.extend_from_slice(&limits.max_manifest.to_le_bytes());
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
            Msg::Summary(s) => {
                for v in [s.bytes, s.files, s.dirs, s.symlinks, s.blocks, s.micros] {
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
                Msg::Hello { min: r.u16()?, max: r.u16()?, features: r.u64()? }
            }
            FrameType::HelloOk => Msg::HelloOk {
                version: r.u16()?,
                features: r.u64()?,
                limits: Limits { max_streams: r.u16()?, max_block: r.u32()?, max_manifest: r.u32()? },
            },
            FrameType::Manifest => {
                let n = r.u16()? as usize;
                let dest = r.take(n)?.to_vec();
                let streams = r.u16()?;
                let block_size = r.u32()?;
                let index = r.rest().to_vec();
                Msg::Manifest { dest, streams, block_size, index }
            }
            FrameType::Ready => Msg::Ready { token: r.token()?, streams: r.u16()? },
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
            }),
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
}

/// The largest frame a reader accepts, per type. MANIFEST's bound is the node's advertised
/// `max_manifest`; BLOCK's body is always 20 bytes.
fn frame_limit(ty: u8, max_manifest: u32) -> u32 {
    match FrameType::from_u8(ty) {
        Some(FrameType::Manifest) => max_manifest.saturating_add(1 + 2 + 2 + 4 + 4096),
        Some(FrameType::Block) => 1 + 20,
        Some(FrameType::BlockB3) => 1 + 52,
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

pub fn write_msg(w: &mut impl Write, msg: &Msg) -> Result<()> {
    w.write_all(&msg.encode()).map_err(Error::net("writing a frame"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
