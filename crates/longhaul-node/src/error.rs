//! Engine errors cross typed: the JS error's `code` is the engine's stable code (`E_IO`), its
//! message the engine's message alone. napi-rs gives a thrown `Error<S>` the string of its
//! status `S` as `code`, so the status here is the code itself. Errors napi-rs raises on its own
//! (an argument of the wrong type) keep napi's status (`InvalidArg`), which the SDK reports as
//! E_INTERNAL.

use napi::bindgen_prelude::{Env, JsError};

/// The stable code an error crosses with.
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

pub type Error = napi::Error<Code>;
pub type Result<T> = napi::Result<T, Code>;

pub fn to_napi(e: &longhaul_core::Error) -> Error {
    Error::new(Code(e.code().to_owned()), e.to_string())
}

/// An error the binding raises itself, under one of the engine's codes.
pub fn coded(code: &str, message: String) -> Error {
    Error::new(Code(code.to_owned()), message)
}

/// E_USAGE: an option the binding itself refuses.
pub fn usage_error(message: String) -> Error {
    coded("E_USAGE", message)
}

/// For `map_err`: an engine error about an option.
pub fn usage(e: longhaul_core::Error) -> Error {
    to_napi(&e)
}

/// A failure of napi-rs itself (making a promise, a value), under napi's own status.
pub fn from_napi(e: napi::Error) -> Error {
    Error::new(Code(e.status.as_ref().to_owned()), e.reason)
}

/// The engine error as a JS error object with its code, made on the JS thread, for a promise
/// rejection: `Deferred::reject` takes napi's own status type only, while a rejection that
/// carries a JS object passes it through as it is.
pub fn rejection(env: Env, e: &longhaul_core::Error) -> napi::Error {
    napi::Error::from(JsError::from(to_napi(e)).into_unknown(env))
}

/// Runs a synchronous call into the engine on the JS thread: a panic becomes E_PANIC instead of
/// unwinding into Node (which aborts the process).
pub fn sync<T>(name: &'static str, f: impl FnOnce() -> longhaul_core::Result<T>) -> Result<T> {
    longhaul_core::panic::catch(name, f).map_err(|e| to_napi(&e))
}
