use std::sync::Mutex;
use std::time::Duration;

use longhaul_core::{ServeOptions, Server};
use napi::bindgen_prelude::*;

use crate::error::{to_napi, usage};
use crate::types::{BindingServeOptions, BindingServerStats};
use longhaul_core::placement::{CoreSpec, PinMode};

/// A running storage node. Its threads are the engine's; `close()` stops it.
#[napi]
pub struct BindingServer {
    server: Mutex<Option<Server>>,
    host: String,
    port: u32,
    root: String,
}

/// Starts a storage node listening on `host:port` that stores under `root`.
#[napi]
pub fn serve(options: BindingServeOptions) -> Result<BindingServer> {
    let defaults = ServeOptions::default();
    let host = options.host.unwrap_or_else(|| "127.0.0.1".into());
    let port = options.port.unwrap_or(0);
    if port > 65535 {
        return Err(Error::new(Status::InvalidArg, format!("E_USAGE: port {port} is out of range")));
    }
    let listen = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let opts = ServeOptions {
        root: options.root.into(),
        listen,
        max_block: options.max_block.unwrap_or(defaults.max_block),
        pool_buffers: options.pool_buffers.map_or(defaults.pool_buffers, |n| n as usize),
        writers: options.writers.map_or(defaults.writers, |n| n as usize),
        max_streams: options.max_streams.map_or(Ok(defaults.max_streams), |n| {
            u16::try_from(n).map_err(|_| Error::new(Status::InvalidArg, format!("E_USAGE: maxStreams {n} is too large")))
        })?,
        cores: options.cores_io.as_deref().map(|io| CoreSpec::parse(io, options.cores_other.as_deref())).transpose().map_err(usage)?,
        pin: options.pin.as_deref().map(PinMode::parse).transpose().map_err(usage)?.unwrap_or(defaults.pin),
        handshake_timeout: options.handshake_timeout_ms.map_or(defaults.handshake_timeout, |ms| Duration::from_millis(ms.max(1) as u64)),
        idle_timeout: options.idle_timeout_ms.map_or(defaults.idle_timeout, |ms| Duration::from_millis(ms.max(1) as u64)),
        ..defaults
    };
    let server = Server::start(opts).map_err(|e| to_napi(&e))?;
    let addr = server.local_addr();
    Ok(BindingServer {
        host: addr.ip().to_string(),
        port: addr.port() as u32,
        root: server.root().display().to_string(),
        server: Mutex::new(Some(server)),
    })
}

#[napi]
impl BindingServer {
    #[napi(getter)]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The node's root, resolved to an absolute path.
    #[napi(getter)]
    pub fn root(&self) -> String {
        self.root.clone()
    }

    #[napi]
    pub fn stats(&self) -> Option<BindingServerStats> {
        let guard = self.server.lock().ok()?;
        let s = guard.as_ref()?;
        let st = s.stats();
        Some(BindingServerStats {
            active: st.active as f64,
            completed: st.completed as f64,
            failed: st.failed as f64,
            bytes_received: st.bytes_received as f64,
            pool_bytes: s.pool().bytes() as f64,
            pool_locked: s.pool().locked(),
            pool_lock_fallback: s.pool().lock_fallback().map(str::to_owned),
            last_placement: st.last_placement,
        })
    }

    /// Stops listening and fails the transfers in flight (their partial files are removed).
    #[napi]
    pub fn close(&self) {
        let server = self.server.lock().ok().and_then(|mut g| g.take());
        drop(server);
    }
}
