//! A connection for requests that can follow one another: LIST, READV (a vector of reads in
//! one request and one response, XRootD's kXR_readv envelope) and STATS.

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::session::handshake::{self, Dial, Hello, REQUEST_FEATURES};
use crate::sys::tls::ClientTls;
use crate::wire::auth::Secret;
use crate::wire::frame::{self, Limits, ListEntry, Msg, Segment, SegmentResult, SumEntry};

/// One segment of a vectored read, as the caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub path: Vec<u8>,
    pub offset: u64,
    pub len: u32,
}

/// A connection for requests that can follow one another: LIST, READV, STATS. A request the
/// node refuses (a limit, a missing path) comes back as that error and the connection stays
/// usable; a broken connection fails every later request with the same error kind.
pub struct Connection {
    sock: TcpStream,
    hello: Hello,
}

impl Connection {
    pub fn open(addr: &str, secret: Option<&Secret>, tls: Option<&ClientTls>, timeout: Duration) -> Result<Connection> {
        let dial = Dial { addr, secret, tls, connect_timeout: timeout, io_timeout: timeout };
        let (sock, _, hello) = handshake::open(&dial, REQUEST_FEATURES)?;
        Ok(Connection { sock, hello })
    }

    pub fn limits(&self) -> Limits {
        self.hello.limits
    }

    fn reply(&mut self, max: u32) -> Result<Msg> {
        frame::expect_reply(&mut self.sock, max)
    }

    /// Lists a directory (its entries, not recursive) or names a single file.
    pub fn list(&mut self, path: &[u8]) -> Result<Vec<ListEntry>> {
        frame::write_msg(&mut self.sock, &Msg::List { path: path.to_vec() })?;
        let mut out = Vec::new();
        loop {
            match self.reply(0)? {
                Msg::Listing { last, entries } => {
                    out.extend(entries);
                    if last {
                        return Ok(out);
                    }
                }
                m => return Err(m.unexpected("LISTING")),
            }
        }
    }

    /// Every entry under `path` with its metadata and, for a regular file, the BLAKE3 the node
    /// computed (TREE_SUMS); `E_VERSION` from a node without the request.
    pub fn tree_sums(&mut self, path: &[u8]) -> Result<Vec<SumEntry>> {
        if self.hello.features & frame::FEATURE_REMOTE_SUMS == 0 {
            return Err(Error::Unsupported { flag: "compare against a node", what: "the node lists and hashes a tree" });
        }
        frame::write_msg(&mut self.sock, &Msg::TreeSums { path: path.to_vec() })?;
        let mut out = Vec::new();
        loop {
            // The node hashes between parts: its time is bounded per part (TREE_SUMS_PART_BYTES),
            // not by the request's size, so the reply timeout holds for each part.
            match self.reply(0)? {
                Msg::TreeSumsPart { last, entries } => {
                    out.extend(entries);
                    if last {
                        return Ok(out);
                    }
                }
                m => return Err(m.unexpected("TREE_SUMS_PART")),
            }
        }
    }

    pub fn stats(&mut self) -> Result<String> {
        frame::write_msg(&mut self.sock, &Msg::Stats)?;
        match self.reply(0)? {
            Msg::StatsOk { json } => Ok(json),
            m => Err(m.unexpected("STATS_OK")),
        }
    }

    /// Reads every segment in one request and one response. The outer error is the request's
    /// (a limit, a broken connection); each segment has its own result (a missing file, a
    /// path outside the root). A segment past the end of its file comes back short, as pread.
    pub fn readv(&mut self, segments: &[ReadRequest]) -> Result<Vec<Result<Vec<u8>>>> {
        let (data, results) = self.readv_raw(segments)?;
        let mut at = 0;
        Ok(results
            .iter()
            .zip(segments)
            .map(|(r, s)| {
                let piece = data[at..at + r.len as usize].to_vec();
                at += r.len as usize;
                if r.code.is_empty() {
                    Ok(piece)
                } else {
                    Err(Error::remote(&r.code, &format!("segment of {:?}", String::from_utf8_lossy(&s.path))))
                }
            })
            .collect())
    }

    /// As `readv`, without cutting: every segment's bytes in one buffer, in order, and each
    /// segment's length and status code.
    pub fn readv_raw(&mut self, segments: &[ReadRequest]) -> Result<(Vec<u8>, Vec<SegmentResult>)> {
        let mut paths: Vec<Vec<u8>> = Vec::new();
        let mut table = std::collections::HashMap::new();
        let mut segs = Vec::with_capacity(segments.len());
        for s in segments {
            let file = *table.entry(s.path.as_slice()).or_insert_with(|| {
                paths.push(s.path.clone());
                paths.len() - 1
            });
            let file =
                u16::try_from(file).map_err(|_| Error::Limit { what: "files in one readv", limit: u16::MAX as u64, got: file as u64 })?;
            segs.push(Segment { file, offset: s.offset, len: s.len });
        }
        frame::write_msg(&mut self.sock, &Msg::Readv { paths, segments: segs })?;
        let results = match self.reply(0)? {
            Msg::ReadvData { results } => results,
            m => return Err(m.unexpected("READV_DATA")),
        };
        if results.len() != segments.len() {
            return Err(Error::Protocol(format!("READV_DATA has {} results for {} segments", results.len(), segments.len())));
        }
        for (r, s) in results.iter().zip(segments) {
            if r.len > s.len {
                return Err(Error::Protocol(format!("a readv segment came back longer ({}) than asked ({})", r.len, s.len)));
            }
        }
        // The data of all segments in one read.
        let total: usize = results.iter().map(|r| r.len as usize).sum();
        let mut data = vec![0u8; total];
        self.sock.read_exact(&mut data).map_err(Error::net("receiving readv data"))?;
        Ok((data, results))
    }

    pub fn close(self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}
