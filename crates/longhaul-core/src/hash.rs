//! Block checksums: XXH3-64, with runtime SIMD dispatch inside twox-hash.

use std::hash::Hasher;

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
