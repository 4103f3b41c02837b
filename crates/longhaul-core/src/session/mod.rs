//! L4: one transfer, by role. A session never imports `node` or `client`: both drive it.

pub mod exchange;
pub mod handshake;
pub mod mirror;
pub mod progress;
pub mod recv;
pub mod send;
pub mod turns;

/// Disk-writer threads of a receiving session (a node's push, a pulling client). Creating
/// small files is metadata-bound, not CPU-bound: more writers than cores overlap the file
/// system's latency (bench/RESULTS.md).
pub const DEFAULT_WRITERS: usize = 4;
