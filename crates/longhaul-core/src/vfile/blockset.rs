//! The set of blocks a session has received, to refuse a block sent twice. A plain bitset
//! sized by the index's claimed total could be asked for gigabytes by a hostile manifest, and a
//! hash set grows with every block; this one allocates 8 KiB per 65,536 blocks actually seen
//! (256 GiB of data at the default block size), so it costs next to nothing and nothing until
//! data arrives.

use std::collections::HashMap;

const WORDS: usize = 1024;
const PER_CHUNK: u64 = (WORDS * 64) as u64;

#[derive(Default)]
pub struct BlockSet {
    chunks: HashMap<u64, Box<[u64; WORDS]>>,
}

impl BlockSet {
    /// Adds `block`; false if it was already there.
    pub fn insert(&mut self, block: u64) -> bool {
        let chunk = self.chunks.entry(block / PER_CHUNK).or_insert_with(|| Box::new([0; WORDS]));
        let bit = block % PER_CHUNK;
        let (w, m) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let fresh = chunk[w] & m == 0;
        chunk[w] |= m;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_new_once() {
        let mut s = BlockSet::default();
        for b in [0, 1, 63, 64, PER_CHUNK - 1, PER_CHUNK, 1 << 40] {
            assert!(s.insert(b), "{b} first time");
            assert!(!s.insert(b), "{b} second time");
        }
        assert!(s.insert(2));
        assert_eq!(s.chunks.len(), 3);
    }
}
