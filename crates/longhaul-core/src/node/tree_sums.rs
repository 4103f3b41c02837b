//! TREE_SUMS: a tree under the root walked and every regular file hashed on the node, for
//! `longhaul compare LOCAL HOST:PORT/PATH`. The answer streams as the walk goes, so the node
//! holds one directory's names and one part, never the whole listing, however large the tree.

use super::path::check_request_path;
use super::state::STATE_DIR;
use super::Inner;
use crate::error::{lossy, Error, Result};
use crate::sys::beneath;
use crate::sys::net;
use crate::wire::frame::{self, Msg, SumEntry, MAX_TREE_SUMS_ENTRIES, TREE_SUMS_PART_BYTES};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use std::ffi::OsStr;
use std::fs::File;
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

/// A part is sent before it grows past this, well under the control-frame limit (an entry is
/// at most ~8 KB: a path and a target of 4 KiB each).
const PART_BYTES: usize = 60_000;

/// The parts written so far and the one being filled.
struct Parts<'a> {
    inner: &'a Inner,
    sock: &'a TcpStream,
    part: Vec<SumEntry>,
    size: usize,
    hashed: u64,
    /// A part could not be written: the connection is gone, not just this request.
    broken: bool,
}

impl Parts<'_> {
    fn push(&mut self, e: SumEntry) -> Result<()> {
        let n = 1 + 2 + e.path.len() + 20 + 2 + e.target.len() + 33;
        if self.size + n > PART_BYTES || self.part.len() == MAX_TREE_SUMS_ENTRIES || self.hashed >= TREE_SUMS_PART_BYTES {
            self.flush(false)?;
        }
        self.size += n;
        self.hashed += e.size * e.digest.is_some() as u64;
        self.part.push(e);
        Ok(())
    }

    fn flush(&mut self, last: bool) -> Result<()> {
        // Each part under a deadline of its own: the time spent hashing before it is not the
        // client's, only a client that stops reading is cut.
        let sock = &mut net::Paced::new(self.sock, self.inner.opts.idle_timeout);
        let sent = frame::write_msg(sock, &Msg::TreeSumsPart { last, entries: std::mem::take(&mut self.part) });
        self.broken = sent.is_err();
        sent?;
        (self.size, self.hashed) = (0, 0);
        Ok(())
    }
}

/// Answers TREE_SUMS for `path`: the outer error is the connection's, the inner one the
/// request's (answered with ERROR, in place of the next part, by the control loop).
pub(super) fn tree_sums(inner: &Inner, sock: &TcpStream, path: &[u8]) -> Result<Result<()>> {
    let mut parts = Parts { inner, sock, part: Vec::new(), size: 0, hashed: 0, broken: false };
    match walk(inner, path, &mut parts) {
        Ok(()) => parts.flush(true).map(Ok),
        Err(e) if parts.broken => Err(e),
        Err(e) => Ok(Err(e)),
    }
}

fn walk(inner: &Inner, path: &[u8], parts: &mut Parts<'_>) -> Result<()> {
    if !path.is_empty() {
        check_request_path(path)?;
    }
    let root = inner.root_fd.as_fd();
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(k) => (&path[..k], &path[k + 1..]),
        None => (&path[..0], path),
    };
    let parent = beneath::open_dir(root, dir, beneath::root_refused)?;
    let name = if name.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(name) };
    let st = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| beneath::root_refused(path, e))?;
    match FileType::from_raw_mode(st.st_mode) {
        // Following it could leave the root; listing it would compare a link with a tree.
        FileType::Symlink => return Err(Error::PathEscape { path: lossy(path), why: "through a symlink" }),
        FileType::Directory => {}
        _ => {
            let e = entry(parent.as_fd(), name, Vec::new(), &st, dir, parts)?;
            return parts.push(e);
        }
    }
    // The path itself first, under the empty name: a client comparing it with a file sees a
    // directory, not nothing.
    let e = entry(parent.as_fd(), name, Vec::new(), &st, dir, parts)?;
    parts.push(e)?;
    // Directories still to list, relative to `path`; each opened beneath the root again, so a
    // directory swapped for a symlink meanwhile is refused, not followed.
    let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = dirs.pop() {
        let full = join(path, &rel);
        let d = beneath::open_dir(root, &full, beneath::root_refused)?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        for e in rustix::fs::Dir::read_from(&d).map_err(|e| Error::io("list", &full, e.into()))? {
            let e = e.map_err(|e| Error::io("list", &full, e.into()))?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." || (full.is_empty() && n == STATE_DIR.as_bytes()) {
                continue;
            }
            names.push(n.to_vec());
        }
        names.sort();
        for n in names {
            let sub = join(&rel, &n);
            // Gone since the directory was read: not there, as for a LIST.
            let Ok(st) = rustix::fs::statat(&d, OsStr::from_bytes(&n), AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                dirs.push(sub.clone());
            }
            let e = entry(d.as_fd(), OsStr::from_bytes(&n), sub, &st, &join(path, &rel), parts)?;
            parts.push(e)?;
        }
    }
    Ok(())
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = a.to_vec();
    if !p.is_empty() && !b.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

/// The entry `name` in `dir` (named `rel` in the answer, `shown` in errors): its target when a
/// symlink, its BLAKE3 when a regular file (opened without following a link: one put in its
/// place since the stat is refused, not read).
fn entry(dir: BorrowedFd<'_>, name: &OsStr, rel: Vec<u8>, st: &Stat, shown: &[u8], parts: &mut Parts<'_>) -> Result<SumEntry> {
    let ft = FileType::from_raw_mode(st.st_mode);
    let kind = match ft {
        FileType::Directory => 1,
        FileType::RegularFile => 2,
        FileType::Symlink => 3,
        _ => 4,
    };
    let shown = || join(shown, name.as_bytes());
    let mut e = SumEntry {
        path: rel,
        kind,
        mode: st.st_mode & 0o7777,
        size: if kind == 2 { st.st_size as u64 } else { 0 },
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        target: Vec::new(),
        digest: None,
    };
    match ft {
        FileType::Symlink => {
            e.target =
                rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|err| Error::io("readlink", shown(), err.into()))?.into_bytes();
        }
        FileType::RegularFile => {
            // O_NONBLOCK: a FIFO put in the file's place must not hold the open.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let f = File::from(rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|err| beneath::root_refused(&shown(), err))?);
            let now = rustix::fs::fstat(&f).map_err(|err| Error::io("stat", shown(), err.into()))?;
            if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile || now.st_size != st.st_size {
                return Err(Error::SourceChanged { path: lossy(&shown()), why: "changed while it was compared" });
            }
            // A part (empty if need be) every TREE_SUMS_PART_BYTES hashed: a file of many
            // gigabytes takes longer than the client waits for a reply.
            let tick = || parts.flush(false).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe));
            let d = crate::hash::blake3_file_ticking(&f, e.size, TREE_SUMS_PART_BYTES, tick).map_err(|err| match err.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::SourceChanged { path: lossy(&shown()), why: "shrank while it was hashed" },
                _ => Error::io("read", shown(), err),
            })?;
            e.digest = Some(d);
        }
        _ => {}
    }
    Ok(e)
}
