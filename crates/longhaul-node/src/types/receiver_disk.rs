//! The node's side of a send: its disk writers and their waits, from its SUMMARY.

/// Where the receiving node's time went (seconds summed over its threads). Absent when the node
/// is older and does not report it.
#[napi(object)]
pub struct BindingReceiverDisk {
    /// Disk-writer threads.
    pub writers: u32,
    pub bytes_written: f64,
    /// In pwrite.
    pub write_seconds: f64,
    /// In fsync or syncfs (`--fsync file` or `end`).
    pub fsync_seconds: f64,
    /// Writers handling a block (writes, file creation, renames, the journal).
    pub writer_busy_seconds: f64,
    /// Writers waiting for a block: the network was the slower.
    pub writer_idle_seconds: f64,
    /// Network receivers waiting for room in the write queue: the disk was the slower.
    pub queue_full_seconds: f64,
    /// Network receivers waiting for a free buffer.
    pub pool_wait_seconds: f64,
    /// Network receivers held by the node's bandwidth limit.
    pub rate_wait_seconds: f64,
}
