use napi::bindgen_prelude::*;

use crate::error::to_napi;

/// Runs `work` on a thread of its own and settles a promise with its result, converted by
/// `convert` on the JS thread (where Buffers and objects are made).
pub fn spawn_promise<'env, T, R, W, C>(env: &'env Env, name: &'static str, work: W, convert: C) -> Result<Object<'env>>
where
    T: Send + 'static,
    R: ToNapiValue + 'static,
    W: FnOnce() -> longhaul_core::Result<T> + Send + 'static,
    C: FnOnce(T) -> R + Send + 'static,
{
    let (deferred, promise) = env.create_deferred()?;
    std::thread::Builder::new()
        .name(format!("lh-{name}"))
        .spawn(move || match longhaul_core::panic::catch(name, work) {
            Ok(v) => deferred.resolve(move |_| Ok(convert(v))),
            Err(e) => deferred.reject(to_napi(&e)),
        })
        .map_err(|e| Error::new(Status::GenericFailure, format!("E_IO: cannot start a thread: {e}")))?;
    Ok(promise)
}
