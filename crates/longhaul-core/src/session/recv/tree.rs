//! The tree: directories and large files made up front, and at the end empty files, symlinks,
//! and directory modes and mtimes (deepest first, so a read-only directory does not block its
//! own children).

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

use rustix::fs::Mode;

use super::slot::{STAGE_FINAL, STAGE_TEMP, STAGE_WRITTEN};
use super::{dest_refused, existing_refused, Fsync, Receive};
use crate::error::{lossy, Error, Result};
use crate::sys::beneath::{self, DirCache};
use crate::vfile::index::Kind;

impl Receive {
    pub(super) fn make_tree(&self) -> Result<()> {
        let mut dirs = DirCache::default();
        for (i, e) in self.index.entries().iter().enumerate() {
            match e.kind {
                Kind::Dir => {
                    let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
                    drop(beneath::make_dir(dir, name, 0o777, &e.path, existing_refused)?);
                }
                // A sparse file keeps its holes: no space is reserved for it.
                Kind::File
                    if e.size >= self.plan.block_size
                        && self.files.slots[i].stage.load(Ordering::SeqCst) != STAGE_FINAL
                        && self.index.extents_of(i).is_none() =>
                {
                    let f = self.open_temp(i, &mut dirs)?;
                    crate::sys::write::fallocate(f.as_fd(), e.size).map_err(|err| Error::io("fallocate", &e.path, err.into()))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn check_and_finish(&self) -> Result<()> {
        let (client_bytes, failed) = {
            let st = self.life.state.lock().expect("state lock");
            (st.client_done, st.failure.is_some())
        };
        if failed {
            return Ok(());
        }
        let got = self.receipt.bytes.load(Ordering::Relaxed);
        let carried = &self.resume.carried;
        let expect = self.index.total() - carried.bytes - carried.hole_bytes;
        if client_bytes != Some(expect)
            || got != expect
            || self.receipt.blocks.load(Ordering::Relaxed) + carried.blocks + carried.hole_blocks.len() as u64 != self.plan.count()
        {
            return Err(Error::Protocol(format!(
                "transfer ended with {got} of {expect} bytes received (sender reported {client_bytes:?})"
            )));
        }
        // A bench session made no files: all there is to check is that every byte came.
        if self.discard {
            return Ok(());
        }
        let entries = self.index.entries();
        let mut dirs = DirCache::default();
        let mut link_dirs = DirCache::default();
        for (i, e) in entries.iter().enumerate() {
            match e.kind {
                Kind::File => {
                    if e.size == 0 {
                        drop(self.open_temp(i, &mut dirs)?);
                        self.finalize(i, &mut dirs)?;
                    }
                    match self.files.slots[i].stage.load(Ordering::SeqCst) {
                        STAGE_FINAL => {}
                        STAGE_WRITTEN => self.promote(i, &mut dirs)?,
                        _ => return Err(Error::Protocol(format!("{:?} did not complete", lossy(&e.path)))),
                    }
                }
                Kind::Symlink => {
                    let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
                    let temp = self.temp_name(i);
                    // A killed earlier attempt may have left it.
                    let _ = rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty());
                    rustix::fs::symlinkat(OsStr::from_bytes(&e.target), dir, temp.as_str())
                        .map_err(|err| Error::io("symlink", &e.path, err.into()))?;
                    self.chown_link(dir, temp.as_str(), i);
                    // Not on symlinks: Linux takes no user.* there, and the others would be set
                    // by name. Counted as not kept.
                    self.set_xattrs(i, |_, _| Err(rustix::io::Errno::PERM));
                    self.files.slots[i].stage.store(STAGE_TEMP, Ordering::SeqCst);
                    let t = timestamp(e.mtime_ns);
                    let _ = rustix::fs::utimensat(
                        dir,
                        temp.as_str(),
                        &rustix::fs::Timestamps { last_access: t, last_modification: t },
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    );
                    let held = self.name_lock(i);
                    let old = self.replaced(dir, name);
                    rustix::fs::renameat(dir, temp.as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
                    self.count_named(i, 0, old);
                    drop(held);
                    self.files.slots[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
                }
                // Its file, an earlier entry, is final by now: this loop made it so or failed.
                Kind::HardLink => self.link(i, &mut dirs, &mut link_dirs)?,
                Kind::Dir => {}
            }
        }
        for (i, e) in entries.iter().enumerate().rev().filter(|(_, e)| e.kind == Kind::Dir) {
            let fd = beneath::open_dir(self.dest_fd.as_fd(), &e.path, dest_refused)?;
            self.chown_fd(fd.as_fd(), i);
            self.set_xattrs_fd(fd.as_fd(), i);
            if self.index.has_xattrs() {
                super::unchanged::remove_stale_xattrs(&self.index, i, fd.as_fd(), self.files.chown);
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode(e))).map_err(|err| Error::io("chmod", &e.path, err.into()))?;
            let t = timestamp(e.mtime_ns);
            rustix::fs::futimens(&fd, &rustix::fs::Timestamps { last_access: t, last_modification: t })
                .map_err(|err| Error::io("set mtime", &e.path, err.into()))?;
        }
        if self.fsync == Fsync::End {
            super::disk::DiskTimes::timed(&self.disk.fsync_us, || rustix::fs::syncfs(&self.dest_fd))
                .map_err(|err| Error::io("syncfs", b"destination", err.into()))?;
        }
        Ok(())
    }
}

impl Receive {
    /// Makes hard link `i` another name of its file, both opened beneath the destination: a
    /// new link under a temporary name renamed over whatever has the name (as a file is). A
    /// name that is that file already (an earlier run's link) is left alone, since a rename
    /// between two names of one inode does nothing and would leave the temporary name behind.
    fn link(&self, i: usize, dirs: &mut DirCache, link_dirs: &mut DirCache) -> Result<()> {
        use rustix::fs::AtFlags;
        let e = &self.index.entries()[i];
        let file = &self.index.entries()[e.offset as usize];
        let (from_dir, from_name) = link_dirs.parent(self.dest_fd.as_fd(), &file.path, dest_refused)?;
        let linked =
            rustix::fs::statat(from_dir, from_name, AtFlags::SYMLINK_NOFOLLOW).map_err(|err| Error::io("stat", &file.path, err.into()))?;
        let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        let held = self.name_lock(i);
        let now = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        if now.is_some_and(|st| st.st_dev == linked.st_dev && st.st_ino == linked.st_ino) {
            self.files.slots[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
            return Ok(());
        }
        let temp = self.temp_name(i);
        let _ = rustix::fs::unlinkat(dir, temp.as_str(), AtFlags::empty());
        rustix::fs::linkat(from_dir, from_name, dir, temp.as_str(), AtFlags::empty())
            .map_err(|err| Error::io("link", &e.path, err.into()))?;
        self.files.slots[i].stage.store(STAGE_TEMP, Ordering::SeqCst);
        let old = self.replaced(dir, name);
        rustix::fs::renameat(dir, temp.as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
        // A name, no new bytes: what it replaced leaves the account.
        self.count_named(i, 0, old);
        drop(held);
        self.files.slots[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
        Ok(())
    }
}

pub(super) fn timestamp(ns: i64) -> rustix::fs::Timespec {
    rustix::fs::Timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) as _ }
}
