//! A progress event.

/// A progress snapshot.
#[napi(object)]
pub struct BindingProgress {
    pub bytes_done: f64,
    pub bytes_total: f64,
    /// Bytes that travelled in this run (resumed and skipped bytes not counted).
    pub bytes_moved: f64,
    pub files_done: f64,
    pub files_total: f64,
    /// Files with blocks under way (0 where the side cannot tell: a pull, a copy).
    pub files_in_flight: f64,
    pub seconds: f64,
    pub per_stream_bytes: Vec<f64>,
}
