//! The node's own directory, `.longhaul` under its root (a pulling client keeps one under its
//! destination for its resume journal): opened once, never through a symlink, and every file
//! in it made, read, replaced and removed relative to that descriptor.
//!
//! No client path may name it (`server::check_request_path`, and `Receive::prepare` for the
//! top-level entries of a received tree), but a local user of the machine, or an earlier
//! version, may have put anything there: a symlink in place of the directory refuses the
//! start, and a symlink in place of a state file is never followed (O_NOFOLLOW to read it,
//! O_EXCL for a new name, renameat over the old one, which replaces a link rather than writing
//! through it).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{lossy, Error, Result};
use crate::sys::beneath;

/// The directory's name under a node's root or a client's destination.
pub const STATE_DIR: &str = ".longhaul";
/// Where resume journals live inside it.
const JOURNAL_DIR: &str = "journal";

/// A symlink or a file where the state directory (or one inside it) should be.
fn refused(path: &[u8], e: Errno) -> Error {
    match e {
        Errno::LOOP | Errno::NOTDIR | Errno::XDEV => {
            Error::PathEscape { path: lossy(path), why: "a symlink or a file is in the way of the state directory" }
        }
        e => Error::io("open", path, e.into()),
    }
}

/// `.longhaul` under a base directory, held open.
pub struct StateDir {
    fd: OwnedFd,
}

impl StateDir {
    /// Opens (creating it, mode 0700) `.longhaul` in `base`.
    pub fn open(base: BorrowedFd<'_>) -> Result<StateDir> {
        let fd = beneath::make_dir(base, OsStr::new(STATE_DIR), 0o700, STATE_DIR.as_bytes(), refused)?;
        Ok(StateDir { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The journal directory inside it, created if missing.
    pub fn journal_dir(&self) -> Result<OwnedFd> {
        beneath::make_dir(self.fd.as_fd(), OsStr::new(JOURNAL_DIR), 0o700, b".longhaul/journal", refused)
    }

    /// Removes the journal directory and the state directory itself where they are empty (a
    /// pulling client's, after its transfer completed); anything left in them stays.
    pub fn remove_if_empty(self, base: BorrowedFd<'_>) {
        let _ = rustix::fs::unlinkat(&self.fd, JOURNAL_DIR, AtFlags::REMOVEDIR);
        drop(self);
        let _ = rustix::fs::unlinkat(base, STATE_DIR, AtFlags::REMOVEDIR);
    }

    /// Replaces the file `name` with `bytes`: written under `name.tmp` (a new file: whatever
    /// had that name, a planted symlink included, is unlinked first and O_EXCL refuses a race)
    /// and renamed over `name`.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(self.fd.as_fd(), name, bytes)
    }

    /// The contents of the regular file `name`, at most `max` bytes; `None` when it is missing,
    /// is not a regular file (a symlink is not followed) or is larger.
    pub fn read_small(&self, name: &str, max: usize) -> Option<Vec<u8>> {
        read_small(self.fd.as_fd(), name, max)
    }
}

/// See `StateDir::write_atomic`.
pub(crate) fn write_atomic(dir: BorrowedFd<'_>, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = format!("{name}.tmp");
    let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600))
        .map_err(|e| Error::io("create", tmp.as_bytes(), e.into()))?;
    File::from(fd).write_all(bytes).map_err(|e| Error::io("write", tmp.as_bytes(), e))?;
    rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| Error::io("rename", name.as_bytes(), e.into()))
}

/// See `StateDir::read_small`.
pub(crate) fn read_small(dir: BorrowedFd<'_>, name: &str, max: usize) -> Option<Vec<u8>> {
    // O_NONBLOCK: a FIFO planted under the name must not hold the open.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let f = File::from(rustix::fs::openat(dir, name, flags, Mode::empty()).ok()?);
    let m = f.metadata().ok()?;
    if !m.is_file() || m.len() > max as u64 {
        return None;
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    f.take(max as u64).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use std::os::unix::fs::symlink;

    fn open_root(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    /// Issue 29: a symlink planted as a state file is replaced, never written through.
    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = Scratch::new("statedir-link");
        std::fs::create_dir_all(dir.join("root/.longhaul")).unwrap();
        std::fs::write(dir.join("victim"), b"precious").unwrap();
        symlink(dir.join("victim"), dir.join("root/.longhaul/stored.tmp")).unwrap();
        symlink(dir.join("victim"), dir.join("root/.longhaul/stored")).unwrap();
        let root = open_root(&dir.join("root"));
        let s = StateDir::open(root.as_fd()).unwrap();
        assert_eq!(s.read_small("stored", 64), None, "a link is not read through");
        s.write_atomic("stored", b"12\n").unwrap();
        assert_eq!(std::fs::read(dir.join("victim")).unwrap(), b"precious");
        assert_eq!(std::fs::read(dir.join("root/.longhaul/stored")).unwrap(), b"12\n");
        assert!(!std::fs::symlink_metadata(dir.join("root/.longhaul/stored")).unwrap().file_type().is_symlink());
        assert_eq!(s.read_small("stored", 64).as_deref(), Some(&b"12\n"[..]));
        assert_eq!(s.read_small("stored", 2), None, "larger than asked");
    }

    /// Issue 29: the state directory itself, or its journal directory, as a symlink refuses.
    #[test]
    fn a_state_directory_that_is_a_link_is_refused() {
        for forced in ["0", "1"] {
            std::env::set_var("LONGHAUL_NO_OPENAT2", forced);
            let dir = Scratch::new(&format!("statedir-dirlink-{forced}"));
            std::fs::create_dir_all(dir.join("root")).unwrap();
            std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
            symlink(dir.join("elsewhere"), dir.join("root/.longhaul")).unwrap();
            let root = open_root(&dir.join("root"));
            let e = StateDir::open(root.as_fd()).map(|_| ()).unwrap_err();
            assert_eq!(e.code(), "E_PATH_ESCAPE", "{e}");
            std::fs::remove_file(dir.join("root/.longhaul")).unwrap();
            std::fs::create_dir(dir.join("root/.longhaul")).unwrap();
            symlink(dir.join("elsewhere"), dir.join("root/.longhaul/journal")).unwrap();
            let s = StateDir::open(root.as_fd()).unwrap();
            assert_eq!(s.journal_dir().map(|_| ()).unwrap_err().code(), "E_PATH_ESCAPE");
            assert_eq!(std::fs::read_dir(dir.join("elsewhere")).unwrap().count(), 0);
        }
        std::env::remove_var("LONGHAUL_NO_OPENAT2");
    }
}
