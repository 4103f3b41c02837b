//! The engine's defaults and the bounds of every option (`defaults()`): core's `Default`
//! impls and `longhaul_core::limits`, for the SDK's checks, the CLI's config schema and docs.

/// An inclusive range of whole values.
#[napi(object)]
pub struct BindingBounds {
    pub min: f64,
    pub max: f64,
}

/// `send`'s defaults (`SendOptions::default()`).
#[napi(object)]
pub struct BindingSendDefaults {
    pub streams: u32,
    pub block_size: u32,
    pub scheduler: String,
    pub digest: String,
    pub pin: String,
    pub verify: String,
    pub resume: bool,
    pub io_timeout_ms: f64,
    pub progress_interval_ms: f64,
    pub timeline_interval_ms: f64,
    pub congestion: String,
}

/// `serve`'s defaults (`ServeOptions::default()`).
#[napi(object)]
pub struct BindingServeDefaults {
    pub pool_buffers: u32,
    pub max_block: u32,
    pub writers: u32,
    pub max_streams: u32,
    pub max_transfers: u32,
    pub max_connections: u32,
    pub max_per_peer: u32,
    pub memory: f64,
    pub handshake_timeout_ms: f64,
    pub idle_timeout_ms: f64,
    pub resume_ttl_ms: f64,
    pub fsync: String,
    pub pin: String,
    pub keep_setid: bool,
    pub congestion: String,
    /// Bench sessions accepted (`longhaul bench`).
    pub bench: bool,
}

/// `get`'s defaults (`GetOptions::default()`); `copy` takes `send`'s streams and block size.
#[napi(object)]
pub struct BindingGetDefaults {
    pub streams: u32,
    pub block_size: u32,
    pub writers: u32,
    pub timeout_ms: f64,
    pub progress_interval_ms: f64,
    pub resume: bool,
    pub keep_setid: bool,
}

/// The bounds of each option (`longhaul_core::limits`).
#[napi(object)]
pub struct BindingLimits {
    pub streams: BindingBounds,
    pub block_size: BindingBounds,
    pub pool_buffers: BindingBounds,
    pub readers: BindingBounds,
    pub processors: BindingBounds,
    pub workers: BindingBounds,
    pub writers: BindingBounds,
    pub timeout_seconds: BindingBounds,
    pub resume_ttl_seconds: BindingBounds,
    pub max_transfers: BindingBounds,
    pub max_connections: BindingBounds,
    pub max_per_peer: BindingBounds,
    pub memory: BindingBounds,
}

/// The engine's defaults and limits, in one table.
#[napi(object)]
pub struct BindingDefaults {
    pub send: BindingSendDefaults,
    pub serve: BindingServeDefaults,
    pub get: BindingGetDefaults,
    pub limits: BindingLimits,
}
