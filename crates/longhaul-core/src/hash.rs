//! Block checksums: XXH3-64, with runtime SIMD dispatch inside twox-hash; whole-file BLAKE3 for
//! `verify: full`.

use std::cell::RefCell;
use std::fs::File;
use std::hash::Hasher;
use std::os::unix::fs::FileExt;

/// Bytes read at a time for a whole-file digest: a buffer per thread that verifies (a node's
/// writers), kept small because it lives outside the pool.
const FILE_CHUNK: usize = 256 * 1024;

thread_local! {
    static FILE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// BLAKE3 of the first `size` bytes of `file`, read with pread; `UnexpectedEof` if the file is
/// shorter than `size`.
pub fn blake3_file(file: &File, size: u64) -> std::io::Result<[u8; 32]> {
    blake3_file_ticking(file, size, u64::MAX, || Ok(()))
}

/// As `blake3_file`, calling `tick` after every `every` bytes read (a node hashing a file of
/// many gigabytes for TREE_SUMS tells its client it is still there); an error from `tick` ends
/// the hash with it.
pub fn blake3_file_ticking(file: &File, size: u64, every: u64, mut tick: impl FnMut() -> std::io::Result<()>) -> std::io::Result<[u8; 32]> {
    FILE_BUF.with(|b| {
        let mut buf = b.borrow_mut();
        buf.resize(FILE_CHUNK, 0);
        let mut h = blake3::Hasher::new();
        let mut done = 0u64;
        let mut since = 0u64;
        while done < size {
            let n = (size - done).min(FILE_CHUNK as u64) as usize;
            file.read_exact_at(&mut buf[..n], done)?;
            h.update(&buf[..n]);
            done += n as u64;
            since += n as u64;
            if since >= every && done < size {
                since = 0;
                tick()?;
            }
        }
        Ok(*h.finalize().as_bytes())
    })
}

pub fn xxh3(data: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(data)
}

/// Streaming XXH3-64 for data that arrives in chunks (hashing a sendfile region through a small
/// scratch buffer).
pub struct Xxh3(twox_hash::XxHash3_64);

impl Xxh3 {
    pub fn new() -> Self {
        Xxh3(twox_hash::XxHash3_64::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data)
    }
    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl Default for Xxh3 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticking_hash_is_the_same_hash_and_ticks_between_pieces() {
        let t = crate::scratch::Scratch::new("hash-ticking");
        let path = t.join("f");
        let bytes: Vec<u8> = (0..(FILE_CHUNK * 5 + 3)).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        let mut ticks = 0;
        let d = blake3_file_ticking(&f, bytes.len() as u64, 2 * FILE_CHUNK as u64, || {
            ticks += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(d, *blake3::hash(&bytes).as_bytes());
        assert_eq!(d, blake3_file(&f, bytes.len() as u64).unwrap());
        // After 2 and 4 chunks; not at the end.
        assert_eq!(ticks, 2);
        let e = blake3_file_ticking(&f, bytes.len() as u64, FILE_CHUNK as u64, || Err(std::io::ErrorKind::BrokenPipe.into())).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
