//! Opening what lies under a root directory one component at a time, following no symlink, and
//! the directory a thread last used, held open.
//!
//! Both ends of a transfer use it. The receiver makes every file, link and rename relative to
//! a directory opened this way, so a directory swapped for a symlink while the transfer runs
//! cannot lead a write outside the destination; the sender opens every source file this way, so
//! it cannot lead a read outside the source (a node serving a pull would otherwise send what a
//! link points to). Files of one directory come together in the index, so a thread opens each
//! directory once per run of its files instead of walking every file's whole path.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{lossy, Error, Result};

/// What a caller makes of a failed open: the path (relative to the root) and the errno.
/// `LOOP` or `NOTDIR` mean a component is no longer a directory (a symlink or a file now).
pub(crate) type Refusal = fn(&[u8], Errno) -> Error;

/// How a node names a failed open under its root (a pull's or a copy's source, a readv's
/// file): a symlink on the way (or swapped in after the path was checked) is an escape.
/// (O_DIRECTORY | O_NOFOLLOW on a symlink fails with NOTDIR, as a file on the way does.)
pub(crate) fn root_refused(path: &[u8], e: Errno) -> Error {
    match e {
        Errno::LOOP => Error::PathEscape { path: lossy(path), why: "through a symlink" },
        Errno::NOTDIR => Error::PathEscape { path: lossy(path), why: "through a symlink or a file" },
        Errno::NOENT => Error::NotFound { path: lossy(path) },
        e => Error::io("open", path, e.into()),
    }
}

/// Opens the directory `dir` (relative to `root`; empty for `root` itself) one component at a
/// time with O_NOFOLLOW: a symlink found on the way (put there after the tree was scanned or
/// checked) fails the open with `LOOP`, passed to `refused`, rather than being followed.
pub(crate) fn open_dir(root: BorrowedFd<'_>, dir: &[u8], refused: Refusal) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::openat(root, ".", flags, Mode::empty()).map_err(|e| refused(dir, e))?;
    for c in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        fd = rustix::fs::openat(&fd, OsStr::from_bytes(c), flags, Mode::empty()).map_err(|e| refused(dir, e))?;
    }
    Ok(fd)
}

/// The directory a thread last opened a file in, held open (one at a time).
#[derive(Default)]
pub(crate) struct DirCache {
    path: Vec<u8>,
    fd: Option<OwnedFd>,
}

impl DirCache {
    /// The open directory that holds `path` (relative to `root`), and the entry's name in it.
    pub(crate) fn parent<'p>(&mut self, root: BorrowedFd<'_>, path: &'p [u8], refused: Refusal) -> Result<(BorrowedFd<'_>, &'p OsStr)> {
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(k) => (&path[..k], &path[k + 1..]),
            None => (&path[..0], path),
        };
        if self.fd.is_none() || self.path != dir {
            // Close the last directory before opening the next.
            self.fd = None;
            self.fd = Some(open_dir(root, dir, refused)?);
            self.path.clear();
            self.path.extend_from_slice(dir);
        }
        Ok((self.fd.as_ref().expect("opened above").as_fd(), OsStr::from_bytes(name)))
    }

    /// The descriptor held now, if any (for tests that check it is reused).
    #[cfg(test)]
    pub(crate) fn held(&self) -> Option<std::os::fd::RawFd> {
        self.fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }
}
