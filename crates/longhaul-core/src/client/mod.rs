//! The client side of everything but a push (which is `sender::send`): the handshake every
//! connection starts with, the requests a connection can repeat (LIST, READV, STATS), pull
//! (`get`) and third-party copy (`copy`).

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::place::placement::{allowed_cpus, Placement};
use crate::pool::Pool;
use crate::session::progress::Progress;
use crate::session::recv::{Receive, ResumeParams, SessionParams};
use crate::sys::net;
use crate::sys::state_dir::StateDir;
use crate::sys::tls::ClientTls;
use crate::vfile::index::{Index, Kind};
use crate::wire::auth::{self, Secret};
use crate::wire::frame::{self, Limits, ListEntry, Msg, Segment, SegmentResult, SummaryMsg};

/// What the node said at HELLO_OK.
#[derive(Clone, Copy, Debug)]
pub struct Hello {
    pub features: u64,
    pub limits: Limits,
}

/// HELLO, HELLO_OK and, when the node asks for it, AUTH / AUTH_OK. A client that holds a token
/// insists that the node prove it holds it too, so a node that skips authentication cannot
/// pose as the real one.
/// `features` are those the client wants for this connection (FEATURE_RESUME only for a push
/// that should resume).
pub fn handshake(sock: &mut TcpStream, secret: Option<&Secret>, features: u64) -> Result<Hello> {
    let ours = auth::nonce()?;
    frame::write_msg(sock, &Msg::Hello { min: frame::VERSION_MIN, max: frame::VERSION_MAX, features, nonce: ours })?;
    let (features, limits, wants_auth, theirs) = match frame::expect_msg(sock, 0)? {
        Msg::HelloOk { features, limits, auth, nonce, .. } => (features, limits, auth, nonce),
        Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
        m => return Err(Error::Protocol(format!("expected HELLO_OK, got {:?}", m.frame_type()))),
    };
    match (wants_auth, secret) {
        (false, None) => {}
        (false, Some(_)) => {
            return Err(Error::Auth("a token was given but the node does not authenticate; it may not be the node you meant"))
        }
        (true, None) => return Err(Error::Auth("the node requires a token: set LONGHAUL_TOKEN or pass a token file")),
        (true, Some(s)) => {
            frame::write_msg(sock, &Msg::Auth { mac: s.client_proof(&ours, &theirs) })?;
            match frame::expect_msg(sock, 0)? {
                Msg::AuthOk { mac } if Secret::check(&s.node_proof(&ours, &theirs), &mac) => {}
                Msg::AuthOk { .. } => return Err(Error::Auth("the node could not prove it holds the token")),
                Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
                m => return Err(Error::Protocol(format!("expected AUTH_OK, got {:?}", m.frame_type()))),
            }
        }
    }
    Ok(Hello { features, limits })
}

/// Connects (over TLS when `tls` is given) and shakes hands, with `timeout` for each reply,
/// asking for `features` (a subset of FEATURES).
pub fn open(addr: &str, secret: Option<&Secret>, tls: Option<&ClientTls>, timeout: Duration, features: u64) -> Result<(TcpStream, Hello)> {
    let mut sock = net::connect(addr, timeout, tls)?;
    sock.set_read_timeout(Some(timeout)).map_err(Error::net("setting a timeout"))?;
    sock.set_write_timeout(Some(timeout)).map_err(Error::net("setting a timeout"))?;
    let hello = handshake(&mut sock, secret, features)?;
    Ok((sock, hello))
}

/// What a connection for requests (LIST, READV, STATS) asks for.
const REQUEST_FEATURES: u64 = frame::FEATURE_XXH3;

/// Opens a control connection for a pull or a copy, asking for whole-file verification when
/// `verify_full` (refusing a node that does not offer it), and for resume when `resume` (a pull
/// resumes only where the node offers it).
fn open_transfer(
    addr: &str,
    secret: Option<&Secret>,
    tls: Option<&ClientTls>,
    timeout: Duration,
    verify_full: bool,
    resume: bool,
) -> Result<(TcpStream, Hello)> {
    let mut wanted = frame::FEATURE_XXH3;
    if verify_full {
        wanted |= frame::FEATURE_VERIFY_FULL;
    }
    if resume {
        wanted |= frame::FEATURE_RESUME;
    }
    let (sock, mut hello) = open(addr, secret, tls, timeout, wanted)?;
    if verify_full && hello.features & frame::FEATURE_VERIFY_FULL == 0 {
        return Err(Error::Protocol("the node does not verify whole files (verify: full)".into()));
    }
    hello.features &= wanted;
    Ok((sock, hello))
}

/// One segment of a vectored read, as the caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub path: Vec<u8>,
    pub offset: u64,
    pub len: u32,
}

/// A connection for requests that can follow one another: LIST, READV, STATS. A request the
/// node refuses (a limit, a missing path) comes back as that error and the connection stays
/// usable; a broken connection fails every later request with the same error kind.
pub struct Connection {
    sock: TcpStream,
    hello: Hello,
}

impl Connection {
    pub fn open(addr: &str, secret: Option<&Secret>, tls: Option<&ClientTls>, timeout: Duration) -> Result<Connection> {
        let (sock, hello) = open(addr, secret, tls, timeout, REQUEST_FEATURES)?;
        Ok(Connection { sock, hello })
    }

    pub fn limits(&self) -> Limits {
        self.hello.limits
    }

    fn reply(&mut self, max: u32) -> Result<Msg> {
        match frame::expect_msg(&mut self.sock, max)? {
            Msg::Error { code, message } => Err(Error::remote(&code, &message)),
            m => Ok(m),
        }
    }

    /// Lists a directory (its entries, not recursive) or names a single file.
    pub fn list(&mut self, path: &[u8]) -> Result<Vec<ListEntry>> {
        frame::write_msg(&mut self.sock, &Msg::List { path: path.to_vec() })?;
        let mut out = Vec::new();
        loop {
            match self.reply(0)? {
                Msg::Listing { last, entries } => {
                    out.extend(entries);
                    if last {
                        return Ok(out);
                    }
                }
                m => return Err(Error::Protocol(format!("expected LISTING, got {:?}", m.frame_type()))),
            }
        }
    }

    pub fn stats(&mut self) -> Result<String> {
        frame::write_msg(&mut self.sock, &Msg::Stats)?;
        match self.reply(0)? {
            Msg::StatsOk { json } => Ok(json),
            m => Err(Error::Protocol(format!("expected STATS_OK, got {:?}", m.frame_type()))),
        }
    }

    /// Reads every segment in one request and one response. The outer error is the request's
    /// (a limit, a broken connection); each segment has its own result (a missing file, a
    /// path outside the root). A segment past the end of its file comes back short, as pread.
    pub fn readv(&mut self, segments: &[ReadRequest]) -> Result<Vec<Result<Vec<u8>>>> {
        let (data, results) = self.readv_raw(segments)?;
        let mut at = 0;
        Ok(results
            .iter()
            .zip(segments)
            .map(|(r, s)| {
                let piece = data[at..at + r.len as usize].to_vec();
                at += r.len as usize;
                if r.code.is_empty() {
                    Ok(piece)
                } else {
                    Err(Error::remote(&r.code, &format!("segment of {:?}", String::from_utf8_lossy(&s.path))))
                }
            })
            .collect())
    }

    /// As `readv`, without cutting: every segment's bytes in one buffer, in order, and each
    /// segment's length and status code.
    pub fn readv_raw(&mut self, segments: &[ReadRequest]) -> Result<(Vec<u8>, Vec<SegmentResult>)> {
        let mut paths: Vec<Vec<u8>> = Vec::new();
        let mut table = std::collections::HashMap::new();
        let mut segs = Vec::with_capacity(segments.len());
        for s in segments {
            let file = *table.entry(s.path.as_slice()).or_insert_with(|| {
                paths.push(s.path.clone());
                paths.len() - 1
            });
            let file =
                u16::try_from(file).map_err(|_| Error::Limit { what: "files in one readv", limit: u16::MAX as u64, got: file as u64 })?;
            segs.push(Segment { file, offset: s.offset, len: s.len });
        }
        frame::write_msg(&mut self.sock, &Msg::Readv { paths, segments: segs })?;
        let results = match self.reply(0)? {
            Msg::ReadvData { results } => results,
            m => return Err(Error::Protocol(format!("expected READV_DATA, got {:?}", m.frame_type()))),
        };
        if results.len() != segments.len() {
            return Err(Error::Protocol(format!("READV_DATA has {} results for {} segments", results.len(), segments.len())));
        }
        for (r, s) in results.iter().zip(segments) {
            if r.len > s.len {
                return Err(Error::Protocol(format!("a readv segment came back longer ({}) than asked ({})", r.len, s.len)));
            }
        }
        // The data of all segments in one read.
        let total: usize = results.iter().map(|r| r.len as usize).sum();
        let mut data = vec![0u8; total];
        self.sock.read_exact(&mut data).map_err(Error::net("receiving readv data"))?;
        Ok((data, results))
    }

    pub fn close(self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

#[derive(Clone, Debug)]
pub struct GetOptions {
    pub streams: u16,
    pub block_size: u32,
    pub writers: usize,
    pub secret: Option<Secret>,
    /// TLS to the node and how to trust it; `None` is plaintext.
    pub tls: Option<ClientTls>,
    pub timeout: Duration,
    pub progress_interval: Duration,
    /// Ask the node for whole-file BLAKE3 digests and check every file read back against them.
    pub verify_full: bool,
    /// Keep a journal under `dest/.longhaul` and, on the next pull of the same thing, ask the
    /// node (PLAN) for only the blocks it lacks, keeping files already there with the same size
    /// and mtime; `false` fetches everything.
    pub resume: bool,
    /// Give pulled files and directories the setuid and setgid bits the node's index asks for.
    pub keep_setid: bool,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            streams: crate::session::send::DEFAULT_STREAMS,
            block_size: crate::session::send::DEFAULT_BLOCK_SIZE,
            writers: crate::node::ServeOptions::default().writers,
            secret: None,
            tls: None,
            timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(100),
            verify_full: false,
            resume: true,
            // Off: trusting a node with data is not trusting it to make set-id programs here.
            keep_setid: false,
        }
    }
}

/// Pulls `path` (under the node's root) into the local directory `dest`. The node sends with
/// its engine over data connections this side opens; this side receives as a node would.
pub fn get(
    addr: &str,
    path: &[u8],
    dest: &Path,
    opts: &GetOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SummaryMsg> {
    if opts.streams == 0 {
        return Err(Error::Usage("streams must be at least 1".into()));
    }
    match get_once(addr, path, dest, opts, cancel, on_progress) {
        // A file that changed under the node while it read it: once more, from the node's
        // fresh scan (as `send` does); the node's ERROR says why in its message.
        Err(Error::Remote { code, message }) if code == "E_SOURCE_CHANGED" && crate::session::send::resendable(&message) => {
            get_once(addr, path, dest, opts, cancel, on_progress)
        }
        r => r,
    }
}

/// One attempt of `get`.
fn get_once(
    addr: &str,
    path: &[u8],
    dest: &Path,
    opts: &GetOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SummaryMsg> {
    let started = Instant::now();
    let (mut control, hello) = open_transfer(addr, opts.secret.as_ref(), opts.tls.as_ref(), opts.timeout, opts.verify_full, opts.resume)?;
    let streams = opts.streams.min(hello.limits.max_streams);
    let block_size = opts.block_size.min(hello.limits.max_block);
    frame::write_msg(&mut control, &Msg::Get { path: path.to_vec(), streams, block_size })?;
    let (streams, block_size, encoded) = match frame::expect_msg(&mut control, 1 << 30)? {
        Msg::Manifest { streams: s, block_size: b, index, .. } if (1..=streams).contains(&s) && b == block_size => (s, b, index),
        Msg::Manifest { streams: s, block_size: b, .. } => {
            return Err(Error::Protocol(format!("the node offered {s} streams of {b}-byte blocks for {streams} of {block_size}")))
        }
        Msg::Error { code, message } => return Err(Error::remote(&code, &message)),
        m => return Err(Error::Protocol(format!("expected MANIFEST, got {:?}", m.frame_type()))),
    };
    let index = Index::decode(&encoded)?;
    let resume = hello.features & frame::FEATURE_RESUME != 0;
    let (total, files_total) = (index.total(), index.count(Kind::File) as u64);
    // DEST is the user's own choice, made as named; everything under it is made through its
    // descriptor, never by path (a hostile node names the paths under it).
    std::fs::create_dir_all(dest).map_err(|e| Error::io("create", dest.as_os_str().as_encoded_bytes(), e))?;
    let dest_fd = rustix::fs::open(
        dest,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("open", dest.as_os_str().as_encoded_bytes(), e.into()))?;
    // The journal under DEST/.longhaul/journal, which no entry of the pulled tree may name
    // (Receive::prepare checks it too; here before the journal's directories are made).
    crate::session::recv::check_state_dir(b"", &index)?;
    let journal = if resume {
        let state = StateDir::open(dest_fd.as_fd())?;
        let dir = Arc::new(state.journal_dir()?);
        Some((state, dir))
    } else {
        None
    };
    let token = auth::random_bytes::<{ frame::TOKEN_LEN }>()?;
    let pool = Pool::new(block_size as usize, 2 * streams as usize + opts.writers)?;
    let counter = Arc::new(AtomicU64::new(0));
    let params = SessionParams {
        dest: Vec::new(),
        streams,
        block_size,
        writers: opts.writers,
        token,
        placement: Placement::unpinned(&allowed_cpus(), "a pulling client does not pin".into()),
        idle_timeout: opts.timeout,
        throttle: Default::default(),
        counter: Arc::clone(&counter),
        fsync: Default::default(),
        verify_full: opts.verify_full,
        resume: journal.as_ref().map(|(_, dir)| ResumeParams {
            dir: Arc::clone(dir),
            key: crate::session::recv::journal::key(path, block_size, &encoded),
            use_previous: true,
        }),
        keep_setid: opts.keep_setid,
        space: None,
    };
    let recv = match Receive::prepare(dest_fd.as_fd(), index, params, pool) {
        Ok(r) => r,
        Err(e) => {
            // A tree refused before anything arrived (a conflict) leaves no journal directory.
            if let Some((state, dir)) = journal {
                drop(dir);
                state.remove_if_empty(dest_fd.as_fd());
            }
            return Err(e);
        }
    };
    frame::write_msg(&mut control, &Msg::Ready { token, streams })?;
    if resume {
        frame::write_msg(&mut control, &Msg::Plan { nblocks: recv.nblocks(), ranges: recv.plan() })?;
    }
    let mut data = Vec::with_capacity(streams as usize);
    for i in 0..streams {
        let attach = net::connect(addr, opts.timeout, opts.tls.as_ref()).and_then(|mut s| {
            frame::write_msg(&mut s, &Msg::DataHello { token, stream: i })?;
            Ok(s)
        });
        match attach {
            Ok(s) => data.push(s),
            Err(e) => {
                recv.fail(e);
                return recv.wait_and_finish();
            }
        }
    }
    control.set_read_timeout(None).map_err(Error::net("setting a timeout"))?;
    let finished = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        for sock in data {
            let r = Arc::clone(&recv);
            s.spawn(move || r.run_stream(sock));
        }
        recv.watch_control(&control)?;
        s.spawn(|| {
            let mut last = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    recv.fail(Error::Cancelled);
                }
                if last.elapsed() >= opts.progress_interval {
                    last = Instant::now();
                    let done = counter.load(Ordering::Relaxed);
                    on_progress(&Progress {
                        bytes_done: done,
                        bytes_total: total,
                        files_done: 0,
                        files_total,
                        seconds: started.elapsed().as_secs_f64(),
                        per_stream_bytes: Vec::new(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let r = recv.wait_and_finish();
        finished.store(true, Ordering::Relaxed);
        r
    });
    let reply = match &result {
        Ok(summary) => Msg::Summary(summary.clone()),
        Err(e) => Msg::error(e),
    };
    let _ = frame::write_msg(&mut control, &reply);
    let _ = control.shutdown(Shutdown::Both);
    let summary = result?;
    // The journal went with the transfer; its directories go too when nothing else is in them.
    if let Some((state, dir)) = journal {
        drop(dir);
        state.remove_if_empty(dest_fd.as_fd());
    }
    on_progress(&Progress {
        bytes_done: total,
        bytes_total: total,
        files_done: files_total,
        files_total,
        seconds: started.elapsed().as_secs_f64(),
        per_stream_bytes: Vec::new(),
    });
    Ok(summary)
}

/// Asks the node at `from` to push `src` (under its root) to the node at `to`, into `dest`
/// there. The data goes from node to node; this side sees progress and the outcome (the
/// receiving node's summary). With `verify_full` the pushing node sends whole-file digests and
/// the receiving one checks every file read back.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    from: &str,
    src: &[u8],
    to: &str,
    dest: &[u8],
    streams: u16,
    block_size: u32,
    secret: Option<&Secret>,
    tls: Option<&ClientTls>,
    timeout: Duration,
    verify_full: bool,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SummaryMsg> {
    let started = Instant::now();
    let (mut control, _) = open_transfer(from, secret, tls, timeout, verify_full, false)?;
    frame::write_msg(&mut control, &Msg::Copy { to: to.to_owned(), src: src.to_vec(), dest: dest.to_vec(), streams, block_size })?;
    // The node reports progress every 100 ms; a node silent for the timeout is stuck.
    let watcher = control.try_clone().map_err(Error::net("cloning a socket"))?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    let _ = watcher.shutdown(Shutdown::Both);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = loop {
            match frame::expect_msg(&mut control, 0) {
                Ok(Msg::CopyProgress { bytes_done, bytes_total, files_done, files_total }) => on_progress(&Progress {
                    bytes_done,
                    bytes_total,
                    files_done,
                    files_total,
                    seconds: started.elapsed().as_secs_f64(),
                    per_stream_bytes: Vec::new(),
                }),
                Ok(Msg::Summary(summary)) => break Ok(summary),
                Ok(Msg::Error { code, message }) => break Err(Error::remote(&code, &message)),
                Ok(m) => break Err(Error::Protocol(format!("expected COPY_PROGRESS or SUMMARY, got {:?}", m.frame_type()))),
                Err(_) if cancel.load(Ordering::Relaxed) => break Err(Error::Cancelled),
                Err(e) => break Err(e),
            }
        };
        done.store(true, Ordering::Relaxed);
        r
    })
}
