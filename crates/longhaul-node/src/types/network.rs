//! What the kernel said of each data stream (TCP_INFO), and what limited the send.

/// One data stream's TCP figures at the end of a send; times in microseconds, rates in bytes/s.
#[napi(object)]
pub struct BindingStreamNet {
    pub rtt_us: u32,
    pub min_rtt_us: u32,
    /// Congestion window, in segments.
    pub cwnd: u32,
    pub mss: u32,
    pub retrans_segs: u32,
    pub bytes_sent: f64,
    pub bytes_retrans: f64,
    pub delivery_rate: f64,
    /// Time with data in flight; of that, held back by the receiver's window or the send buffer.
    pub busy_us: f64,
    pub rwnd_limited_us: f64,
    pub sndbuf_limited_us: f64,
}

/// One data stream's TCP figures at a moment of a send (`networkTimeline`): the report's
/// per-stream charts. Counters (resent segments, bytes, busy times) are totals so far.
#[napi(object)]
pub struct BindingNetSample {
    /// Milliseconds since the transfer started.
    pub ms: f64,
    pub stream: u32,
    pub rtt_us: u32,
    pub cwnd: u32,
    pub retrans_segs: u32,
    pub bytes_sent: f64,
    pub delivery_rate: f64,
    pub busy_us: f64,
    pub rwnd_limited_us: f64,
    pub sndbuf_limited_us: f64,
}

/// What limited a send, and the evidence.
#[napi(object)]
pub struct BindingVerdict {
    /// "link", "loss", "receiver's window", "sender's buffer", "disk reads", "CPU" or "unknown".
    pub limit: String,
    pub evidence: String,
}
