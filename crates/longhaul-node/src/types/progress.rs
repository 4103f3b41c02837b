//! A progress event.

/// A progress snapshot.
#[napi(object)]
pub struct BindingProgress {
    pub bytes_done: f64,
    pub bytes_total: f64,
    pub files_done: f64,
    pub files_total: f64,
    pub seconds: f64,
    pub per_stream_bytes: Vec<f64>,
}
