//! sendfile(2): a file's bytes to a socket without passing through user space. Its fallback
//! (a read into a buffer and a write) is the sender's packed path, chosen by `probe::sendfile`.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;

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
