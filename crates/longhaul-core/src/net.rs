//! Socket set-up, the two zero-copy-aware write operations the sender uses, and a reader with
//! a deadline.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::tls::ClientTls;

/// Connects to `addr`; with `tls`, also runs the TLS handshake (within `timeout`) and returns
/// the engine's end of the TLS relay (crate::tls): a failed handshake is `E_TLS`, never a
/// plaintext connection.
pub fn connect(addr: &str, timeout: Duration, tls: Option<&ClientTls>) -> Result<TcpStream> {
    connect_to(addr, timeout, tls).map(|(s, _)| s)
}

/// `connect`, also giving the peer's address (the engine's end of a TLS relay has none).
pub fn connect_to(addr: &str, timeout: Duration, tls: Option<&ClientTls>) -> Result<(TcpStream, IpAddr)> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(|source| Error::Connect { addr: addr.to_owned(), source })?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                // Blocks go out whole; Nagle would only delay the last segment of each.
                let _ = s.set_nodelay(true);
                return match tls {
                    Some(t) => Ok((crate::tls::connect(s, addr, t, timeout)?, a.ip())),
                    None => Ok((s, a.ip())),
                };
            }
            Err(e) => last = e,
        }
    }
    Err(Error::Connect { addr: addr.to_owned(), source: last })
}

/// Writes a block header with MSG_MORE so it leaves in the same segment as the payload that
/// follows it.
pub fn send_header(sock: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::net::send(sock.as_fd(), buf, rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `offset` with sendfile. A short file (truncated since the
/// scan) comes back as `UnexpectedEof`.
pub fn sendfile_all(sock: &TcpStream, file: &File, mut offset: u64, mut len: usize) -> io::Result<()> {
    while len > 0 {
        match rustix::fs::sendfile(sock.as_fd(), file.as_fd(), Some(&mut offset), len) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => len -= n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub fn write_all(mut sock: &TcpStream, buf: &[u8]) -> io::Result<()> {
    sock.write_all(buf)
}

/// Reads from a socket with a deadline for everything read through it, not for each read call:
/// a peer that sends one byte a second cannot keep a frame open past the deadline.
pub struct Deadline<'a> {
    sock: &'a TcpStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    pub fn new(sock: &'a TcpStream, within: Duration) -> Deadline<'a> {
        Deadline { sock, until: Instant::now() + within }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.set_read_timeout(Some(left))?;
        let mut s = self.sock;
        s.read(buf)
    }
}

/// Writes to a socket under a deadline that moves only with progress: the writes must move
/// `PACED_PROGRESS` bytes within `idle` of each other, whatever the kernel does. SO_SNDTIMEO
/// alone is not that: the kernel restarts it for every piece a sendfile hands the socket, so a
/// reader that stalls while its buffers still grow kept a 2 GiB READV's thread for several
/// idle timeouts (bench/RESULTS.md, "Connections"). Each call is given what is left of the
/// deadline, and once a call has come back short (the peer is not keeping up) each moves at
/// most `PACED_SLOW_CHUNK`, so the kernel's restarts cannot add up. Dropping it puts the
/// connection's usual write timeout (`idle`) back.
pub struct Paced<'a> {
    sock: &'a TcpStream,
    idle: Duration,
    until: Instant,
    moved: usize,
    chunk: usize,
}

/// Bytes that count as progress: a client reading at 4 KiB/s keeps a 60 s deadline moving.
pub const PACED_PROGRESS: usize = 256 << 10;
/// Bytes one write or sendfile call may move while the peer keeps up: 16 calls for a 16 MiB
/// run, nothing next to the copy.
const PACED_CHUNK: usize = 1 << 20;
/// Once it does not: one pipe's worth for sendfile (16 pages), one send to the socket.
const PACED_SLOW_CHUNK: usize = 64 << 10;

impl<'a> Paced<'a> {
    pub fn new(sock: &'a TcpStream, idle: Duration) -> Paced<'a> {
        Paced { sock, idle, until: Instant::now() + idle, moved: 0, chunk: PACED_CHUNK }
    }

    fn arm(&self) -> io::Result<()> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.set_write_timeout(Some(left))
    }

    fn moved(&mut self, n: usize, asked: usize) {
        if n < asked {
            self.chunk = PACED_SLOW_CHUNK;
        }
        self.moved += n;
        if self.moved >= PACED_PROGRESS {
            self.moved = 0;
            self.until = Instant::now() + self.idle;
        }
    }

    /// The kernel's timeout comes back as EAGAIN: said as what it is.
    fn timed_out(e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::ErrorKind::TimedOut.into()
        } else {
            e
        }
    }

    /// As `send_header`.
    pub fn send_header(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            self.arm()?;
            match rustix::net::send(self.sock.as_fd(), buf, rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL) {
                Ok(n) => {
                    self.moved(n, buf.len());
                    buf = &buf[n..];
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Self::timed_out(e.into())),
            }
        }
        Ok(())
    }

    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            self.arm()?;
            let asked = buf.len().min(self.chunk);
            match (&mut &*self.sock).write(&buf[..asked]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    self.moved(n, asked);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Self::timed_out(e)),
            }
        }
        Ok(())
    }

    /// As `sendfile_all`.
    pub fn sendfile_all(&mut self, file: &File, mut offset: u64, mut len: usize) -> io::Result<()> {
        while len > 0 {
            self.arm()?;
            let asked = len.min(self.chunk);
            match rustix::fs::sendfile(self.sock.as_fd(), file.as_fd(), Some(&mut offset), asked) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    len -= n;
                    self.moved(n, asked);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Self::timed_out(e.into())),
            }
        }
        Ok(())
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk);
        self.write_all(&buf[..n]).map(|()| n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Paced<'_> {
    fn drop(&mut self) {
        let _ = self.sock.set_write_timeout(Some(self.idle));
    }
}
