use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::*;

use crate::cancel::BindingCancel;
use crate::convert::{client_tls, filter, millis, opt_u16, rate, secret};
use crate::error::{usage, usage_error};
use crate::progress::{Forwarder, ProgressFn};
use crate::promise::spawn_promise;
use crate::types::{BindingPlan, BindingSendOptions, BindingSendSummary};
use longhaul_core::place::placement::{CoreSpec, PinMode};
use longhaul_core::sys::congestion::Congestion;
use longhaul_core::{Digest, SchedulerKind, Verify};

/// Sends a file or a directory tree to a node. Runs on the engine's own threads; the promise
/// settles from there. Progress events are coalesced to one per `progressIntervalMs`.
#[napi(ts_return_type = "Promise<BindingSendSummary>")]
pub fn send<'env>(
    env: &'env Env,
    options: BindingSendOptions,
    cancel: &BindingCancel,
    #[napi(ts_arg_type = "((progress: BindingProgress) => void) | undefined | null")] on_progress: Option<ProgressFn>,
) -> crate::error::Result<Object<'env>> {
    let opts = core_options(&options)?;
    let source = PathBuf::from(options.source);
    let (address, dest) = (options.address, options.dest.into_bytes());
    let flag = cancel.flag.clone();
    let forwarder = Forwarder::new(on_progress, opts.progress_interval);
    spawn_promise(
        env,
        "send",
        move || longhaul_core::send(&source, &address, &dest, &opts, &flag, &|p| forwarder.forward(p)),
        BindingSendSummary::from,
    )
}

/// A dry run of `send`: the node's plan (what it would receive, update and, with `delete`,
/// remove); nothing is sent or written.
#[napi(ts_return_type = "Promise<BindingPlan>")]
pub fn send_plan<'env>(env: &'env Env, options: BindingSendOptions, cancel: &BindingCancel) -> crate::error::Result<Object<'env>> {
    let opts = longhaul_core::SendOptions { dry_run: true, ..core_options(&options)? };
    let source = PathBuf::from(options.source);
    let (address, dest) = (options.address, options.dest.into_bytes());
    let flag = cancel.flag.clone();
    spawn_promise(env, "sendPlan", move || longhaul_core::client::plan(&source, &address, &dest, &opts, &flag), BindingPlan::from)
}

/// Sends `size` bytes of generated data to the node at `options.address`, which checks and
/// discards them (`longhaul bench`); `source` and `dest` are not used, `verify` may also be
/// "none" (no checksum on either end). The summary's
/// `receiverCpuSeconds` is the node's CPU time for it.
#[napi(ts_return_type = "Promise<BindingSendSummary>")]
pub fn bench<'env>(
    env: &'env Env,
    mut options: BindingSendOptions,
    size: f64,
    cancel: &BindingCancel,
    #[napi(ts_arg_type = "((progress: BindingProgress) => void) | undefined | null")] on_progress: Option<ProgressFn>,
) -> crate::error::Result<Object<'env>> {
    if !(size.is_finite() && size >= 1.0 && size.fract() == 0.0) {
        return Err(usage_error(format!("size must be a whole number of bytes, at least 1, not {size}")));
    }
    // "none" is a bench's alone (BLOCK_RAW): `Verify::parse`, shared with `send`, refuses it.
    let unchecked = options.verify.as_deref() == Some("none");
    if unchecked {
        options.verify = None;
    }
    let mut opts = core_options(&options)?;
    if unchecked {
        opts.verify = Verify::None;
    }
    let address = options.address;
    let flag = cancel.flag.clone();
    let forwarder = Forwarder::new(on_progress, opts.progress_interval);
    spawn_promise(
        env,
        "bench",
        move || longhaul_core::bench(&address, size as u64, &opts, &flag, &|p| forwarder.forward(p)),
        BindingSendSummary::from,
    )
}

/// The engine's options from the binding's (shared by `send`, `send_plan` and `bench`).
fn core_options(options: &BindingSendOptions) -> crate::error::Result<longhaul_core::SendOptions> {
    let defaults = longhaul_core::SendOptions::default();
    Ok(longhaul_core::SendOptions {
        streams: opt_u16(options.streams, "streams", defaults.streams)?,
        streams_auto: options.streams_auto.unwrap_or(options.streams.is_none()),
        block_size: options.block_size.unwrap_or(defaults.block_size),
        pool_buffers: options.pool_buffers.unwrap_or(0) as usize,
        readers: options.readers.unwrap_or(0) as usize,
        progress_interval: options.progress_interval_ms.map_or(defaults.progress_interval, |ms| Duration::from_millis(ms as u64)),
        timeline_interval: millis(options.timeline_interval_ms, defaults.timeline_interval),
        scheduler: options.scheduler.as_deref().map(SchedulerKind::parse).transpose().map_err(usage)?.unwrap_or(defaults.scheduler),
        digest: options.digest.as_deref().map(Digest::parse).transpose().map_err(usage)?.unwrap_or(defaults.digest),
        cores: options.cores_io.as_deref().map(|io| CoreSpec::parse(io, options.cores_other.as_deref())).transpose().map_err(usage)?,
        pin: options.pin.as_deref().map(PinMode::parse).transpose().map_err(usage)?.unwrap_or(defaults.pin),
        io_timeout: millis(options.io_timeout_ms, defaults.io_timeout),
        processors: options.processors.unwrap_or(0) as usize,
        workers: options.workers.unwrap_or(0) as usize,
        secret: secret(options.token.as_deref())?,
        tls: client_tls(options.tls_pin.as_deref(), options.tls_ca.as_deref())?,
        resume: options.resume.unwrap_or(defaults.resume),
        checksum: options.checksum.unwrap_or(defaults.checksum),
        owner: options.owner.unwrap_or(defaults.owner),
        group: options.group.unwrap_or(defaults.group),
        xattrs: options.xattrs.unwrap_or(defaults.xattrs),
        verify: options.verify.as_deref().map(Verify::parse).transpose().map_err(usage)?.unwrap_or(defaults.verify),
        congestion: options.congestion.as_deref().map(Congestion::parse).transpose().map_err(usage)?.unwrap_or_default(),
        filter: filter(options.filters.as_deref())?,
        rate: rate(options.rate)?,
        delete: options.delete.unwrap_or(defaults.delete),
        force: options.force.unwrap_or(defaults.force),
        ..defaults
    })
}
