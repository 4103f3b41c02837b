//! A vectored read (`Client.readv`).

/// One segment of a vectored read.
#[napi(object)]
pub struct BindingSegment {
    pub path: String,
    pub offset: f64,
    pub length: u32,
}

/// A readv's answer: every segment's bytes in one buffer, in order, and each segment's length
/// and error code ("" when it succeeded).
#[napi(object)]
pub struct BindingReadv {
    pub data: napi::bindgen_prelude::Buffer,
    pub lengths: Vec<u32>,
    pub codes: Vec<String>,
}
