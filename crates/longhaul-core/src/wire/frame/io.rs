//! Frames on a reader or writer: the length checked against the type's limit before the body
//! is read, the peer's ERROR turned into the error it names.

use std::io::{Read, Write};

use super::*;

/// The largest frame a reader accepts, per type. MANIFEST's bound is the node's advertised
/// `max_manifest`; BLOCK's body is always 20 bytes.
fn frame_limit(ty: u8, max_manifest: u32) -> u32 {
    match FrameType::from_u8(ty) {
        Some(FrameType::Manifest) => max_manifest.saturating_add(1 + 2 + 2 + 4 + 4096),
        Some(FrameType::Block) => 1 + 20,
        Some(FrameType::BlockB3) => 1 + 52,
        Some(FrameType::Piece) => 1 + 52,
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
