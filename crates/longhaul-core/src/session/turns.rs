//! Round trips, counted where they happen: a connection's traffic turns each time this side
//! reads after it has written, which is one round trip of waiting for the far end. A session's
//! control connection is read through this, so the summary's `round_trips` is measured, and a
//! test can show it does not grow with the number of files (no per-file or per-block wait).

use std::io::{self, Read, Write};

pub struct Turns<S> {
    inner: S,
    wrote: bool,
    count: u32,
}

impl<S> Turns<S> {
    pub fn new(inner: S) -> Turns<S> {
        Turns { inner, wrote: false, count: 0 }
    }
    /// Round trips so far: reads that followed a write.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl<S: Read> Read for Turns<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.wrote {
            self.wrote = false;
            self.count += 1;
        }
        Ok(n)
    }
}

impl<S: Write> Write for Turns<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.wrote |= n > 0;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that answers every write with one byte.
    struct Echo(usize);
    impl Read for Echo {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.min(buf.len());
            self.0 -= n;
            Ok(n)
        }
    }
    impl Write for Echo {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_read_after_a_write_is_one_round_trip_however_many_reads_and_writes() {
        let mut t = Turns::new(Echo(0));
        let mut b = [0u8; 1];
        t.write_all(b"a").unwrap();
        t.write_all(b"b").unwrap();
        t.read_exact(&mut b).unwrap();
        t.read_exact(&mut b).unwrap();
        assert_eq!(t.count(), 1);
        t.write_all(b"c").unwrap();
        t.read_exact(&mut b).unwrap();
        assert_eq!(t.count(), 2);
        // Reading with nothing written (the peer speaking first) is no round trip of ours.
        let mut fresh = Turns::new(Echo(3));
        fresh.read_exact(&mut [0u8; 3]).unwrap();
        assert_eq!(fresh.count(), 0);
    }
}
