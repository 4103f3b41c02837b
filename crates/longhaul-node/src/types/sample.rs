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
    /// All blocked threads: the sum of the five below.
    pub blocked: u32,
    /// Blocked on the pool: no free buffer.
    pub blocked_pool: u32,
    /// Blocked on a full queue between stages (a later stage is the slower).
    pub blocked_queue: u32,
    /// Blocked on a socket with a full send buffer (the network or the node is the slower).
    pub blocked_socket: u32,
    /// Blocked on a bandwidth limit.
    pub blocked_rate: u32,
    /// Waiting for a block from the disk reads (reading is the slower).
    pub blocked_input: u32,
    pub queued: u32,
}
