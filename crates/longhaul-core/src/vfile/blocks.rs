//! The virtual file cut into blocks: how many, how long each is, where each starts, and which
//! of them a transfer still sends once a PLAN said what the receiver holds. Every side of a
//! transfer counts blocks with this one plan.

/// `total` bytes in blocks of `block_size` (the last one shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPlan {
    pub total: u64,
    pub block_size: u64,
}

impl BlockPlan {
    pub fn new(total: u64, block_size: u64) -> BlockPlan {
        debug_assert!(block_size > 0);
        BlockPlan { total, block_size }
    }

    /// Blocks in the virtual file.
    pub fn count(&self) -> u64 {
        self.total.div_ceil(self.block_size)
    }

    /// Offset of block `b` in the virtual file.
    pub fn offset(&self, b: u64) -> u64 {
        b * self.block_size
    }

    /// Length of block `b` (the last one may be short).
    pub fn len(&self, b: u64) -> u64 {
        self.block_size.min(self.total - b * self.block_size)
    }

    /// Whether the virtual file has no bytes (and so no blocks).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The block holding byte `offset`.
    pub fn block_of(&self, offset: u64) -> u64 {
        offset / self.block_size
    }

    /// Bytes of the blocks `blocks`.
    pub fn bytes_of(&self, blocks: &[u64]) -> u64 {
        blocks.iter().map(|&b| self.len(b)).sum()
    }

    /// The blocks still to send, in order: all but those in the `[first, end)` ranges of
    /// `skip` (a receiver's PLAN; ranges past the end are clipped).
    pub fn to_send(&self, skip: &[(u64, u64)]) -> Vec<u64> {
        let n = self.count();
        let mut held = vec![false; n as usize];
        for &(first, end) in skip {
            for b in first..end.min(n) {
                held[b as usize] = true;
            }
        }
        (0..n).filter(|&b| !held[b as usize]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_block_is_short_and_skipped_ranges_are_clipped() {
        let p = BlockPlan::new(10 * 4096 + 5, 4096);
        assert_eq!(p.count(), 11);
        assert_eq!(p.len(9), 4096);
        assert_eq!(p.len(10), 5);
        assert_eq!(p.offset(10), 40960);
        assert_eq!(p.block_of(40961), 10);
        assert_eq!(p.to_send(&[(0, 3), (9, 99)]), vec![3, 4, 5, 6, 7, 8]);
        assert_eq!(p.bytes_of(&[9, 10]), 4101);
        assert_eq!(BlockPlan::new(0, 4096).count(), 0);
    }
}
