//! Engine errors cross as JS errors whose message starts with the stable code; the SDK turns
//! that into `LonghaulError.code`.

pub fn to_napi(e: &longhaul_core::Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{}: {}", e.code(), e))
}

pub fn usage(e: longhaul_core::Error) -> napi::Error {
    to_napi(&e)
}
