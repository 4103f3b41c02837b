//! Reading a source file: opened by name beneath its held directory, never through a symlink,
//! then read at an offset. A file that is no longer what the scan found (deleted, swapped,
//! shorter) fails as a changed source naming it, not as an I/O error.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use rustix::fs::{Mode, OFlags};

use crate::error::{lossy, Error, Result};
use crate::sys::beneath::DirCache;

/// Why a file read since the scan is a changed source; `send` sends it once more, from a fresh
/// scan, when this is the reason.
pub const CHANGED_WHILE_READ: &str = "changed while it was read: its inode, size, mtime or ctime is not what the scan found";
pub const SHRANK: &str = "shorter than when it was scanned";

/// Opens the source file at `rel` (relative to the scan's base `base`) by its name in its
/// directory, which `dirs` holds open, walking no symlink: a file or directory swapped for a
/// symlink after the scan is a changed source, never followed outside it (a node serving a pull
/// would otherwise send whatever the link points to). O_NONBLOCK: a file swapped for a FIFO
/// must fail its read, not block the open until a writer comes.
pub(crate) fn open_source(base: BorrowedFd<'_>, dirs: &mut DirCache, rel: &[u8]) -> Result<File> {
    let (dir, name) = dirs.parent(base, rel, source_refused)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| source_refused(rel, e))?;
    Ok(File::from(fd))
}

/// How the sender names a failed open of a source path.
pub(crate) fn source_refused(rel: &[u8], e: rustix::io::Errno) -> Error {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => Error::SourceChanged { path: lossy(rel), why: "deleted" },
        Errno::LOOP | Errno::NOTDIR => Error::SourceChanged { path: lossy(rel), why: "replaced by a symlink since the scan" },
        Errno::NXIO => Error::SourceChanged { path: lossy(rel), why: "no longer a regular file" },
        e => Error::io("open", rel, e.into()),
    }
}

/// How the sender names a failed read of a source file.
pub(crate) fn source_read_error(rel: &[u8], e: std::io::Error) -> Error {
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::UnexpectedEof, _) => Error::SourceChanged { path: lossy(rel), why: SHRANK },
        // A directory or a FIFO now where the scan found a regular file.
        (_, Some(libc::EISDIR | libc::ESPIPE)) => Error::SourceChanged { path: lossy(rel), why: "no longer a regular file" },
        _ => Error::io("read", rel, e),
    }
}

pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64, rel: &[u8]) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| source_read_error(rel, e))
}
