use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::*;

use crate::cancel::BindingCancel;
use crate::error::usage;
use crate::progress::{Forwarder, ProgressFn};
use crate::promise::spawn_promise;
use crate::types::{BindingSendOptions, BindingSendSummary};
use longhaul_core::place::placement::{CoreSpec, PinMode};
use longhaul_core::sys::tls::ClientTls;
use longhaul_core::wire::auth::Secret;
use longhaul_core::{Digest, SchedulerKind, Verify};

pub fn secret(token: Option<&str>) -> Result<Option<Secret>> {
    token.map(|t| Secret::from_token(t.as_bytes())).transpose().map_err(usage)
}

/// TLS for a client call: on when a fingerprint to pin or a CA file is given.
pub fn client_tls(pin: Option<&str>, ca: Option<&str>) -> Result<Option<ClientTls>> {
    if pin.is_none() && ca.is_none() {
        return Ok(None);
    }
    ClientTls::new(pin, ca.map(std::path::Path::new)).map(Some).map_err(usage)
}

pub fn opt_u16(v: Option<u32>, name: &str, default: u16) -> Result<u16> {
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
        secret: secret(options.token.as_deref())?,
        tls: client_tls(options.tls_pin.as_deref(), options.tls_ca.as_deref())?,
        resume: options.resume.unwrap_or(defaults.resume),
        verify: options.verify.as_deref().map(Verify::parse).transpose().map_err(usage)?.unwrap_or(defaults.verify),
        ..defaults
    };
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
