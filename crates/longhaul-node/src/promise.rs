use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::bindgen_prelude::*;

use crate::error::{coded, from_napi, rejection};

/// Runs `work` on a thread of its own and settles a promise with its result, converted by
/// `convert` on the JS thread (where Buffers and objects are made). An error rejects the
/// promise with a JS error whose `code` is the engine's; a panic in `work` or in `convert` is
/// E_PANIC.
pub fn spawn_promise<'env, T, R, W, C>(env: &'env Env, name: &'static str, work: W, convert: C) -> crate::error::Result<Object<'env>>
where
    T: Send + 'static,
    R: ToNapiValue + 'static,
    W: FnOnce() -> longhaul_core::Result<T> + Send + 'static,
    C: FnOnce(T) -> R + Send + 'static,
{
    let (deferred, promise) = env.create_deferred().map_err(from_napi)?;
    std::thread::Builder::new()
        .name(format!("lh-{name}"))
        .spawn(move || {
            let result = longhaul_core::panic::catch(name, work);
            deferred.resolve(move |env| {
                let converted = result
                    .and_then(|v| catch_unwind(AssertUnwindSafe(|| convert(v))).map_err(|p| longhaul_core::panic::from_payload(name, p)));
                converted.map_err(|e| rejection(env, &e))
            })
        })
        .map_err(|e| coded("E_IO", format!("cannot start a thread: {e}")))?;
    Ok(promise)
}
