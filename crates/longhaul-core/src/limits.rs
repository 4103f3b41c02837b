//! The bounds of every option a caller sets, in one table: the engine checks the ones it must
//! (a block size), and the binding hands the whole table to TypeScript (`defaults()`), whose
//! config schema, SDK checks and generated docs read it instead of repeating the numbers. The
//! defaults themselves are the `Default` impls of `SendOptions`, `ServeOptions` and
//! `GetOptions`. A bound here is a sanity limit on a request, not a promise the machine can
//! meet it: 256 streams on two cores run, slowly.

/// An inclusive range of whole values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

impl Bounds {
    pub const fn contains(&self, v: u64) -> bool {
        self.min <= v && v <= self.max
    }
}

/// The largest integer a JS number holds exactly (2^53 - 1): byte counts cross as numbers.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Data streams per transfer: more than any link needs (each is a TCP connection and a thread
/// at both ends); a node caps them lower with `max_streams`.
pub const STREAMS: Bounds = Bounds { min: 1, max: 256 };
/// A block: at least a page, at most what one pooled buffer of a node may reasonably hold.
pub const BLOCK_SIZE: Bounds = Bounds { min: 4096, max: 64 << 20 };
/// Buffers in a pool (a sender's, or a node's push pool).
pub const POOL_BUFFERS: Bounds = Bounds { min: 1, max: 4096 };
/// Disk-reader threads of a sender: past a few, the disk, not the threads, is the limit.
pub const READERS: Bounds = Bounds { min: 1, max: 64 };
/// Pipelined processing threads, and adaptive workers.
pub const PROCESSORS: Bounds = Bounds { min: 1, max: 256 };
pub const WORKERS: Bounds = Bounds { min: 1, max: 256 };
/// Disk-writer threads per transfer.
pub const WRITERS: Bounds = Bounds { min: 1, max: 256 };
/// Timeouts in seconds (I/O, idle): up to a day.
pub const TIMEOUT_SECONDS: Bounds = Bounds { min: 1, max: 86_400 };
/// How long a failed push's files wait for its resume, in seconds: up to a year.
pub const RESUME_TTL_SECONDS: Bounds = Bounds { min: 1, max: 365 * 86_400 };
/// Transfers a node runs at once.
pub const MAX_TRANSFERS: Bounds = Bounds { min: 1, max: 100_000 };
/// Connections a node holds at once, in all and from one address.
pub const MAX_CONNECTIONS: Bounds = Bounds { min: 1, max: 1_000_000 };
pub const MAX_PER_PEER: Bounds = Bounds { min: 1, max: 1_000_000 };
/// A node's memory budget: at least one largest block (4 MiB), so a push pool of one fits.
pub const MEMORY: Bounds = Bounds { min: 4 << 20, max: MAX_SAFE_INTEGER };

/// A content index segment (protocol v2, `vfile::segment`), the unit a receiver checks and
/// holds while its blocks are in flight: at most this many entries and encoded bytes, so a
/// window of segments costs a known amount whatever the tree. 1 MiB holds over a hundred of the
/// largest entries (a 4096-byte path and a 4096-byte link target); 8,192 entries decoded are
/// about 1 MiB at 64 bytes an entry and a 64-byte path.
pub const SEGMENT_ENTRIES: Bounds = Bounds { min: 1, max: 8192 };
pub const SEGMENT_BYTES: Bounds = Bounds { min: 16 << 10, max: 1 << 20 };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::GetOptions;
    use crate::node::ServeOptions;
    use crate::session::send::SendOptions;

    /// Every default sits inside its own bounds.
    #[test]
    fn the_defaults_are_within_the_bounds() {
        let (send, serve, get) = (SendOptions::default(), ServeOptions::default(), GetOptions::default());
        assert!(STREAMS.contains(send.streams as u64) && STREAMS.contains(get.streams as u64));
        assert!(BLOCK_SIZE.contains(send.block_size as u64) && BLOCK_SIZE.contains(get.block_size as u64));
        assert!(BLOCK_SIZE.contains(serve.max_block as u64));
        assert!(POOL_BUFFERS.contains(serve.pool_buffers as u64));
        assert!(WRITERS.contains(serve.writers as u64) && WRITERS.contains(get.writers as u64));
        assert!(TIMEOUT_SECONDS.contains(send.io_timeout.as_secs()) && TIMEOUT_SECONDS.contains(serve.idle_timeout.as_secs()));
        assert!(RESUME_TTL_SECONDS.contains(serve.resume_ttl.as_secs()));
        assert!(MAX_TRANSFERS.contains(serve.max_transfers as u64));
        assert!(MAX_CONNECTIONS.contains(serve.max_connections as u64) && MAX_PER_PEER.contains(serve.max_per_peer as u64));
        assert!(MEMORY.contains(serve.memory));
    }
}
