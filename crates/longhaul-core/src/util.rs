//! L0: small things every layer uses — hex, and the constants more than one module sizes by.

/// Bytes a thread reads, hashes or writes at a time when it walks a block or a file: small
/// enough to stay in a core's L2 cache while it is hashed, and the size of one page-cache write
/// (ext4's large folios made a 1 MiB pwrite cost 2.5x the CPU of four 256 KiB ones on these VMs;
/// bench/RESULTS.md, "page-cache writes"). One value for the sender's sendfile hash, the
/// receiver's hash and writes, whole-file digests, the compare tool and the relays.
pub const CHUNK: usize = 256 << 10;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
