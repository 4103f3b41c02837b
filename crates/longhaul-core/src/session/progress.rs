//! Types both ends of a transfer report.

/// A progress snapshot, taken by the coordinating thread every `progress_interval`.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Files whose every byte has been sent (counted up to the lowest block not yet sent).
    pub files_done: u64,
    pub files_total: u64,
    pub seconds: f64,
    pub per_stream_bytes: Vec<u64>,
}

/// Which fast paths a transfer used, and why not where it fell back.
#[derive(Clone, Debug, Default)]
pub struct FastPaths {
    pub sendfile: bool,
    pub sendfile_fallback: Option<String>,
    pub mlock: bool,
    pub mlock_fallback: Option<String>,
}
