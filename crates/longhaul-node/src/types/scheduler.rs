//! Which scheduler ran a send, and why.

/// The scheduler a transfer ran on, and why.
#[napi(object)]
pub struct BindingScheduler {
    pub requested: String,
    pub used: String,
    pub reason: String,
    /// Bytes/s of each scheduler in `auto`'s probe.
    pub probe: Vec<BindingProbe>,
}

#[napi(object)]
pub struct BindingProbe {
    pub scheduler: String,
    pub bytes_per_second: f64,
}
