//! What this process has read from storage (`read_bytes` of /proc/self/io): bytes that had to
//! come from a disk, not from the page cache. The verdict tells a sender held back by its disk
//! from one whose "reads" were memory copies, where the thread states alone look the same.

/// Bytes this process has caused to be fetched from storage so far; `None` where /proc says
/// nothing (another kernel, or task I/O accounting off).
pub fn storage_read_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines().find_map(|l| l.strip_prefix("read_bytes:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_count_on_linux() {
        assert!(super::storage_read_bytes().is_some());
    }
}
