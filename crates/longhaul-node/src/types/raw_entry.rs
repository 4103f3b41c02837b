//! A raw content-index entry, for tests.

/// One raw index entry, unchecked.
#[napi(object)]
pub struct BindingRawEntry {
    pub path: String,
    /// "dir", "file" or "symlink".
    pub kind: String,
    pub mode: u32,
    pub size: Option<f64>,
    pub offset: Option<f64>,
    pub target: Option<String>,
}
