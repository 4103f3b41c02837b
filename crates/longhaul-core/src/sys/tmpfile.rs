//! Unnamed files (O_TMPFILE) linked in under their final name once complete: the name appears
//! whole or not at all, in one directory operation where a temporary name and a rename take
//! three. Linked through the descriptor itself (AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH
//! before Linux 6.10), else through /proc/self/fd/N, else not at all: the caller then writes
//! under a temporary name. Each fallback is taken once, for every later file, and its reason
//! kept for the transfer's summary.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

/// Linked through the descriptor itself...
const EMPTY_PATH: u8 = 0;
/// ... or through /proc/self/fd/N.
const PROC: u8 = 1;
/// Not available: temporary name and rename.
const OFF: u8 = 2;

/// How unnamed files are linked in, shared by the threads that make them.
pub struct Tmpfile {
    how: AtomicU8,
    /// Why unnamed files are not used (None: they are).
    why_not: Mutex<Option<String>>,
}

impl Tmpfile {
    /// Unnamed files in `dir`, unless the caller has a reason against them (`refused`), or
    /// LONGHAUL_NO_TMPFILE is set, or the file system cannot make one (probe.rs).
    pub fn probe(dir: BorrowedFd<'_>, refused: Option<String>) -> Tmpfile {
        let why_not = refused.or_else(|| crate::sys::probe::tmpfile(dir).err());
        Tmpfile { how: AtomicU8::new(if why_not.is_none() { EMPTY_PATH } else { OFF }), why_not: Mutex::new(why_not) }
    }

    /// Unnamed files not used, for `why`, without probing the file system.
    pub fn off(why: &str) -> Tmpfile {
        Tmpfile { how: AtomicU8::new(OFF), why_not: Mutex::new(Some(why.to_owned())) }
    }

    /// Whether unnamed files are (still) in use.
    pub fn usable(&self) -> bool {
        self.how.load(Ordering::Relaxed) != OFF
    }

    /// Whether unnamed files are used, or why not.
    pub fn status(&self) -> Result<(), String> {
        match self.why_not.lock().expect("tmpfile lock").clone() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// A new unnamed file in `dir`, open for writing, with permission bits `perm` (less the
    /// umask, as for any new file).
    pub fn open(dir: BorrowedFd<'_>, perm: u32) -> rustix::io::Result<File> {
        openat(dir, ".", OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::from_raw_mode(perm)).map(File::from)
    }

    /// Links the unnamed file `fd` in as `to` in `dir`. NOTSUP when no way to link is left
    /// (nothing done); EXIST when `to` is taken.
    pub fn link(&self, fd: &File, dir: BorrowedFd<'_>, to: &OsStr) -> rustix::io::Result<()> {
        loop {
            match self.how.load(Ordering::Relaxed) {
                EMPTY_PATH => match linkat(fd, "", dir, to, AtFlags::EMPTY_PATH) {
                    Err(Errno::NOENT | Errno::PERM) => self.how.store(PROC, Ordering::Relaxed),
                    r => return r,
                },
                PROC => {
                    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    match linkat(CWD, proc.as_str(), dir, to, AtFlags::SYMLINK_FOLLOW) {
                        Err(Errno::NOENT) if std::fs::symlink_metadata(&proc).is_err() => {
                            self.how.store(OFF, Ordering::Relaxed);
                            *self.why_not.lock().expect("tmpfile lock") =
                                Some("O_TMPFILE files cannot be linked in: no CAP_DAC_READ_SEARCH and no /proc".into());
                        }
                        r => return r,
                    }
                }
                _ => return Err(Errno::NOTSUP),
            }
        }
    }
}
