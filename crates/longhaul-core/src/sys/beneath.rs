//! Opening what lies under a root directory one component at a time, following no symlink, and
//! the directory a thread last used, held open.
//!
//! Both ends of a transfer use it. The receiver makes every file, link and rename relative to
//! a directory opened this way, so a directory swapped for a symlink while the transfer runs
//! cannot lead a write outside the destination; the sender opens every source file this way, so
//! it cannot lead a read outside the source (a node serving a pull would otherwise send what a
//! link points to). Files of one directory come together in the index, so a thread opens each
//! directory once per run of its files instead of walking every file's whole path.
//!
//! Where the kernel has `openat2` (Linux 5.6), a directory is opened in one call with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; elsewhere (or with `LONGHAUL_NO_OPENAT2=1`, which
//! tests use to force it) one component at a time with `O_NOFOLLOW`. Both refuse a symlink
//! anywhere on the way; `beneath()` says which is in use and why.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags, ResolveFlags};
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
        Errno::LOOP | Errno::XDEV => Error::PathEscape { path: lossy(path), why: "through a symlink" },
        Errno::NOTDIR => Error::PathEscape { path: lossy(path), why: "through a symlink or a file" },
        Errno::NOENT => Error::NotFound { path: lossy(path) },
        e => Error::io("open", path, e.into()),
    }
}

/// Opens the directory `dir` (relative to `root`; empty for `root` itself) without following a
/// symlink anywhere on the way: a symlink found (put there after the tree was scanned or
/// checked) fails the open with `LOOP` (or `XDEV` from openat2), passed to `refused`.
pub(crate) fn open_dir(root: BorrowedFd<'_>, dir: &[u8], refused: Refusal) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let clean = dir.split(|&b| b == b'/').filter(|c| !c.is_empty());
    if openat2_usable().is_ok() && !dir.is_empty() {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        return rustix::fs::openat2(root, OsStr::from_bytes(dir), flags, Mode::empty(), how).map_err(|e| refused(dir, e));
    }
    let mut fd = rustix::fs::openat(root, ".", flags, Mode::empty()).map_err(|e| refused(dir, e))?;
    for c in clean {
        fd = rustix::fs::openat(&fd, OsStr::from_bytes(c), flags, Mode::empty()).map_err(|e| refused(dir, e))?;
    }
    Ok(fd)
}

/// Whether `open_dir` resolves in one openat2 call, or why it walks component by component.
/// The variable is read each call (tests flip it); the syscall is probed once.
pub fn openat2_usable() -> std::result::Result<(), String> {
    if std::env::var_os("LONGHAUL_NO_OPENAT2").is_some_and(|v| !v.is_empty() && v != "0") {
        return Err("disabled by LONGHAUL_NO_OPENAT2".into());
    }
    static PROBE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
            match rustix::fs::openat2(rustix::fs::CWD, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty(), how) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("openat2: {e} (before Linux 5.6, or filtered): directories are walked one component at a time")),
            }
        })
        .clone()
}

/// How directories beneath a root are opened here, for `doctor` and the node's stats.
pub fn beneath() -> String {
    match openat2_usable() {
        Ok(()) => "openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS".into(),
        Err(why) => format!("O_NOFOLLOW walk, one component at a time: {why}"),
    }
}

/// Opens the directory `name` in `parent`, creating it (mode `mode`, less the umask) if it is
/// missing, and never following a symlink: one in its place is refused with `LOOP` or
/// `NOTDIR`, passed to `refused` with `shown`.
pub(crate) fn make_dir(parent: BorrowedFd<'_>, name: &OsStr, mode: u32, shown: &[u8], refused: Refusal) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(Error::io("mkdir", shown, e.into())),
    }
    rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|e| {
        // O_DIRECTORY | O_NOFOLLOW on a symlink fails with NOTDIR, as on a file: tell them apart.
        let link = e == Errno::NOTDIR
            && rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink);
        refused(shown, if link { Errno::LOOP } else { e })
    })
}

/// Opens `dir` (relative to `root`), creating each missing component, one at a time and
/// following no symlink (`make_dir`).
pub(crate) fn make_dirs(root: BorrowedFd<'_>, dir: &[u8], mode: u32, refused: Refusal) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::openat(root, ".", flags, Mode::empty()).map_err(|e| refused(dir, e))?;
    for c in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        fd = make_dir(fd.as_fd(), OsStr::from_bytes(c), mode, dir, refused)?;
    }
    Ok(fd)
}

/// Whether `path`'s first component is `name` (the node's own `.longhaul`).
pub(crate) fn starts_with_component(path: &[u8], name: &[u8]) -> bool {
    path.split(|&b| b == b'/').next() == Some(name)
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
