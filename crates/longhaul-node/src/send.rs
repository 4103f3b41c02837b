use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use crate::cancel::BindingCancel;
use crate::error::{panicked, to_napi, usage};
use crate::types::{BindingProgress, BindingSendOptions, BindingSendSummary};
use longhaul_core::placement::{CoreSpec, PinMode};
use longhaul_core::{Digest, SchedulerKind};

type ProgressFn = ThreadsafeFunction<BindingProgress, (), BindingProgress, Status, false, true>;

fn opt_u16(v: Option<u32>, name: &str, default: u16) -> Result<u16> {
    match v {
        None => Ok(default),
        Some(n) => u16::try_from(n).map_err(|_| Error::new(Status::InvalidArg, format!("E_USAGE: {name} {n} is too large"))),
    }
}

/// Sends a file or a directory tree to a node. Runs on the engine's own threads; the promise
/// settles from there. Progress events are coalesced to one per `progressIntervalMs`.
#[napi(ts_return_type = "Promise<BindingSendSummary>")]
pub fn send<'env>(
    env: &'env Env,
    options: BindingSendOptions,
    cancel: &BindingCancel,
    on_progress: Option<ProgressFn>,
) -> Result<Object<'env>> {
    let defaults = longhaul_core::SendOptions::default();
    let opts = longhaul_core::SendOptions {
        streams: opt_u16(options.streams, "streams", defaults.streams)?,
        block_size: options.block_size.unwrap_or(defaults.block_size),
        pool_buffers: options.pool_buffers.unwrap_or(0) as usize,
        readers: options.readers.unwrap_or(0) as usize,
        progress_interval: options.progress_interval_ms.map_or(defaults.progress_interval, |ms| Duration::from_millis(ms as u64)),
        timeline_interval: options.timeline_interval_ms.map_or(defaults.timeline_interval, |ms| Duration::from_millis(ms.max(1) as u64)),
        scheduler: options.scheduler.as_deref().map(SchedulerKind::parse).transpose().map_err(usage)?.unwrap_or(defaults.scheduler),
        digest: options.digest.as_deref().map(Digest::parse).transpose().map_err(usage)?.unwrap_or(defaults.digest),
        cores: options.cores_io.as_deref().map(|io| CoreSpec::parse(io, options.cores_other.as_deref())).transpose().map_err(usage)?,
        pin: options.pin.as_deref().map(PinMode::parse).transpose().map_err(usage)?.unwrap_or(defaults.pin),
        io_timeout: options.io_timeout_ms.map_or(defaults.io_timeout, |ms| Duration::from_millis(ms.max(1) as u64)),
        processors: options.processors.unwrap_or(0) as usize,
        workers: options.workers.unwrap_or(0) as usize,
        ..defaults
    };
    let source = PathBuf::from(options.source);
    let (address, dest) = (options.address, options.dest.into_bytes());
    let flag = cancel.flag.clone();
    let (deferred, promise) = env.create_deferred()?;
    std::thread::Builder::new()
        .name("lh-send".into())
        .spawn(move || {
            let interval = opts.progress_interval;
            let last = std::sync::Mutex::new(std::time::Instant::now() - interval);
            let forward = |p: &longhaul_core::Progress| {
                let Some(tsfn) = on_progress.as_ref() else { return };
                let mut l = last.lock().expect("progress lock");
                if l.elapsed() >= interval || p.bytes_done == p.bytes_total {
                    *l = std::time::Instant::now();
                    tsfn.call(BindingProgress::from(p), ThreadsafeFunctionCallMode::NonBlocking);
                }
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                longhaul_core::send(&source, &address, &dest, &opts, &flag, &forward)
            }));
            match outcome {
                Ok(Ok(summary)) => deferred.resolve(move |_| Ok(BindingSendSummary::from(summary))),
                Ok(Err(e)) => deferred.reject(to_napi(&e)),
                Err(_) => deferred.reject(panicked("send")),
            }
        })
        .map_err(|e| Error::new(Status::GenericFailure, format!("E_IO: cannot start the send thread: {e}")))?;
    Ok(promise)
}
