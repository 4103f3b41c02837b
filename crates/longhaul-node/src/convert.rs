//! Conversions between core's types and the `Binding*` types JavaScript sees, and the checks
//! of option values the engine's own types cannot express (a number of bytes given as a JS
//! number, a u16 given as a u32). No engine logic: a rule found here belongs in core.

use std::collections::BTreeMap;
use std::time::Duration;

use longhaul_core::client::GetOptions;
use longhaul_core::limits::{self, Bounds};
use longhaul_core::node::state::TransferRow;
use longhaul_core::place::placement::{PinMode, Placement};
use longhaul_core::place::topology::format_cpu_list;
use longhaul_core::sched::timeline::Sample;
use longhaul_core::sys::tls::ClientTls;
use longhaul_core::wire::auth::Secret;
use longhaul_core::wire::frame::ListEntry;
use longhaul_core::{Digest, FastPaths, NodeStats, Progress, SendOptions, SendSummary, ServeOptions};

use crate::error::{usage, usage_error, Result};
use crate::types::*;

impl From<&Progress> for BindingProgress {
    fn from(p: &Progress) -> Self {
        BindingProgress {
            bytes_done: p.bytes_done as f64,
            bytes_total: p.bytes_total as f64,
            bytes_moved: p.bytes_moved as f64,
            files_done: p.files_done as f64,
            files_total: p.files_total as f64,
            files_in_flight: p.files_in_flight as f64,
            seconds: p.seconds,
            per_stream_bytes: p.per_stream_bytes.iter().map(|&b| b as f64).collect(),
        }
    }
}

impl From<FastPaths> for BindingFastPaths {
    fn from(f: FastPaths) -> Self {
        BindingFastPaths { sendfile: f.sendfile, sendfile_fallback: f.sendfile_fallback, mlock: f.mlock, mlock_fallback: f.mlock_fallback }
    }
}

impl From<&Sample> for BindingSample {
    fn from(s: &Sample) -> Self {
        BindingSample {
            ms: s.ms,
            reading: s.reading,
            processing: s.processing,
            sending: s.sending,
            writing: s.writing,
            blocked: s.blocked,
            blocked_pool: s.blocked_on[0],
            blocked_queue: s.blocked_on[1],
            blocked_socket: s.blocked_on[2],
            blocked_rate: s.blocked_on[3],
            blocked_input: s.blocked_on[4],
            queued: s.queued,
        }
    }
}

fn placement(p: Placement, threads: Vec<longhaul_core::ThreadPin>) -> BindingPlacement {
    BindingPlacement {
        reason: p.reason,
        pinned: p.pin,
        fallback: p.fallback,
        disk_cpus: format_cpu_list(&p.disk_cpus),
        net_cpus: format_cpu_list(&p.net_cpus),
        other_cpus: format_cpu_list(&p.other_cpus),
        disk_node: p.disk_node.map(|n| n as u32),
        net_node: p.net_node.map(|n| n as u32),
        threads: threads.into_iter().map(|t| BindingThreadPin { name: t.name, tid: t.tid, cpu: t.cpu as u32, error: t.error }).collect(),
    }
}

impl From<SendSummary> for BindingSendSummary {
    fn from(s: SendSummary) -> Self {
        BindingSendSummary {
            bytes: s.bytes as f64,
            files: s.files as f64,
            dirs: s.dirs as f64,
            symlinks: s.symlinks as f64,
            blocks: s.blocks as f64,
            seconds: s.seconds,
            scan_seconds: s.scan_seconds,
            first_byte_seconds: s.first_byte_seconds,
            receiver_seconds: s.receiver.micros as f64 / 1e6,
            receiver_cpu_seconds: s.receiver.cpu_us.map(|us| us as f64 / 1e6),
            receiver: s.receiver.disk.as_ref().map(|d| {
                let secs = |us: u64| us as f64 / 1e6;
                BindingReceiverDisk {
                    writers: d.writers as u32,
                    bytes_written: d.bytes_written as f64,
                    write_seconds: secs(d.write_us),
                    fsync_seconds: secs(d.fsync_us),
                    writer_busy_seconds: secs(d.busy_us),
                    writer_idle_seconds: secs(d.idle_us),
                    queue_full_seconds: secs(d.queue_full_us),
                    pool_wait_seconds: secs(d.pool_us),
                    rate_wait_seconds: secs(d.rate_us),
                }
            }),
            streams: s.streams as u32,
            streams_reason: s.streams_reason,
            per_stream_bytes: s.per_stream_bytes.iter().map(|&b| b as f64).collect(),
            sendfile_blocks: s.sendfile_blocks as f64,
            sendfile_bytes: s.sendfile_bytes as f64,
            packed_blocks: s.packed_blocks as f64,
            packed_bytes: s.packed_bytes as f64,
            fast_paths: s.fast_paths.into(),
            skipped: s.skipped.into_iter().map(|(path, why)| BindingSkipped { path, reason: why.to_owned() }).collect(),
            excluded: s.excluded as f64,
            hard_links: s.hard_links as f64,
            sparse_files: s.sparse_files as f64,
            owner_not_kept: s.owner_not_kept as f64,
            owner_not_kept_why: if s.owner_not_kept > 0 { s.owner_not_kept_why.to_owned() } else { String::new() },
            xattrs_not_kept: s.xattrs_not_kept as f64,
            xattrs_not_kept_why: if s.xattrs_not_kept > 0 { s.xattrs_not_kept_why.to_owned() } else { String::new() },
            scheduler: BindingScheduler {
                requested: s.scheduler.requested.to_owned(),
                used: s.scheduler.used.to_owned(),
                reason: s.scheduler.reason,
                probe: s
                    .scheduler
                    .probe
                    .into_iter()
                    .map(|(k, bps)| BindingProbe { scheduler: k.to_owned(), bytes_per_second: bps })
                    .collect(),
            },
            placement: placement(s.placement, s.pinned),
            timeline: s.timeline.iter().map(BindingSample::from).collect(),
            digest: digest_name(s.digest).to_owned(),
            resumed_blocks: s.resumed_blocks as f64,
            resumed_bytes: s.resumed_bytes as f64,
            hole_bytes: s.hole_bytes as f64,
            endgame_blocks: s.endgame_blocks as f64,
            endgame_bytes: s.endgame_bytes as f64,
            unchanged: s.unchanged.map(|u| BindingUnchanged { files: u.files as f64, bytes: u.bytes as f64, by: u.by.to_owned() }),
            verify: s.verify.name().to_owned(),
            verified_files: s.receiver.verified as f64,
            congestion: s.congestion,
            congestion_note: s.congestion_note,
            round_trips: s.round_trips,
            deleted: s.deleted.as_ref().map(deleted),
            network: s
                .network
                .iter()
                .map(|n| BindingStreamNet {
                    rtt_us: n.rtt_us,
                    min_rtt_us: n.min_rtt_us,
                    cwnd: n.cwnd,
                    mss: n.mss,
                    retrans_segs: n.retrans_segs,
                    bytes_sent: n.bytes_sent as f64,
                    bytes_retrans: n.bytes_retrans as f64,
                    delivery_rate: n.delivery_rate as f64,
                    busy_us: n.busy_us as f64,
                    rwnd_limited_us: n.rwnd_limited_us as f64,
                    sndbuf_limited_us: n.sndbuf_limited_us as f64,
                })
                .collect(),
            network_timeline: s
                .network_timeline
                .iter()
                .map(|n| BindingNetSample {
                    ms: n.us as f64 / 1e3,
                    stream: u32::from(n.stream),
                    rtt_us: n.tcp.rtt_us,
                    cwnd: n.tcp.cwnd,
                    retrans_segs: n.tcp.retrans_segs,
                    bytes_sent: n.tcp.bytes_sent as f64,
                    delivery_rate: n.tcp.delivery_rate as f64,
                    busy_us: n.tcp.busy_us as f64,
                    rwnd_limited_us: n.tcp.rwnd_limited_us as f64,
                    sndbuf_limited_us: n.tcp.sndbuf_limited_us as f64,
                })
                .collect(),
            verdict: BindingVerdict { limit: s.verdict.limit.to_owned(), evidence: s.verdict.evidence },
        }
    }
}

impl BindingReceived {
    pub fn new(r: &longhaul_core::client::Received, seconds: f64) -> Self {
        let s = &r.summary;
        BindingReceived {
            bytes: s.bytes as f64,
            bytes_total: r.bytes_total as f64,
            files: s.files as f64,
            dirs: s.dirs as f64,
            symlinks: s.symlinks as f64,
            blocks: s.blocks as f64,
            receiver_seconds: s.micros as f64 / 1e6,
            seconds,
            verified_files: s.verified as f64,
            owner_not_kept: r.owner_not_kept.0 as f64,
            owner_not_kept_why: if r.owner_not_kept.0 > 0 { r.owner_not_kept.1.to_owned() } else { String::new() },
            xattrs_not_kept: r.xattrs_not_kept.0 as f64,
            xattrs_not_kept_why: if r.xattrs_not_kept.0 > 0 { r.xattrs_not_kept.1.to_owned() } else { String::new() },
        }
    }
}

impl From<ListEntry> for BindingListEntry {
    fn from(e: ListEntry) -> Self {
        BindingListEntry {
            name: String::from_utf8_lossy(&e.name).into_owned(),
            kind: match e.kind {
                1 => "dir",
                2 => "file",
                3 => "symlink",
                _ => "other",
            }
            .into(),
            mode: e.mode,
            size: e.size as f64,
            mtime_ns: e.mtime_ns as f64,
        }
    }
}

fn row(r: TransferRow) -> BindingTransferRow {
    BindingTransferRow {
        id: r.id as f64,
        peer: r.peer,
        direction: r.direction.to_owned(),
        path: r.path,
        bytes_done: r.bytes_done as f64,
        bytes_total: r.bytes_total as f64,
        files_total: r.files_total as f64,
        streams: r.streams as u32,
        started_unix_ms: r.started_unix_ms as f64,
        seconds: r.seconds,
        rate: r.rate,
        outcome: r.outcome.map(str::to_owned),
        code: r.code,
        message: r.message,
        deleted: r.deleted as f64,
    }
}

impl From<NodeStats> for BindingNodeStats {
    fn from(s: NodeStats) -> Self {
        BindingNodeStats {
            root: s.root,
            listen: s.listen,
            auth: s.auth,
            capacity: s.capacity.map(|c| c as f64),
            free: s.free.map(|f| f as f64),
            stored: s.stored as f64,
            reserved: s.reserved as f64,
            parts: s.parts as f64,
            parts_bytes: s.parts_bytes as f64,
            active: s.active as f64,
            completed: s.completed as f64,
            failed: s.failed as f64,
            bytes_in: s.bytes_in as f64,
            bytes_out: s.bytes_out as f64,
            pool: BindingPoolStats {
                buffers: s.pool.buffers as f64,
                available: s.pool.available as f64,
                buffer_bytes: s.pool.buffer_bytes as f64,
                locked: s.pool.locked,
            },
            memory: BindingMemoryStats { budget: s.memory.budget as f64, held: s.memory.held as f64 },
            limits: s
                .limits
                .into_iter()
                .map(|l| BindingLimitStats {
                    scope: l.scope.to_owned(),
                    peer: l.peer,
                    rate: l.rate as f64,
                    passed: l.passed as f64,
                    utilisation: l.utilisation,
                })
                .collect(),
            peers: s
                .peers
                .into_iter()
                .map(|p| BindingPeerStats { peer: p.peer, bytes_in: p.bytes_in as f64, bytes_out: p.bytes_out as f64 })
                .collect(),
            errors: s.errors.into_iter().map(|(code, n)| (code, n as f64)).collect::<BTreeMap<_, _>>(),
            readv: BindingReadvStats {
                requests: s.readv.requests as f64,
                segments: s.readv.segments as f64,
                bytes: s.readv.bytes as f64,
                reads: s.readv.reads as f64,
            },
            connections: BindingConnectionStats {
                open: s.connections.open as f64,
                handshaking: s.connections.handshaking as f64,
                max: s.connections.max as f64,
                max_per_peer: s.connections.max_per_peer as f64,
                refused: s.connections.refused as f64,
                evicted: s.connections.evicted as f64,
            },
            transfers: s.transfers.into_iter().map(row).collect(),
            recent: s.recent.into_iter().map(row).collect(),
            last_placement: s.last_placement,
            files_linked: s.files_linked as f64,
            files_renamed: s.files_renamed as f64,
            last_file_creation: s.last_file_creation,
            congestion: s.congestion,
            congestion_note: s.congestion_note,
        }
    }
}

fn bounds(b: Bounds) -> BindingBounds {
    BindingBounds { min: b.min as f64, max: b.max as f64 }
}

fn ms(d: Duration) -> f64 {
    d.as_millis() as f64
}

/// The engine's defaults (core's `Default` impls) and the bounds of every option.
pub fn defaults() -> BindingDefaults {
    let (send, serve, get) = (SendOptions::default(), ServeOptions::default(), GetOptions::default());
    BindingDefaults {
        send: BindingSendDefaults {
            streams: send.streams as u32,
            block_size: send.block_size,
            scheduler: send.scheduler.name().to_owned(),
            digest: digest_name(send.digest).to_owned(),
            pin: pin_name(send.pin).to_owned(),
            verify: send.verify.name().to_owned(),
            resume: send.resume,
            io_timeout_ms: ms(send.io_timeout),
            progress_interval_ms: ms(send.progress_interval),
            timeline_interval_ms: ms(send.timeline_interval),
            congestion: send.congestion.name().to_owned(),
        },
        serve: BindingServeDefaults {
            pool_buffers: serve.pool_buffers as u32,
            max_block: serve.max_block,
            writers: serve.writers as u32,
            max_streams: serve.max_streams as u32,
            max_transfers: serve.max_transfers as u32,
            max_connections: serve.max_connections as u32,
            max_per_peer: serve.max_per_peer as u32,
            memory: serve.memory as f64,
            handshake_timeout_ms: ms(serve.handshake_timeout),
            idle_timeout_ms: ms(serve.idle_timeout),
            resume_ttl_ms: ms(serve.resume_ttl),
            fsync: serve.fsync.name().to_owned(),
            pin: pin_name(serve.pin).to_owned(),
            keep_setid: serve.keep_setid,
            congestion: serve.congestion.name().to_owned(),
            bench: serve.bench,
        },
        get: BindingGetDefaults {
            streams: get.streams as u32,
            block_size: get.block_size,
            writers: get.writers as u32,
            timeout_ms: ms(get.timeout),
            progress_interval_ms: ms(get.progress_interval),
            resume: get.resume,
            keep_setid: get.keep_setid,
        },
        limits: BindingLimits {
            streams: bounds(limits::STREAMS),
            block_size: bounds(limits::BLOCK_SIZE),
            pool_buffers: bounds(limits::POOL_BUFFERS),
            readers: bounds(limits::READERS),
            processors: bounds(limits::PROCESSORS),
            workers: bounds(limits::WORKERS),
            writers: bounds(limits::WRITERS),
            timeout_seconds: bounds(limits::TIMEOUT_SECONDS),
            resume_ttl_seconds: bounds(limits::RESUME_TTL_SECONDS),
            max_transfers: bounds(limits::MAX_TRANSFERS),
            max_connections: bounds(limits::MAX_CONNECTIONS),
            max_per_peer: bounds(limits::MAX_PER_PEER),
            memory: bounds(limits::MEMORY),
        },
    }
}

fn pin_name(p: PinMode) -> &'static str {
    match p {
        PinMode::Auto => "auto",
        PinMode::Always => "always",
        PinMode::Never => "never",
    }
}

fn digest_name(d: Digest) -> &'static str {
    match d {
        Digest::None => "none",
        Digest::Blake3 => "blake3",
    }
}

/// A whole number of bytes given as a JS number.
pub fn whole(v: f64, name: &str) -> Result<u64> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 {
        Ok(v as u64)
    } else {
        Err(usage_error(format!("{name} must be a whole number of bytes, not {v}")))
    }
}

pub fn opt_u16(v: Option<u32>, name: &str, default: u16) -> Result<u16> {
    match v {
        None => Ok(default),
        Some(n) => u16::try_from(n).map_err(|_| usage_error(format!("{name} {n} is too large"))),
    }
}

/// Milliseconds, at least one, or `default`.
pub fn millis(ms: Option<u32>, default: Duration) -> Duration {
    ms.map_or(default, |ms| Duration::from_millis(ms.max(1) as u64))
}

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

/// `verify`: "block" (the default) or "full".
pub fn verify_full(v: Option<&str>) -> Result<bool> {
    Ok(v.map(longhaul_core::Verify::parse).transpose().map_err(usage)? == Some(longhaul_core::Verify::Full))
}

/// Filter rules from JS (`- PATTERN` / `+ PATTERN`).
pub fn filter(rules: Option<&[String]>) -> Result<longhaul_core::vfile::filter::Filter> {
    use longhaul_core::vfile::filter::{Filter, Rule};
    let rules: Vec<Rule> = rules.unwrap_or_default().iter().map(|l| Rule::parse(l)).collect();
    Filter::new(&rules).map_err(usage)
}

/// A rate in bytes per second from JS: a positive whole number, or none.
pub fn rate(r: Option<f64>) -> Result<Option<u64>> {
    match r {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 1.0 => Ok(Some(v as u64)),
        Some(v) => Err(usage_error(format!("rate must be at least 1 byte per second, got {v}"))),
    }
}

/// What `delete` removed, from the node's list.
pub fn deleted(l: &longhaul_core::session::mirror::Listed) -> BindingDeleted {
    BindingDeleted {
        files: l.tally.deleted_files as f64,
        dirs: l.tally.deleted_dirs as f64,
        bytes: l.tally.deleted_bytes as f64,
        paths: l.paths(longhaul_core::wire::frame::MARK_DELETE),
    }
}

impl From<longhaul_core::session::mirror::Planned> for BindingPlan {
    fn from(p: longhaul_core::session::mirror::Planned) -> Self {
        use longhaul_core::wire::frame::{MARK_NEW, MARK_UPDATE};
        let t = &p.plan.tally;
        BindingPlan {
            new_files: t.new_files as f64,
            new_bytes: t.new_bytes as f64,
            new_paths: p.plan.paths(MARK_NEW),
            changed_files: t.changed_files as f64,
            changed_bytes: t.changed_bytes as f64,
            changed_paths: p.plan.paths(MARK_UPDATE),
            unchanged_files: t.unchanged_files as f64,
            unchanged_bytes: t.unchanged_bytes as f64,
            deleted: p.delete.then(|| deleted(&p.plan)),
            bytes: p.bytes as f64,
            files: p.files as f64,
            dirs: p.dirs as f64,
            symlinks: p.symlinks as f64,
            excluded: p.excluded as f64,
            skipped: p.skipped.into_iter().map(|(path, why)| BindingSkipped { path, reason: why.to_owned() }).collect(),
            seconds: p.seconds,
            scan_seconds: p.scan_seconds,
            round_trips: p.round_trips,
        }
    }
}
