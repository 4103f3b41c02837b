//! A difference `compareTrees` found.

/// One difference between two trees (`longhaul_core::tools::compare`).
#[napi(object)]
pub struct BindingDifference {
    pub path: String,
    /// missing, extra, kind, size, content, mode, mtime or target.
    pub what: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}
