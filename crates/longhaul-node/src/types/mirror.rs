//! What `send` with `delete` removed, and what a dry run (`sendPlan`) would do.

use super::BindingSkipped;

/// Entries the node removed (or would remove) from the destination: regular files and symlinks
/// count as files, bytes are the regular files' sizes; `paths` are the first 1,000 (below the
/// node's DEST, deepest first, a directory with a trailing `/`).
#[napi(object)]
pub struct BindingDeleted {
    pub files: f64,
    pub dirs: f64,
    pub bytes: f64,
    pub paths: Vec<String>,
}

/// A dry run's plan: what sending the source would do on the node. Files are regular files and
/// symlinks; each list holds its first 1,000 paths (below the node's DEST).
#[napi(object)]
pub struct BindingPlan {
    pub new_files: f64,
    pub new_bytes: f64,
    pub new_paths: Vec<String>,
    pub changed_files: f64,
    pub changed_bytes: f64,
    pub changed_paths: Vec<String>,
    pub unchanged_files: f64,
    pub unchanged_bytes: f64,
    /// Null without `delete`.
    pub deleted: Option<BindingDeleted>,
    /// The source as scanned.
    pub bytes: f64,
    pub files: f64,
    pub dirs: f64,
    pub symlinks: f64,
    pub excluded: f64,
    pub skipped: Vec<BindingSkipped>,
    pub seconds: f64,
    pub scan_seconds: f64,
    pub round_trips: u32,
}
