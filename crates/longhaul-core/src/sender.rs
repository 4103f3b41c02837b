//! The sending side of a transfer: scan → content index → MANIFEST → blocks over N streams.
//!
//! Threads (mdtmFTP's pipeline): `readers` disk-reader threads take block numbers from a shared
//! counter and prepare each block, and one network-sender thread per TCP stream writes prepared
//! blocks to its socket. A block that lies inside one file is hashed through a small scratch
//! buffer and then sent with sendfile (zero copy to the socket); a block that spans several files
//! (many small ones) is packed into a pooled buffer with one pread per piece. Prepared blocks
//! wait in a channel no longer than the pool, so memory is bounded by the pool.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Shutdown, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{lossy, Error, Result};
use crate::frame::{self, Msg, SummaryMsg};
use crate::hash::{xxh3, Xxh3};
use crate::index::{Index, Kind};
use crate::net;
use crate::pool::{Pool, PoolBuf};
use crate::probe;
use crate::scan::scan;
use crate::transfer::{FastPaths, Progress};

/// 4 MiB: large enough that per-block costs (a header, a syscall, a checksum finalisation)
/// vanish next to the copy, small enough that a block of small files stays in L3 cache.
pub const DEFAULT_BLOCK_SIZE: u32 = 4 << 20;
/// Chosen by measurement on the 2-core loopback machines (bench/RESULTS.md): beyond 2 streams
/// the extra threads only add CPU where the cores are already busy; 2 streams keep a writer on
/// the far side busy while one block is in flight on the other.
pub const DEFAULT_STREAMS: u16 = 2;
/// Reads through the sendfile path's checksum go through this much scratch per reader: small
/// enough to stay in L2 while it is hashed.
const HASH_CHUNK: usize = 256 << 10;

#[derive(Clone, Debug)]
pub struct SendOptions {
    pub streams: u16,
    pub block_size: u32,
    /// Buffers in the sender's pool; 0 picks `2 * streams + readers`.
    pub pool_buffers: usize,
    /// Disk-reader threads; 0 picks `min(streams, 4).max(2)`.
    pub readers: usize,
    pub scan_threads: usize,
    pub connect_timeout: Duration,
    pub progress_interval: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            streams: DEFAULT_STREAMS,
            block_size: DEFAULT_BLOCK_SIZE,
            pool_buffers: 0,
            readers: 0,
            scan_threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            connect_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_millis(100),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SendSummary {
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub blocks: u64,
    pub seconds: f64,
    pub scan_seconds: f64,
    pub streams: u16,
    pub per_stream_bytes: Vec<u64>,
    pub sendfile_blocks: u64,
    pub sendfile_bytes: u64,
    pub packed_blocks: u64,
    pub packed_bytes: u64,
    pub fast_paths: FastPaths,
    pub skipped: Vec<(String, &'static str)>,
    pub receiver: SummaryMsg,
}

enum Prepared {
    Sendfile { file: File, file_offset: u64, offset: u64, len: u32, hash: u64 },
    Packed { buf: PoolBuf, offset: u64, hash: u64 },
}

/// State shared by the threads of one transfer: the first failure wins and stops the others.
struct Run {
    stop: AtomicBool,
    failure: Mutex<Option<Error>>,
    sockets: Vec<TcpStream>,
    control: TcpStream,
}

impl Run {
    fn fail(&self, e: Error) {
        let mut f = self.failure.lock().expect("failure lock");
        if f.is_none() {
            *f = Some(e);
        }
        drop(f);
        self.halt();
    }
    fn halt(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            for s in &self.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Sends `source` (a file or a directory) to the node at `addr`, into `dest` under its root.
pub fn send(
    source: &Path,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SendSummary> {
    if opts.streams == 0 {
        return Err(Error::Usage("streams must be at least 1".into()));
    }
    if opts.block_size < 4096 || opts.block_size > (64 << 20) {
        return Err(Error::Usage(format!("block size {} is outside 4 KiB..=64 MiB", opts.block_size)));
    }
    if !dest.is_empty() {
        crate::index::check_path(dest)?;
    }
    let started = Instant::now();
    let scanned = scan(source, opts.scan_threads)?;
    let scan_seconds = started.elapsed().as_secs_f64();
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let index = &scanned.index;

    let mut control = net::connect(addr, opts.connect_timeout)?;
    frame::write_msg(&mut control, &Msg::Hello { min: frame::VERSION_MIN, max: frame::VERSION_MAX, features: frame::FEATURES })?;
    let limits = match frame::expect_msg(&mut control, 0)? {
        Msg::HelloOk { limits, .. } => limits,
        Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
        m => return Err(Error::Protocol(format!("expected HELLO_OK, got {:?}", m.frame_type()))),
    };
    if opts.block_size > limits.max_block {
        return Err(Error::Limit { what: "block size", limit: limits.max_block as u64, got: opts.block_size as u64 });
    }
    let encoded = index.encode();
    if encoded.len() as u64 > limits.max_manifest as u64 {
        return Err(Error::Limit { what: "content index size", limit: limits.max_manifest as u64, got: encoded.len() as u64 });
    }
    let streams = opts.streams.min(limits.max_streams).max(1);
    frame::write_msg(&mut control, &Msg::Manifest { dest: dest.to_vec(), streams, block_size: opts.block_size, index: encoded })?;
    let (token, streams) = match frame::expect_msg(&mut control, 0)? {
        Msg::Ready { token, streams } => (token, streams),
        Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
        m => return Err(Error::Protocol(format!("expected READY, got {:?}", m.frame_type()))),
    };

    let mut sockets = Vec::with_capacity(streams as usize);
    for i in 0..streams {
        let mut s = net::connect(addr, opts.connect_timeout)?;
        frame::write_msg(&mut s, &Msg::DataHello { token, stream: i })?;
        sockets.push(s);
    }

    let readers = if opts.readers == 0 { (streams as usize).clamp(2, 4) } else { opts.readers };
    let pool_buffers = if opts.pool_buffers == 0 { 2 * streams as usize + readers } else { opts.pool_buffers };
    let pool = Pool::new(opts.block_size as usize, pool_buffers)?;
    let sendfile = probe::sendfile();
    let fast_paths = FastPaths {
        sendfile: sendfile.is_ok(),
        sendfile_fallback: sendfile.err(),
        mlock: pool.locked(),
        mlock_fallback: pool.lock_fallback().map(str::to_owned),
    };

    let run = Run {
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        sockets: sockets.iter().map(|s| s.try_clone()).collect::<std::io::Result<_>>().map_err(Error::net("cloning a socket"))?,
        control: control.try_clone().map_err(Error::net("cloning a socket"))?,
    };
    let bs = opts.block_size as u64;
    let nblocks = index.total().div_ceil(bs);
    let next = AtomicU64::new(0);
    let per_stream: Vec<AtomicU64> = (0..streams).map(|_| AtomicU64::new(0)).collect();
    let counters = Counters::default();
    let block_done: Vec<AtomicBool> = (0..nblocks).map(|_| AtomicBool::new(false)).collect();
    let (tx, rx) = bounded::<Prepared>(pool_buffers);
    let data_ends: Vec<u64> = index.data_file_ends().collect();
    let files_total = index.count(Kind::File) as u64;
    let transfer_started = Instant::now();

    let ctx = ReadCtx {
        index,
        base: &scanned.base,
        pool: &pool,
        next: &next,
        nblocks,
        bs,
        sendfile: fast_paths.sendfile,
        counters: &counters,
        run: &run,
    };
    let reply = std::thread::scope(|s| {
        let mut workers = Vec::new();
        for _ in 0..readers {
            let tx = tx.clone();
            let ctx = &ctx;
            workers.push(s.spawn(move || reader(ctx, tx)));
        }
        drop(tx);
        for (i, sock) in sockets.iter().enumerate() {
            let (rx, run, per, block_done) = (rx.clone(), &run, &per_stream[i], &block_done);
            workers.push(s.spawn(move || stream_sender(sock, rx, run, per, block_done, bs)));
        }
        drop(rx);
        // The node reports errors (a full disk, a bad block) on the control connection while
        // blocks are still flowing; a watcher stops the transfer at once when one arrives.
        let (reply_tx, reply_rx) = bounded::<Result<Msg>>(1);
        let run_ref = &run;
        s.spawn(move || {
            let mut ctl = &run_ref.control;
            let msg = frame::expect_msg(&mut ctl, 0);
            if let Ok(Msg::Error { code, message }) = &msg {
                run_ref.fail(Error::remote(code, message));
            }
            let _ = reply_tx.send(msg);
        });

        let mut watermark = 0u64;
        let progress = |watermark: &mut u64| {
            while *watermark < nblocks && block_done[*watermark as usize].load(Ordering::Relaxed) {
                *watermark += 1;
            }
            let done_offset = (*watermark * bs).min(index.total());
            let per: Vec<u64> = per_stream.iter().map(|a| a.load(Ordering::Relaxed)).collect();
            Progress {
                bytes_done: per.iter().sum(),
                bytes_total: index.total(),
                files_done: data_ends.partition_point(|&e| e <= done_offset) as u64,
                files_total,
                seconds: transfer_started.elapsed().as_secs_f64(),
                per_stream_bytes: per,
            }
        };
        while workers.iter().any(|w| !w.is_finished()) {
            if cancel.load(Ordering::Relaxed) {
                run.fail(Error::Cancelled);
            }
            std::thread::sleep(opts.progress_interval.min(Duration::from_millis(20)));
            if !run.stopped() {
                on_progress(&progress(&mut watermark));
            }
        }
        for w in workers {
            if w.join().is_err() {
                run.fail(Error::Protocol("an engine thread panicked".into()));
            }
        }
        if !run.stopped() {
            let sent: u64 = per_stream.iter().map(|a| a.load(Ordering::Relaxed)).sum();
            if let Err(e) = frame::write_msg(&mut &run.control, &Msg::Done { blocks: nblocks, bytes: sent }) {
                run.fail(e);
            }
        }
        // Wait for the node's verdict, still honouring cancellation.
        loop {
            match reply_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(m) => break Some(m),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break None,
                Err(_) if cancel.load(Ordering::Relaxed) => {
                    run.fail(Error::Cancelled);
                    let _ = run.control.shutdown(Shutdown::Both);
                }
                Err(_) if run.stopped() => {
                    // Give the node a moment to explain a broken stream, then stop waiting.
                    if let Ok(m) = reply_rx.recv_timeout(Duration::from_secs(2)) {
                        break Some(m);
                    }
                    let _ = run.control.shutdown(Shutdown::Both);
                    break None;
                }
                Err(_) => {}
            }
        }
    });
    let _ = control.shutdown(Shutdown::Both);

    let remote = match reply {
        Some(Ok(Msg::Summary(s))) if !run.stopped() => Some(s),
        Some(Ok(Msg::Error { code, message })) => {
            run.fail(Error::remote(&code, &message));
            None
        }
        Some(Ok(m)) if !run.stopped() => {
            run.fail(Error::Protocol(format!("expected SUMMARY, got {:?}", m.frame_type())));
            None
        }
        Some(Err(e)) if !run.stopped() => {
            run.fail(e);
            None
        }
        _ => None,
    };
    if let Some(e) = run.failure.lock().expect("failure lock").take() {
        // A remote error explains a broken pipe better than the pipe does.
        return Err(e);
    }
    let receiver = remote.ok_or_else(|| Error::Protocol("the node closed the session without a summary".into()))?;
    let per_stream_bytes: Vec<u64> = per_stream.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    on_progress(&Progress {
        bytes_done: index.total(),
        bytes_total: index.total(),
        files_done: files_total,
        files_total,
        seconds: transfer_started.elapsed().as_secs_f64(),
        per_stream_bytes: per_stream_bytes.clone(),
    });
    Ok(SendSummary {
        bytes: index.total(),
        files: files_total,
        dirs: index.count(Kind::Dir) as u64,
        symlinks: index.count(Kind::Symlink) as u64,
        blocks: nblocks,
        seconds: started.elapsed().as_secs_f64(),
        scan_seconds,
        streams,
        per_stream_bytes,
        sendfile_blocks: counters.sendfile_blocks.load(Ordering::Relaxed),
        sendfile_bytes: counters.sendfile_bytes.load(Ordering::Relaxed),
        packed_blocks: counters.packed_blocks.load(Ordering::Relaxed),
        packed_bytes: counters.packed_bytes.load(Ordering::Relaxed),
        fast_paths,
        skipped: scanned.skipped,
        receiver,
    })
}

#[derive(Default)]
struct Counters {
    sendfile_blocks: AtomicU64,
    sendfile_bytes: AtomicU64,
    packed_blocks: AtomicU64,
    packed_bytes: AtomicU64,
}

struct ReadCtx<'a> {
    index: &'a Index,
    base: &'a PathBuf,
    pool: &'a Arc<Pool>,
    next: &'a AtomicU64,
    nblocks: u64,
    bs: u64,
    sendfile: bool,
    counters: &'a Counters,
    run: &'a Run,
}

fn reader(ctx: &ReadCtx<'_>, tx: Sender<Prepared>) {
    let mut scratch = Vec::new();
    while !ctx.run.stopped() {
        let b = ctx.next.fetch_add(1, Ordering::Relaxed);
        if b >= ctx.nblocks {
            return;
        }
        let offset = b * ctx.bs;
        let len = ctx.bs.min(ctx.index.total() - offset);
        match prepare(ctx, offset, len, &mut scratch) {
            Ok(p) => {
                if tx.send(p).is_err() {
                    return;
                }
            }
            Err(e) => return ctx.run.fail(e),
        }
    }
}

fn open_source(ctx: &ReadCtx<'_>, entry: usize) -> Result<(File, PathBuf)> {
    let rel = &ctx.index.entries()[entry].path;
    let path = ctx.base.join(OsStr::from_bytes(rel));
    match File::open(&path) {
        Ok(f) => Ok((f, path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::SourceChanged { path: lossy(rel), why: "deleted" }),
        Err(e) => Err(Error::io("open", rel, e)),
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64, rel: &[u8]) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::SourceChanged { path: lossy(rel), why: "shorter than when it was scanned" },
        _ => Error::io("read", rel, e),
    })
}

fn prepare(ctx: &ReadCtx<'_>, offset: u64, len: u64, scratch: &mut Vec<u8>) -> Result<Prepared> {
    let mut pieces = ctx.index.pieces(offset, len);
    let first = pieces.next().ok_or_else(|| Error::Index("a block maps to no file".into()))?;
    if ctx.sendfile && first.len == len {
        // One file holds the whole block: hash it through the scratch buffer, send it with
        // sendfile. (mmap would avoid the copy into scratch, but a file truncated by another
        // process while mapped raises SIGBUS and would kill the host process.)
        let (file, _) = open_source(ctx, first.entry)?;
        let rel = &ctx.index.entries()[first.entry].path;
        scratch.resize(HASH_CHUNK, 0);
        let mut h = Xxh3::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(HASH_CHUNK as u64) as usize;
            read_exact_at(&file, &mut scratch[..n], first.file_offset + done, rel)?;
            h.update(&scratch[..n]);
            done += n as u64;
        }
        ctx.counters.sendfile_blocks.fetch_add(1, Ordering::Relaxed);
        ctx.counters.sendfile_bytes.fetch_add(len, Ordering::Relaxed);
        return Ok(Prepared::Sendfile { file, file_offset: first.file_offset, offset, len: len as u32, hash: h.finish() });
    }
    let mut buf = ctx.pool.take(&ctx.run.stop)?;
    buf.set_len(len as usize);
    for p in std::iter::once(first).chain(pieces) {
        let (file, _) = open_source(ctx, p.entry)?;
        let rel = &ctx.index.entries()[p.entry].path;
        let at = p.range_offset as usize;
        read_exact_at(&file, &mut buf[at..at + p.len as usize], p.file_offset, rel)?;
    }
    let hash = xxh3(&buf);
    ctx.counters.packed_blocks.fetch_add(1, Ordering::Relaxed);
    ctx.counters.packed_bytes.fetch_add(len, Ordering::Relaxed);
    Ok(Prepared::Packed { buf, offset, hash })
}

fn stream_sender(sock: &TcpStream, rx: Receiver<Prepared>, run: &Run, sent: &AtomicU64, block_done: &[AtomicBool], bs: u64) {
    let mut blocks = 0u64;
    let mut bytes = 0u64;
    let result: Result<()> = (|| {
        for p in rx {
            if run.stopped() {
                return Ok(());
            }
            let (offset, len) = match &p {
                Prepared::Sendfile { offset, len, hash, file, file_offset } => {
                    let hdr = Msg::Block { offset: *offset, len: *len, xxh3: *hash }.encode();
                    net::send_header(sock, &hdr).map_err(Error::net("sending a block"))?;
                    net::sendfile_all(sock, file, *file_offset, *len as usize).map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => {
                            Error::SourceChanged { path: format!("stream offset {offset}"), why: "shorter than when it was scanned" }
                        }
                        _ => Error::net("sending a block")(e),
                    })?;
                    (*offset, *len as u64)
                }
                Prepared::Packed { buf, offset, hash } => {
                    let hdr = Msg::Block { offset: *offset, len: buf.len() as u32, xxh3: *hash }.encode();
                    net::send_header(sock, &hdr).map_err(Error::net("sending a block"))?;
                    net::write_all(sock, buf).map_err(Error::net("sending a block"))?;
                    (*offset, buf.len() as u64)
                }
            };
            drop(p);
            blocks += 1;
            bytes += len;
            sent.fetch_add(len, Ordering::Relaxed);
            block_done[(offset / bs) as usize].store(true, Ordering::Relaxed);
        }
        if run.stopped() {
            return Ok(());
        }
        frame::write_msg(&mut &*sock, &Msg::StreamEnd { blocks, bytes })
    })();
    if let Err(e) = result {
        if !run.stopped() {
            run.fail(e);
        }
    }
}
