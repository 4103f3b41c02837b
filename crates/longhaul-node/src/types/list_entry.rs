//! A listing entry (`Client.list`).

/// One entry of a listing.
#[napi(object)]
pub struct BindingListEntry {
    pub name: String,
    /// "dir", "file", "symlink" or "other".
    pub kind: String,
    pub mode: u32,
    pub size: f64,
    /// Nanoseconds since the epoch, as a float (exact to the microsecond).
    pub mtime_ns: f64,
}
