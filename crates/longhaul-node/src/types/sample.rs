//! The thread-state timeline of a send.

/// Thread states at one moment of the transfer.
#[napi(object)]
pub struct BindingSample {
    /// Milliseconds since the transfer started.
    pub ms: f64,
    pub reading: u32,
    pub processing: u32,
    pub sending: u32,
    pub writing: u32,
    pub blocked: u32,
    pub queued: u32,
}
