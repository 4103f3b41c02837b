//! The requests a control connection can repeat: LIST and READV (XRootD's kXR_readv envelope).

use super::path::check_request_path;
use super::state::STATE_DIR;
use super::Inner;
use crate::error::{lossy, Error, Result};
use crate::sys::beneath::{self, DirCache};
use crate::sys::net::{self};
use crate::wire::frame::{self, ListEntry, Msg, Segment, SegmentResult};
use rustix::fs::{Mode, OFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Runs of up to a quarter of this are gathered with pread into a staging buffer of this size
/// and sent in one write; longer runs go out with sendfile.
pub(super) const READV_STAGING: usize = 1 << 20;

#[derive(Default)]
pub(super) struct ReadvCounters {
    pub(super) requests: AtomicU64,
    pub(super) segments: AtomicU64,
    pub(super) bytes: AtomicU64,
    /// sendfile runs after coalescing.
    pub(super) reads: AtomicU64,
}

/// LIST: a directory's entries (sorted by name), or the one entry of a file or a link. The
/// path is opened beneath the root (no symlink on the way; the last component may be one,
/// which is listed, not followed), and each entry is looked at from its directory.
pub(super) fn list(inner: &Inner, sock: &mut TcpStream, path: &[u8]) -> Result<Result<()>> {
    if !path.is_empty() {
        if let Err(e) = check_request_path(path) {
            return Ok(Err(e));
        }
    }
    let entry = |name: Vec<u8>, st: &rustix::fs::Stat| {
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let kind = match ft {
            rustix::fs::FileType::Directory => 1,
            rustix::fs::FileType::RegularFile => 2,
            rustix::fs::FileType::Symlink => 3,
            _ => 4,
        };
        ListEntry {
            name,
            kind,
            mode: st.st_mode & 0o7777,
            size: if kind == 2 { st.st_size as u64 } else { 0 },
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        }
    };
    let nofollow = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
    let listed: Result<Vec<ListEntry>> = (|| {
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(k) => (&path[..k], &path[k + 1..]),
            None => (&path[..0], path),
        };
        let parent = beneath::open_dir(inner.root_fd.as_fd(), dir, beneath::root_refused)?;
        let name = if name.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(name) };
        let st = rustix::fs::statat(&parent, name, nofollow).map_err(|e| beneath::root_refused(path, e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            return Ok(vec![entry(name.as_bytes().to_vec(), &st)]);
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let d = rustix::fs::openat(&parent, name, flags, Mode::empty()).map_err(|e| beneath::root_refused(path, e))?;
        let mut entries = Vec::new();
        for e in rustix::fs::Dir::read_from(&d).map_err(|e| Error::io("list", path, e.into()))?.flatten() {
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." || (path.is_empty() && name == STATE_DIR.as_bytes()) {
                continue;
            }
            if let Ok(st) = rustix::fs::statat(&d, OsStr::from_bytes(name), nofollow) {
                entries.push(entry(name.to_vec(), &st));
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    })();
    let entries = match listed {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    // Parts of at most ~60 KB, under the control-frame limit. A listing of a large directory
    // is megabytes: written under the same progress deadline as a READV's answer.
    let sock = &mut net::Paced::new(sock, inner.opts.idle_timeout);
    let mut part = Vec::new();
    let mut size = 0;
    for e in entries {
        let n = 1 + 2 + e.name.len() + 20;
        if size + n > 60_000 {
            frame::write_msg(sock, &Msg::Listing { last: false, entries: std::mem::take(&mut part) })?;
            size = 0;
        }
        size += n;
        part.push(e);
    }
    frame::write_msg(sock, &Msg::Listing { last: true, entries: part })?;
    Ok(Ok(()))
}

/// READV: every segment answered in one READV_DATA, in order, each with its own status. The
/// request is checked whole before anything is sent, so a refusal leaves the connection in
/// step. Adjacent segments of a file are read as one run; small runs are gathered into one
/// write, large ones sent with sendfile.
pub(super) fn readv(inner: &Inner, sock: &mut TcpStream, peer: IpAddr, paths: &[Vec<u8>], segments: &[Segment]) -> Result<Result<()>> {
    if let Err(e) = crate::wire::readv::check(paths.len(), segments, &inner.limits()) {
        return Ok(Err(e));
    }
    // Each file is opened in its directory, opened beneath the root without following
    // symlinks (a symlink on the way, or as the file, is E_PATH_ESCAPE; nothing missing is
    // E_NOT_FOUND), so no lstat walk of the path comes first.
    let root = inner.root_fd.as_fd();
    let mut dirs = DirCache::default();
    let files: Vec<Result<(File, u64)>> = paths
        .iter()
        .map(|rel| {
            check_request_path(rel)?;
            let (dir, name) = dirs.parent(root, rel, beneath::root_refused)?;
            // O_NONBLOCK: a FIFO put in the root must not hold the open until a writer comes.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let f = File::from(rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| beneath::root_refused(rel, e))?);
            let m = f.metadata().map_err(|e| Error::io("stat", rel, e))?;
            if !m.is_file() {
                return Err(Error::BadPath { path: lossy(rel), why: "not a regular file" });
            }
            Ok((f, m.size()))
        })
        .collect();
    let results: Vec<SegmentResult> = segments
        .iter()
        .map(|s| match &files[s.file as usize] {
            Ok((_, size)) => SegmentResult { len: crate::wire::readv::available(s, *size), code: String::new() },
            Err(e) => SegmentResult { len: 0, code: e.code().to_owned() },
        })
        .collect();
    let total: u64 = results.iter().map(|r| r.len as u64).sum();
    let stop = AtomicBool::new(false);
    inner.throttle(peer).take(total, &stop);
    // A client that asks for gigabytes and stops reading is cut after the idle timeout
    // without progress (net::Paced), not after the kernel's restarted timeouts add up.
    let out = &mut net::Paced::new(sock, inner.opts.idle_timeout);
    out.send_header(&Msg::ReadvData { results: results.clone() }.encode()).map_err(Error::net("sending readv data"))?;
    // Small runs are gathered with pread into one staging buffer and leave in one write; a
    // large run goes out with sendfile. Either way each run is one read of the file.
    let mut staging: Vec<u8> = Vec::with_capacity(READV_STAGING);
    let flush = |staging: &mut Vec<u8>, out: &mut net::Paced| -> Result<()> {
        if !staging.is_empty() {
            out.write_all(staging).map_err(Error::net("sending readv data"))?;
            staging.clear();
        }
        Ok(())
    };
    let changed = |file: u16| Error::SourceChanged { path: lossy(&paths[file as usize]), why: "shrank during a readv" };
    let lens: Vec<u32> = results.iter().map(|r| r.len).collect();
    let runs = crate::wire::readv::plan(segments, &lens);
    // Counted before the bytes leave: a client that reads the node's stats right after its
    // answer arrived sees its request in them.
    let c = &inner.readv;
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.segments.fetch_add(segments.len() as u64, Ordering::Relaxed);
    c.bytes.fetch_add(total, Ordering::Relaxed);
    c.reads.fetch_add(runs.len() as u64, Ordering::Relaxed);
    inner.state.count_bytes(peer, 0, total);
    for run in &runs {
        let (f, _) = files[run.file as usize].as_ref().expect("a segment with bytes has its file");
        if run.len as usize <= READV_STAGING / 4 {
            if staging.len() + run.len as usize > READV_STAGING {
                flush(&mut staging, out)?;
            }
            let at = staging.len();
            staging.resize(at + run.len as usize, 0);
            std::os::unix::fs::FileExt::read_exact_at(f, &mut staging[at..], run.offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => changed(run.file),
                _ => Error::io("read", &paths[run.file as usize], e),
            })?;
        } else {
            flush(&mut staging, out)?;
            out.sendfile_all(f, run.offset, run.len as usize).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => changed(run.file),
                _ => Error::net("sending readv data")(e),
            })?;
        }
    }
    flush(&mut staging, out)?;
    Ok(Ok(()))
}
