//! Engine errors cross as JS errors whose message starts with the stable code; the SDK turns
//! that into `LonghaulError.code`.

pub fn to_napi(e: &longhaul_core::Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{}: {}", e.code(), e))
}

/// Runs a synchronous call into the engine on the JS thread: a panic becomes E_PANIC instead of
/// unwinding into Node (which aborts the process).
pub fn sync<T>(name: &'static str, f: impl FnOnce() -> longhaul_core::Result<T>) -> napi::Result<T> {
    longhaul_core::panic::catch(name, f).map_err(|e| to_napi(&e))
}

pub fn usage(e: longhaul_core::Error) -> napi::Error {
    to_napi(&e)
}
