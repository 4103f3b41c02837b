use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use longhaul_core::place::placement::{CoreSpec, PinMode};
use longhaul_core::sys::congestion::Congestion;
use longhaul_core::sys::tls::{self, ServerTls};
use longhaul_core::wire::auth::Secret;
use longhaul_core::{ServeOptions, Server};
use napi::bindgen_prelude::*;

use crate::convert::{client_tls, millis, whole};
use crate::error::{usage, usage_error, Result};
use crate::promise::spawn_promise;
use crate::types::{BindingNodeStats, BindingRefusal, BindingServeOptions};

/// A running storage node. Its threads are the engine's; `close()` stops it.
#[napi]
pub struct BindingServer {
    server: Arc<Mutex<Option<Server>>>,
    host: String,
    port: u32,
    root: String,
    tls_fingerprint: Option<String>,
    tls_self_signed: bool,
}

/// Starts a storage node listening on `host:port` that stores under `root`.
#[napi]
pub fn serve(options: BindingServeOptions) -> Result<BindingServer> {
    let defaults = ServeOptions::default();
    let host = options.host.unwrap_or_else(|| "127.0.0.1".into());
    let port = options.port.unwrap_or(0);
    if port > 65535 {
        return Err(usage_error(format!("port {port} is out of range")));
    }
    let listen = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut peer_rates = Vec::new();
    for p in options.peer_rates.unwrap_or_default() {
        let ip: IpAddr = p.peer.parse().map_err(|_| usage_error(format!("peer {:?} is not an IP address", p.peer)))?;
        peer_rates.push((ip, whole(p.rate, "a peer rate")?.max(1)));
    }
    let tls = match (options.tls.unwrap_or(false), options.tls_cert.as_deref(), options.tls_key.as_deref()) {
        (_, Some(cert), Some(key)) => Some(ServerTls::from_pem(Path::new(cert), Path::new(key)).map_err(usage)?),
        (_, Some(_), None) | (_, None, Some(_)) => {
            return Err(usage_error("--tls-cert and --tls-key (tlsCert, tlsKey) go together".to_owned()))
        }
        (true, None, None) => {
            let mut names = tls::default_names();
            if !names.contains(&host) && !host.is_empty() && host != "0.0.0.0" && host != "::" {
                names.push(host.clone());
            }
            Some(ServerTls::generate(names).map_err(usage)?)
        }
        (false, None, None) => None,
    };
    let tls_fingerprint = tls.as_ref().map(|t| t.fingerprint().to_owned());
    let tls_self_signed = tls.as_ref().is_some_and(|t| t.self_signed());
    let opts = ServeOptions {
        root: options.root.into(),
        listen,
        secret: options.token.as_deref().map(|t| Secret::from_token(t.as_bytes())).transpose().map_err(usage)?,
        open_remote: options.open_remote.unwrap_or(false),
        capacity: options.capacity.map(|c| whole(c, "capacity")).transpose()?,
        rescan: options.rescan.unwrap_or(false),
        rate: options.rate.map(|r| whole(r, "rate").map(|r| r.max(1))).transpose()?,
        peer_rates,
        max_transfers: options.max_transfers.map_or(defaults.max_transfers, |n| n.max(1) as usize),
        max_connections: options.max_connections.map_or(defaults.max_connections, |n| n.max(1) as usize),
        max_per_peer: options.max_per_peer.map_or(defaults.max_per_peer, |n| n.max(1) as usize),
        max_block: options.max_block.unwrap_or(defaults.max_block),
        pool_buffers: options.pool_buffers.map_or(defaults.pool_buffers, |n| n as usize),
        writers: options.writers.map_or(defaults.writers, |n| n as usize),
        max_streams: options
            .max_streams
            .map_or(Ok(defaults.max_streams), |n| u16::try_from(n).map_err(|_| usage_error(format!("maxStreams {n} is too large"))))?,
        cores: options.cores_io.as_deref().map(|io| CoreSpec::parse(io, options.cores_other.as_deref())).transpose().map_err(usage)?,
        pin: options.pin.as_deref().map(PinMode::parse).transpose().map_err(usage)?.unwrap_or(defaults.pin),
        handshake_timeout: millis(options.handshake_timeout_ms, defaults.handshake_timeout),
        idle_timeout: millis(options.idle_timeout_ms, defaults.idle_timeout),
        fsync: options
            .fsync
            .as_deref()
            .map(longhaul_core::session::recv::Fsync::parse)
            .transpose()
            .map_err(usage)?
            .unwrap_or(defaults.fsync),
        tls: tls.map(Arc::new),
        congestion: options.congestion.as_deref().map(Congestion::parse).transpose().map_err(usage)?.unwrap_or_default(),
        peer_tls: client_tls(options.peer_tls_pin.as_deref(), options.peer_tls_ca.as_deref())?,
        memory: options.memory.map_or(Ok(defaults.memory), |m| whole(m, "memory"))?,
        copy_to: options.copy_to.unwrap_or_default(),
        keep_setid: options.keep_setid.unwrap_or(defaults.keep_setid),
        bench: options.bench.unwrap_or(defaults.bench),
        resume_ttl: match options.resume_ttl_ms {
            None => defaults.resume_ttl,
            Some(ms) if ms.is_finite() && (1.0..9.0e15).contains(&ms) => Duration::from_millis(ms as u64),
            Some(ms) => return Err(usage_error(format!("resumeTtlMs must be at least 1 millisecond, not {ms}"))),
        },
        ..defaults
    };
    let server = crate::error::sync("serve", || Server::start(opts))?;
    let addr = server.local_addr();
    Ok(BindingServer {
        host: addr.ip().to_string(),
        port: addr.port() as u32,
        root: server.root().display().to_string(),
        tls_fingerprint,
        tls_self_signed,
        server: Arc::new(Mutex::new(Some(server))),
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

    /// The SHA-256 of the node's TLS certificate ("sha256:" and 64 hex digits), which clients
    /// pin; null without TLS.
    #[napi(getter)]
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.tls_fingerprint.clone()
    }

    /// Whether the TLS certificate was made at start (no tlsCert given).
    #[napi(getter)]
    pub fn tls_self_signed(&self) -> bool {
        self.tls_self_signed
    }

    /// The node's statistics and transfer table (what a STATS request is answered with, as
    /// an object); null once closed.
    #[napi]
    pub fn stats(&self) -> Result<Option<BindingNodeStats>> {
        let stats = crate::error::sync("stats", || Ok(self.server.lock().ok().and_then(|g| Some(g.as_ref()?.stats()))))?;
        Ok(stats.map(BindingNodeStats::from))
    }

    /// Refuses new transfers and waits up to `timeoutMs` for the running ones; resolves true
    /// if they all ended.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn drain<'env>(&self, env: &'env Env, timeout_ms: u32) -> Result<Object<'env>> {
        // The lock is held only to take the handle: a close() while this waits (a second
        // signal to a draining node) must not wait for the drain to end.
        let drainer = self.server.lock().ok().and_then(|g| Some(g.as_ref()?.drainer()));
        spawn_promise(env, "drain", move || Ok(drainer.is_none_or(|d| d.drain(Duration::from_millis(timeout_ms as u64)))), |done| done)
    }

    /// Connections refused in their handshake since the last call (failed logins: E_AUTH,
    /// E_TLS; handshakes that timed out), oldest first; empty once closed.
    #[napi]
    pub fn take_refusals(&self) -> Vec<BindingRefusal> {
        let taken = self.server.lock().ok().and_then(|g| Some(g.as_ref()?.take_refusals())).unwrap_or_default();
        taken.into_iter().map(|r| BindingRefusal { peer: r.peer, code: r.code, message: r.message, unix_ms: r.unix_ms as f64 }).collect()
    }

    /// Stops listening and fails the transfers in flight (their partial files are removed);
    /// returns the statistics as they were once every transfer had ended (so the owner can
    /// report how each ended), or null if already closed.
    #[napi]
    pub fn close(&self) -> Result<Option<BindingNodeStats>> {
        let server = self.server.lock().ok().and_then(|mut g| g.take());
        let stats = crate::error::sync("close", || {
            Ok(server.map(|mut s| {
                s.close();
                s.stats()
            }))
        })?;
        Ok(stats.map(BindingNodeStats::from))
    }
}
