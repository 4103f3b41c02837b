//! Socket set-up, the block header and payload writes the sender uses (sendfile is in
//! `sendfile.rs`), and a reader and a writer with a deadline.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::tls::ClientTls;

/// Connects to `addr`; with `tls`, also runs the TLS handshake (within `timeout`) and returns
/// the engine's end of the TLS relay (crate::sys::tls): a failed handshake is `E_TLS`, never a
/// plaintext connection.
pub fn connect(addr: &str, timeout: Duration, tls: Option<&ClientTls>) -> Result<TcpStream> {
    connect_to(addr, timeout, tls).map(|(s, _)| s)
}

/// `connect`, also giving the peer's address (the engine's end of a TLS relay has none).
pub fn connect_to(addr: &str, timeout: Duration, tls: Option<&ClientTls>) -> Result<(TcpStream, IpAddr)> {
    connect_with(addr, timeout, tls, None)
}

/// `connect` for a data stream: the congestion control `cc` (when set) goes on the TCP socket
/// before a byte is sent, and before TLS puts a relay in front of it.
pub fn connect_data(addr: &str, timeout: Duration, tls: Option<&ClientTls>, cc: Option<&str>) -> Result<TcpStream> {
    connect_with(addr, timeout, tls, cc).map(|(s, _)| s)
}

fn connect_with(addr: &str, timeout: Duration, tls: Option<&ClientTls>, cc: Option<&str>) -> Result<(TcpStream, IpAddr)> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(|source| Error::Connect { addr: addr.to_owned(), source })?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                // Blocks go out whole; Nagle would only delay the last segment of each.
                let _ = s.set_nodelay(true);
                if let Some(cc) = cc {
                    crate::sys::congestion::set(&s, cc).map_err(Error::net("setting the congestion control"))?;
                }
                return match tls {
                    Some(t) => Ok((crate::sys::tls::connect(s, addr, t, timeout)?, a.ip())),
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

pub fn write_all(mut sock: &TcpStream, buf: &[u8]) -> io::Result<()> {
    sock.write_all(buf)
}

/// Whether the socket has room to write, waiting at most `within` for it (poll POLLOUT: the
/// kernel sets it once a third of the send buffer is free). An error counts as room: the
/// write that follows reports it.
pub fn wait_writable(sock: &TcpStream, within: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let t = Timespec { tv_sec: within.as_secs() as _, tv_nsec: within.subsec_nanos() as _ };
    let mut fds = [PollFd::new(sock, PollFlags::OUT)];
    !matches!(poll(&mut fds, Some(&t)), Ok(0))
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

/// Writes go straight to the socket, under its own write timeout: the deadline is the reader's.
impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.sock;
        s.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
/// `PACED_PROGRESS` bytes within `idle` of each other. SO_SNDTIMEO alone is not that: the
/// kernel restarts it whenever a piece of a sendfile is taken, so a reader that stalled while
/// its buffers still grew kept a 2 GiB READV's thread for 3 to 5 idle timeouts
/// (bench/RESULTS.md, "connections: 2,000 idle sockets"). So the socket is non-blocking while this lives, and each
/// wait for room is a poll with what is left of the deadline. Only the connection's own thread
/// writes or reads it meanwhile (a control connection's requests are answered one at a time).
/// Dropping it makes the socket blocking again, with the connection's usual write timeout.
pub struct Paced<'a> {
    sock: &'a TcpStream,
    idle: Duration,
    until: Instant,
    moved: usize,
}

/// Bytes that count as progress: a client reading at 4 KiB/s keeps a 60 s deadline moving.
pub const PACED_PROGRESS: usize = 256 << 10;

impl<'a> Paced<'a> {
    pub fn new(sock: &'a TcpStream, idle: Duration) -> Paced<'a> {
        let _ = sock.set_nonblocking(true);
        Paced { sock, idle, until: Instant::now() + idle, moved: 0 }
    }

    /// Waits for room in the socket until the deadline.
    fn wait(&self) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            let left = self.until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let t = Timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos() as _ };
            let mut fds = [PollFd::new(self.sock, PollFlags::OUT)];
            match poll(&mut fds, Some(&t)) {
                Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn moved(&mut self, n: usize) {
        self.moved += n;
        if self.moved >= PACED_PROGRESS {
            self.moved = 0;
            self.until = Instant::now() + self.idle;
        }
    }

    /// As `send_header`.
    pub fn send_header(&mut self, buf: &[u8]) -> io::Result<()> {
        self.send_all(buf, rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL)
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.send_all(buf, rustix::net::SendFlags::NOSIGNAL)
    }

    /// All of `buf`, each piece as soon as the socket takes it, within the deadline.
    fn send_all(&mut self, mut buf: &[u8], flags: rustix::net::SendFlags) -> io::Result<()> {
        while !buf.is_empty() {
            match rustix::net::send(self.sock.as_fd(), buf, flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    self.moved(n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => self.wait()?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// As `sys::sendfile::sendfile_all`, under the deadline.
    pub fn sendfile_all(&mut self, file: &File, mut offset: u64, mut len: usize) -> io::Result<()> {
        while len > 0 {
            match rustix::fs::sendfile(self.sock.as_fd(), file.as_fd(), Some(&mut offset), len) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    len -= n;
                    self.moved(n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => self.wait()?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Paced<'_> {
    fn drop(&mut self) {
        let _ = self.sock.set_nonblocking(false);
        let _ = self.sock.set_write_timeout(Some(self.idle));
    }
}
