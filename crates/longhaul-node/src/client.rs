use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use longhaul_core::client::{self, Connection, GetOptions, ReadRequest};
use napi::bindgen_prelude::*;

use crate::cancel::BindingCancel;
use crate::convert::{client_tls, millis, opt_u16, rate, secret, verify_full};
use crate::error::{usage_error, Result};
use crate::progress::{Forwarder, ProgressFn};
use crate::promise::spawn_promise;
use crate::types::{
    BindingConnectOptions, BindingCopyOptions, BindingGetOptions, BindingListEntry, BindingReadv, BindingReceived, BindingSegment,
};

/// Milliseconds for connecting and for each reply: a client's default is `GetOptions`'.
fn timeout(ms: Option<u32>) -> Duration {
    millis(ms, GetOptions::default().timeout)
}

/// A connection to a node for requests that follow one another (list, readv, stats). One
/// request at a time: calls made together queue on the connection.
#[napi]
pub struct BindingClient {
    conn: Arc<Mutex<Option<Connection>>>,
    max_segments: u32,
    max_segment: u32,
}

#[napi(ts_return_type = "Promise<BindingClient>")]
pub fn connect<'env>(env: &'env Env, options: BindingConnectOptions) -> Result<Object<'env>> {
    let secret = secret(options.token.as_deref())?;
    let tls = client_tls(options.tls_pin.as_deref(), options.tls_ca.as_deref())?;
    let t = timeout(options.timeout_ms);
    spawn_promise(
        env,
        "connect",
        move || Connection::open(&options.address, secret.as_ref(), tls.as_ref(), t),
        |conn| {
            let limits = conn.limits();
            BindingClient {
                conn: Arc::new(Mutex::new(Some(conn))),
                max_segments: limits.max_readv_segments,
                max_segment: limits.max_readv_segment,
            }
        },
    )
}

fn with_conn<T>(conn: &Mutex<Option<Connection>>, f: impl FnOnce(&mut Connection) -> longhaul_core::Result<T>) -> longhaul_core::Result<T> {
    let mut g = conn.lock().expect("connection lock");
    match g.as_mut() {
        Some(c) => f(c),
        None => Err(longhaul_core::Error::Closed("the connection")),
    }
}

#[napi]
impl BindingClient {
    /// Segments the node accepts in one readv.
    #[napi(getter)]
    pub fn max_readv_segments(&self) -> u32 {
        self.max_segments
    }

    /// Bytes the node accepts in one readv segment.
    #[napi(getter)]
    pub fn max_readv_segment(&self) -> u32 {
        self.max_segment
    }

    #[napi(ts_return_type = "Promise<BindingListEntry[]>")]
    pub fn list<'env>(&self, env: &'env Env, path: String) -> Result<Object<'env>> {
        let conn = Arc::clone(&self.conn);
        spawn_promise(
            env,
            "list",
            move || with_conn(&conn, |c| c.list(path.as_bytes())),
            |entries| entries.into_iter().map(BindingListEntry::from).collect::<Vec<_>>(),
        )
    }

    #[napi(ts_return_type = "Promise<BindingReadv>")]
    pub fn readv<'env>(&self, env: &'env Env, segments: Vec<BindingSegment>) -> Result<Object<'env>> {
        let mut reqs = Vec::with_capacity(segments.len());
        for s in segments {
            if !(s.offset.is_finite() && s.offset >= 0.0 && s.offset.fract() == 0.0) {
                return Err(usage_error(format!("offset {} is not a whole number of bytes", s.offset)));
            }
            reqs.push(ReadRequest { path: s.path.into_bytes(), offset: s.offset as u64, len: s.length });
        }
        let conn = Arc::clone(&self.conn);
        spawn_promise(
            env,
            "readv",
            move || with_conn(&conn, |c| c.readv_raw(&reqs)),
            |(data, results)| BindingReadv {
                data: data.into(),
                lengths: results.iter().map(|r| r.len).collect(),
                codes: results.into_iter().map(|r| r.code).collect(),
            },
        )
    }

    /// The node's statistics as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn stats<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let conn = Arc::clone(&self.conn);
        spawn_promise(env, "stats", move || with_conn(&conn, |c| c.stats()), |json| json)
    }

    #[napi]
    pub fn close(&self) {
        if let Some(c) = self.conn.lock().ok().and_then(|mut g| g.take()) {
            c.close();
        }
    }
}

/// Pulls a file or a tree from a node.
#[napi(ts_return_type = "Promise<BindingReceived>")]
pub fn get<'env>(
    env: &'env Env,
    options: BindingGetOptions,
    cancel: &BindingCancel,
    #[napi(ts_arg_type = "((progress: BindingProgress) => void) | undefined | null")] on_progress: Option<ProgressFn>,
) -> Result<Object<'env>> {
    let defaults = GetOptions::default();
    let opts = GetOptions {
        streams: opt_u16(options.streams, "streams", defaults.streams)?,
        block_size: options.block_size.unwrap_or(defaults.block_size),
        writers: options.writers.map_or(defaults.writers, |n| n.max(1) as usize),
        secret: secret(options.token.as_deref())?,
        tls: client_tls(options.tls_pin.as_deref(), options.tls_ca.as_deref())?,
        timeout: timeout(options.timeout_ms),
        progress_interval: options.progress_interval_ms.map_or(defaults.progress_interval, |ms| Duration::from_millis(ms as u64)),
        verify_full: verify_full(options.verify.as_deref())?,
        resume: options.resume.unwrap_or(defaults.resume),
        keep_setid: options.keep_setid.unwrap_or(defaults.keep_setid),
        rate: rate(options.rate)?,
        checksum: options.checksum.unwrap_or(defaults.checksum),
        owner: options.owner.unwrap_or(defaults.owner),
        group: options.group.unwrap_or(defaults.group),
        xattrs: options.xattrs.unwrap_or(defaults.xattrs),
    };
    let forwarder = Forwarder::new(on_progress, opts.progress_interval);
    let flag = cancel.flag.clone();
    let dest = PathBuf::from(options.dest);
    let started = Instant::now();
    spawn_promise(
        env,
        "get",
        move || client::get(&options.address, options.path.as_bytes(), &dest, &opts, &flag, &|p| forwarder.forward(p)),
        move |s| BindingReceived::new(&s, started.elapsed().as_secs_f64()),
    )
}

/// Third-party copy: asks `from` to push `src` to `to`; the data never passes through here.
#[napi(ts_return_type = "Promise<BindingReceived>")]
pub fn copy<'env>(
    env: &'env Env,
    options: BindingCopyOptions,
    cancel: &BindingCancel,
    #[napi(ts_arg_type = "((progress: BindingProgress) => void) | undefined | null")] on_progress: Option<ProgressFn>,
) -> Result<Object<'env>> {
    let defaults = longhaul_core::SendOptions::default();
    let streams = opt_u16(options.streams, "streams", defaults.streams)?;
    let block_size = options.block_size.unwrap_or(defaults.block_size);
    let secret = secret(options.token.as_deref())?;
    let tls = client_tls(options.tls_pin.as_deref(), options.tls_ca.as_deref())?;
    let t = timeout(options.timeout_ms);
    let full = verify_full(options.verify.as_deref())?;
    let interval = options.progress_interval_ms.map_or(defaults.progress_interval, |ms| Duration::from_millis(ms as u64));
    let forwarder = Forwarder::new(on_progress, interval);
    let flag = cancel.flag.clone();
    let started = Instant::now();
    spawn_promise(
        env,
        "copy",
        move || {
            let opts = client::CopyOptions { streams, block_size, secret, tls, timeout: t, verify_full: full };
            client::copy(&options.from, options.src.as_bytes(), &options.to, options.dest.as_bytes(), &opts, &flag, &|p| {
                forwarder.forward(p)
            })
        },
        move |s| BindingReceived::new(&s, started.elapsed().as_secs_f64()),
    )
}
