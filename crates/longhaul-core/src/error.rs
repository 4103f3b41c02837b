//! One error type for the engine. Every variant maps to a stable string code (`E_*`) that the
//! binding hands to JavaScript as `err.code` and the protocol carries in ERROR frames, and each
//! carries the facts that matter (path, errno, limit and value).

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path that would land outside the destination root: absolute, `..`, or through a symlink.
    #[error("path escapes the destination root: {path:?} ({why})")]
    PathEscape { path: String, why: &'static str },
    /// A path that is not a clean relative path (NUL, empty or `.` component).
    #[error("invalid path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("duplicate path in index: {path:?}")]
    Duplicate { path: String },
    /// A content index that is malformed: truncated, bad checksum, inconsistent offsets or sizes.
    #[error("malformed content index: {0}")]
    Index(String),
    #[error("{what} over the limit: {got} > {limit}")]
    Limit { what: &'static str, limit: u64, got: u64 },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no common protocol version: ours {ours_min}..={ours_max}, peer {peer_min}..={peer_max}")]
    Version { ours_min: u16, ours_max: u16, peer_min: u16, peer_max: u16 },
    /// The version is common but the node lacks a feature a flag needs (an older node).
    #[error("the node does not support {flag} ({what}): it runs an older longhaul")]
    Unsupported { flag: &'static str, what: &'static str },
    #[error("block checksum mismatch at offset {offset} (length {len})")]
    Checksum { offset: u64, len: u32 },
    /// `verify: full`: a file read back after writing does not have the sender's BLAKE3.
    #[error("whole-file BLAKE3 mismatch for {path:?}: the file was not given its final name")]
    FileDigest { path: String },
    #[error("{op} {path:?}: {source}")]
    Io { op: &'static str, path: String, source: io::Error },
    #[error("no space left on the destination while writing {path:?}")]
    NoSpace { path: String },
    /// The destination has a directory where the tree has a file or a symlink, or a file where
    /// it has a directory: found when the manifest arrives, before any data moves.
    #[error("conflict at {path:?}: {why}")]
    Conflict { path: String, why: &'static str },
    #[error("source not found: {path:?}")]
    NotFound { path: String },
    #[error("source changed during the transfer: {path:?} ({why})")]
    SourceChanged { path: String, why: &'static str },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// A node (or its metrics endpoint) cannot listen where it was told: the address is in use,
    /// a port below 1024 without the privilege, or an address not on this host.
    #[error("cannot listen on {addr}: {}", listen_reason(source))]
    Listen { addr: String, source: io::Error },
    #[error("network error ({what}): {source}")]
    Net { what: &'static str, source: io::Error },
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("transfer cancelled")]
    Cancelled,
    #[error("invalid option: {0}")]
    Usage(String),
    /// A request on something its owner already closed (a client connection after `close()`):
    /// not a bad option, and no retry on the same object helps.
    #[error("{0} is closed")]
    Closed(&'static str),
    #[error("not enough capacity on the node: the transfer needs {needed} bytes, {free} are free")]
    Capacity { needed: u64, free: u64 },
    #[error("authentication failed: {0}")]
    Auth(&'static str),
    /// TLS was asked for and could not be had: a failed handshake, a certificate that is not
    /// the pinned one or does not chain to the CA, a plaintext peer, or a build without TLS.
    #[error("TLS: {0}")]
    Tls(String),
    /// The node cannot take this transfer now (too many at once, or it is draining).
    #[error("the node is busy: {0}")]
    Busy(String),
    /// The node's operator does not allow this: a copy to a target not in its `--copy-to`.
    #[error("not allowed by the node: {0}")]
    Denied(String),
    /// An error the peer reported in an ERROR frame; its code is kept as the peer sent it.
    #[error("{message}")]
    Remote { code: String, message: String },
    /// A bug: an engine thread panicked (`role` names which, `panic.rs`). The transfer is
    /// abandoned, the process goes on, and retrying would only panic again.
    #[error("the engine panicked in its {role} thread: {message}; the transfer was abandoned")]
    Panic { role: &'static str, message: String },
}

/// Every code the engine can produce, for documentation and for mapping codes received from a
/// peer back to a known one.
pub const CODES: &[&str] = &[
    "E_PATH_ESCAPE",
    "E_BAD_PATH",
    "E_DUPLICATE",
    "E_INDEX",
    "E_LIMIT",
    "E_PROTOCOL",
    "E_VERSION",
    "E_CHECKSUM",
    "E_IO",
    "E_NOSPACE",
    "E_CONFLICT",
    "E_NOT_FOUND",
    "E_SOURCE_CHANGED",
    "E_CONNECT",
    "E_LISTEN",
    "E_NET",
    "E_TIMEOUT",
    "E_CANCELLED",
    "E_USAGE",
    "E_CLOSED",
    "E_CAPACITY",
    "E_AUTH",
    "E_BUSY",
    "E_TLS",
    "E_DENIED",
    "E_PANIC",
];

impl Error {
    pub fn code(&self) -> &str {
        match self {
            Error::PathEscape { .. } => "E_PATH_ESCAPE",
            Error::BadPath { .. } => "E_BAD_PATH",
            Error::Duplicate { .. } => "E_DUPLICATE",
            Error::Index(_) => "E_INDEX",
            Error::Limit { .. } => "E_LIMIT",
            Error::Protocol(_) => "E_PROTOCOL",
            Error::Version { .. } | Error::Unsupported { .. } => "E_VERSION",
            Error::Checksum { .. } | Error::FileDigest { .. } => "E_CHECKSUM",
            Error::Io { .. } => "E_IO",
            Error::NoSpace { .. } => "E_NOSPACE",
            Error::Conflict { .. } => "E_CONFLICT",
            Error::NotFound { .. } => "E_NOT_FOUND",
            Error::SourceChanged { .. } => "E_SOURCE_CHANGED",
            Error::Connect { .. } => "E_CONNECT",
            Error::Listen { .. } => "E_LISTEN",
            Error::Net { .. } => "E_NET",
            Error::Timeout(_) => "E_TIMEOUT",
            Error::Cancelled => "E_CANCELLED",
            Error::Usage(_) => "E_USAGE",
            Error::Closed(_) => "E_CLOSED",
            Error::Capacity { .. } => "E_CAPACITY",
            Error::Auth(_) => "E_AUTH",
            Error::Busy(_) => "E_BUSY",
            Error::Tls(_) => "E_TLS",
            Error::Denied(_) => "E_DENIED",
            Error::Remote { code, .. } => code,
            Error::Panic { .. } => "E_PANIC",
        }
    }

    /// An I/O error on a file; ENOSPC and EDQUOT become `NoSpace` so callers see `E_NOSPACE`.
    pub fn io(op: &'static str, path: impl AsRef<[u8]>, source: io::Error) -> Error {
        let path = String::from_utf8_lossy(path.as_ref()).into_owned();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::NoSpace { path },
            _ => Error::Io { op, path, source },
        }
    }

    pub fn net(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(what),
            _ => Error::Net { what, source },
        }
    }

    /// Rebuilds an error received from the peer.
    pub fn remote(code: &str, message: &str) -> Error {
        let code = if code.starts_with("E_") && code.len() <= 32 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            code.to_owned()
        } else {
            "E_PROTOCOL".to_owned()
        };
        Error::Remote { code, message: bounded_message(message) }
    }
}

/// A peer's own words, as the node keeps them (its log, the STATS table): at most
/// `REMOTE_MESSAGE_MAX` bytes, control characters as spaces, so a peer cannot fill the table
/// past a STATS frame or write a 64 KiB line into the log with one ERROR.
const REMOTE_MESSAGE_MAX: usize = 512;

fn bounded_message(message: &str) -> String {
    let mut end = message.len().min(REMOTE_MESSAGE_MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = message[..end].chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if end < message.len() {
        out.push('…');
    }
    out
}

/// Why a bind failed, in the words an operator searches for ("address in use"), with the OS's own.
fn listen_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n @ libc::EADDRINUSE) => format!("address in use (EADDRINUSE, os error {n})"),
        Some(n @ libc::EACCES) => format!("permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE (EACCES, os error {n})"),
        Some(n @ libc::EADDRNOTAVAIL) => format!("no such address on this host (EADDRNOTAVAIL, os error {n})"),
        _ => e.to_string(),
    }
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn a_busy_port_is_e_listen_in_an_operators_words() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap().to_string();
        let e = std::net::TcpListener::bind(&addr).map_err(|source| Error::Listen { addr: addr.clone(), source }).unwrap_err();
        assert_eq!(e.code(), "E_LISTEN");
        assert_eq!(e.to_string(), format!("cannot listen on {addr}: address in use (EADDRINUSE, os error 98)"));
    }

    /// Review of issue 35's node log: a peer's ERROR is kept bounded and on one line.
    #[test]
    fn a_peers_message_is_bounded_and_on_one_line() {
        let long = format!("é{}", "\u{1}x".repeat(40_000));
        let Error::Remote { code, message } = Error::remote("E_IO", &long) else { panic!() };
        assert_eq!(code, "E_IO");
        assert!(message.len() <= 512 + '…'.len_utf8(), "{}", message.len());
        assert!(message.ends_with('…') && !message.chars().any(char::is_control));
        let Error::Remote { message, .. } = Error::remote("E_IO", "short\nline") else { panic!() };
        assert_eq!(message, "short line");
    }
}
