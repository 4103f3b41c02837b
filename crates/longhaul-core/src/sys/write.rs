//! Writing received bytes into a file: positioned writes cut into `CHUNK` pieces, and the
//! space reserved up front. Buffered writes only; durability (fsync) is the caller's policy.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use rustix::fs::FallocateFlags;
use rustix::io::Errno;

use crate::util::CHUNK;

/// Writes all of `data` at `offset`, `CHUNK` at a time: `CHUNK` is the most one pwrite into the
/// page cache takes. The kernel sizes the page-cache folios of a buffered write by its length
/// (ext4 has large folios since Linux 6.16), and on these VMs a 1 MiB write cost 2.5x the CPU
/// of four 256 KiB ones (fio, 2 GiB: 1.04-1.21 against 0.41-0.47 CPU s; bench/RESULTS.md,
/// "page-cache writes"). Where large folios are cheap, the three more syscalls per MiB are
/// microseconds against the ~0.2 ms a MiB takes to copy.
pub fn write_chunked(fd: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    for piece in data.chunks(CHUNK) {
        fd.write_all_at(piece, offset + done)?;
        done += piece.len() as u64;
    }
    Ok(())
}

/// Reserves `len` bytes for `fd`, so that a destination too small fails before data flows. A
/// file system without fallocate (EOPNOTSUPP) is left to allocate as the bytes are written.
pub fn fallocate(fd: BorrowedFd<'_>, len: u64) -> rustix::io::Result<()> {
    match rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, len) {
        Ok(()) | Err(Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use std::fs;

    #[test]
    fn write_chunked_puts_a_piece_of_several_chunks_at_its_offset() {
        let root = Scratch::new("receive-chunked");
        let path = root.join("f");
        let (at, len) = (1000u64, CHUNK * 2 + CHUNK / 2 + 7);
        fs::write(&path, vec![0xAA; at as usize + len + 10]).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let fd = fs::OpenOptions::new().write(true).open(&path).unwrap();
        write_chunked(&fd, &data, at).unwrap();
        let got = fs::read(&path).unwrap();
        assert_eq!(got.len(), at as usize + len + 10, "nothing written past the piece");
        assert!(got[..at as usize].iter().all(|&b| b == 0xAA), "nothing written before the piece");
        assert!(got[at as usize..at as usize + len] == data[..], "the piece, byte for byte");
        assert!(got[at as usize + len..].iter().all(|&b| b == 0xAA), "the bytes after it untouched");
    }
}
