//! A receiving side's summary (`get`, `copy`).

/// A receiving side's account of a finished transfer (a pull's, or the far node's in a copy).
#[napi(object)]
pub struct BindingReceived {
    /// Bytes received this time.
    pub bytes: f64,
    /// Bytes of the whole tree: those received and those the destination held already.
    pub bytes_total: f64,
    pub files: f64,
    pub dirs: f64,
    pub symlinks: f64,
    pub blocks: f64,
    /// Seconds from the receiver's session start to its end.
    pub receiver_seconds: f64,
    /// Wall time of the whole call.
    pub seconds: f64,
    /// Files read back and found with the sender's whole-file BLAKE3 (verify "full").
    pub verified_files: f64,
    /// A pull's entries whose owner or group was asked for and not set here, and why ("" when none).
    pub owner_not_kept: f64,
    pub owner_not_kept_why: String,
    /// A pull's entries with an extended attribute not set here, and why ("" when none).
    pub xattrs_not_kept: f64,
    pub xattrs_not_kept_why: String,
}
