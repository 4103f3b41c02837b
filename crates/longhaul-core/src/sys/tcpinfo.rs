//! What the kernel knows of a TCP connection (`TCP_INFO`): its round-trip time, congestion
//! window, retransmissions, delivery rate, and how long it was busy sending and, of that, held
//! back by the receiver's window or by its own send buffer. Read from a data socket to say what
//! limited a transfer (session/send/verdict.rs). A socket that is not TCP (the engine's end of a
//! TLS relay) has none.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// One connection's figures; times in microseconds, rates in bytes per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub rtt_us: u32,
    pub min_rtt_us: u32,
    /// In segments.
    pub cwnd: u32,
    pub mss: u32,
    pub retrans_segs: u32,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    /// Bytes the peer acknowledged: what arrived, free of what still waits in the buffers.
    pub bytes_acked: u64,
    pub delivery_rate: u64,
    /// Time with data in flight or waiting to be sent.
    pub busy_us: u64,
    /// Of that, time the receiver's advertised window held the sender back.
    pub rwnd_limited_us: u64,
    /// Of that, time the sender's own socket buffer held it back.
    pub sndbuf_limited_us: u64,
}

/// Reads `TCP_INFO` of a connected TCP socket.
pub fn read(sock: impl AsFd) -> io::Result<TcpStats> {
    // SAFETY: tcp_info is plain data; all zeroes is a valid value.
    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a live descriptor, a buffer of `len` bytes and its length, both outliving the call.
    let r = unsafe {
        libc::getsockopt(sock.as_fd().as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&mut ti as *mut libc::tcp_info).cast(), &mut len)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStats {
        rtt_us: ti.tcpi_rtt,
        min_rtt_us: ti.tcpi_min_rtt,
        cwnd: ti.tcpi_snd_cwnd,
        mss: ti.tcpi_snd_mss,
        retrans_segs: ti.tcpi_total_retrans,
        bytes_sent: ti.tcpi_bytes_sent,
        bytes_retrans: ti.tcpi_bytes_retrans,
        bytes_acked: ti.tcpi_bytes_acked,
        delivery_rate: ti.tcpi_delivery_rate,
        busy_us: ti.tcpi_busy_time,
        rwnd_limited_us: ti.tcpi_rwnd_limited,
        sndbuf_limited_us: ti.tcpi_sndbuf_limited,
    })
}

/// Bytes written to a TCP socket that the peer has not acknowledged yet (SIOCOUTQ): with
/// `bytes_acked`, where in what was written the peer has got to.
pub fn unacked(sock: impl AsFd) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: a live descriptor and an int the call writes, outliving it.
    let r = unsafe { libc::ioctl(sock.as_fd().as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as u64)
}

/// Caps the bytes a TCP socket holds written but not yet sent (TCP_NOTSENT_LOWAT): a write
/// waits while more than `bytes` wait there, so a slow connection takes no more data than it is
/// about to send.
pub fn limit_unsent(sock: impl AsFd, bytes: u32) -> io::Result<()> {
    let v = bytes as libc::c_int;
    // SAFETY: a live descriptor and an int option value with its size, outliving the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_connection_that_sent_a_megabyte_says_so() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut r, _) = l.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            buf.len()
        });
        s.write_all(&vec![7u8; 1 << 20]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(reader.join().unwrap(), 1 << 20);
        // Every byte has arrived, so every byte has been sent.
        let t = super::read(&s).unwrap();
        assert!(t.bytes_sent >= 1 << 20, "{t:?}");
        assert!(t.rtt_us > 0 && t.cwnd > 0 && t.mss > 0, "{t:?}");
        // All acknowledged (the FIN's sequence number is no byte).
        assert_eq!(super::unacked(&s).unwrap(), 0);
        assert!(t.bytes_acked >= 1 << 20, "{t:?}");
        // A Unix socket has no TCP_INFO.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(super::read(&a).is_err());
    }
}
