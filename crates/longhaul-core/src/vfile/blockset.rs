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
    len: u64,
}

impl BlockSet {
    /// Adds `block`; false if it was already there.
    pub fn insert(&mut self, block: u64) -> bool {
        let chunk = self.chunks.entry(block / PER_CHUNK).or_insert_with(|| Box::new([0; WORDS]));
        let bit = block % PER_CHUNK;
        let (w, m) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let fresh = chunk[w] & m == 0;
        chunk[w] |= m;
        self.len += u64::from(fresh);
        fresh
    }

    pub fn contains(&self, block: u64) -> bool {
        let bit = block % PER_CHUNK;
        self.chunks.get(&(block / PER_CHUNK)).is_some_and(|c| c[(bit / 64) as usize] & (1u64 << (bit % 64)) != 0)
    }

    /// Distinct blocks in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The XXH3 of each block received whole, by block number (end-game: a block's second copy must
/// be its first). Allocated as blocks arrive, 512 bytes per 64 blocks: small chunks, so that a
/// sender touching one block in many allocates little for each block it sends (at 1,024 a chunk,
/// one 4 KiB block every 1,024 made the node allocate 8 KiB for it).
#[derive(Default)]
pub struct BlockSums {
    chunks: HashMap<u64, Box<[u64; SUMS_PER_CHUNK]>>,
}

const SUMS_PER_CHUNK: usize = 64;

impl BlockSums {
    /// Records `sum` as block `block`'s (a sum of 0 is kept as 1: 0 means "none here").
    pub fn set(&mut self, block: u64, sum: u64) {
        let chunk = self.chunks.entry(block / SUMS_PER_CHUNK as u64).or_insert_with(|| Box::new([0; SUMS_PER_CHUNK]));
        chunk[(block % SUMS_PER_CHUNK as u64) as usize] = sum.max(1);
    }

    /// Whether `sum` is the one recorded for `block`; false when none is.
    pub fn matches(&self, block: u64, sum: u64) -> bool {
        let got = self.chunks.get(&(block / SUMS_PER_CHUNK as u64)).map_or(0, |c| c[(block % SUMS_PER_CHUNK as u64) as usize]);
        got != 0 && got == sum.max(1)
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
        assert_eq!(s.len(), 8);
        assert!(s.contains(1 << 40) && !s.contains(3));
    }

    #[test]
    fn a_block_sum_matches_only_what_was_recorded() {
        let mut s = BlockSums::default();
        assert!(!s.matches(5, 0) && !s.matches(5, 9));
        s.set(5, 9);
        s.set(70_000, 0);
        assert!(s.matches(5, 9) && !s.matches(5, 8) && !s.matches(6, 9));
        assert!(s.matches(70_000, 0));
    }
}
