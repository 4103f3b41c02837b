//! File naming and writing: the per-file slots, temporary names (`.lh-<tag>-<n>.part`),
//! O_TMPFILE for one-piece files, the writers' `write`, and a complete file's way to its final
//! name (finalize, rename, promote), counted into the node's account (ledger.rs) as it goes.
//!
//! Owns `Files` (slots, names, O_TMPFILE, account), `Digests` (verify: full) and `Writers` (the
//! disk-writer threads). The methods sit on `Receive`, which holds the index and the
//! destination every one of them needs.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use rustix::fs::{Mode, OFlags};

use super::disk::DiskTimes;
use super::resume::own_part;
use super::stream::WriteJob;
use super::tree::timestamp;
use super::{dest_refused, Fsync, Receive};
use crate::error::{lossy, Error, Result};
use crate::hash::blake3_file;
use crate::ledger::Grant;
use crate::place::placement::{bind_current_thread, Role};
use crate::sys::beneath::DirCache;
use crate::sys::tmpfile::Tmpfile;
use crate::sys::write::write_chunked;
use crate::vfile::index::{Entry, Kind};

use super::slot::{FileSlot, STAGE_FINAL, STAGE_NONE, STAGE_TEMP, STAGE_WRITTEN, UNCOUNTED};

/// The tree's files as the writers see them: a slot each, how each is named until it is
/// complete, and how its bytes are counted into the node's account.
pub(super) struct Files {
    pub(super) slots: Vec<FileSlot>,
    /// Names the temporary files: the journal key's first digits, or the session token's.
    pub(super) tag: String,
    /// How a file that arrives in one piece is made: unnamed and linked in, or (its fallback)
    /// like larger files.
    pub(super) tmpfile: Tmpfile,
    /// Files linked in from O_TMPFILE, and files renamed from a temporary name.
    pub(super) linked: AtomicU64,
    pub(super) renamed: AtomicU64,
    /// The permission bits the index may set (`keep_setid`).
    pub(super) mode_mask: u32,
    /// Whether the index's owners and groups (`--owner`/`--group`) may be set: the receiver
    /// runs as root. Looked at once.
    pub(super) chown: bool,
    /// Entries whose owner or group was asked for and not set.
    pub(super) owner_missed: AtomicU64,
    /// Entries with an extended attribute the index holds and the receiver did not set.
    pub(super) xattrs_missed: AtomicU64,
    pub(super) space: Option<Arc<Grant>>,
    /// The destination directory's device and inode: what names it for the account's name
    /// locks, the same for every session writing into it.
    pub(super) dest_id: [u8; 16],
}

/// Whole-file verification (`verify: full`): the sender's digests and the receiver's.
pub(super) struct Digests {
    pub(super) full: bool,
    /// The sender's whole-file digests, by entry (`full` only).
    pub(super) theirs: Mutex<Vec<Option<[u8; 32]>>>,
    /// The BLAKE3 of each file as read back from the disk, by entry (`full` only: a slot of
    /// every file would cost 40 bytes a file on every transfer).
    pub(super) read_back: Vec<OnceLock<[u8; 32]>>,
    /// Files whose read-back digest matched the sender's.
    pub(super) verified: AtomicU64,
}

impl Digests {
    pub(super) fn new(full: bool, files: usize) -> Digests {
        Digests {
            full,
            theirs: Mutex::new(if full { vec![None; files] } else { Vec::new() }),
            read_back: if full { (0..files).map(|_| OnceLock::new()).collect() } else { Vec::new() },
            verified: AtomicU64::new(0),
        }
    }

    /// FILE_DIGESTS from the sender: each names a file entry once.
    pub(super) fn take(&self, entries: &[Entry], digests: Vec<(u32, [u8; 32])>) -> Result<()> {
        if !self.full {
            return Err(Error::Protocol("FILE_DIGESTS in a session without whole-file verification".into()));
        }
        let mut held = self.theirs.lock().expect("digests lock");
        for (entry, d) in digests {
            let i = entry as usize;
            if entries.get(i).is_none_or(|e| e.kind != Kind::File) {
                return Err(Error::Protocol(format!("FILE_DIGESTS names entry {entry}, which is not a file")));
            }
            if held[i].replace(d).is_some() {
                return Err(Error::Protocol(format!("FILE_DIGESTS names entry {entry} twice")));
            }
        }
        Ok(())
    }
}

/// The disk-writer threads and the queue that feeds them.
pub(super) struct Writers {
    /// The queue; taken when the session ends, so that the writers drain it and stop.
    pub(super) tx: Mutex<Option<Sender<WriteJob>>>,
    pub(super) handles: Mutex<Vec<JoinHandle<()>>>,
    /// A write failed: the writers drop what is queued.
    pub(super) failed: AtomicBool,
}

impl Receive {
    /// Starts `count` disk writers (one at least) on the queue `rx`.
    pub(super) fn start_writers(self: &Arc<Self>, rx: Receiver<WriteJob>, count: usize) -> Result<()> {
        let mut handles = self.writers.handles.lock().expect("writers lock");
        self.disk.writers.store(count.max(1) as u64, Ordering::Relaxed);
        for i in 0..count.max(1) {
            let (r, rx) = (Arc::clone(self), rx.clone());
            let h = std::thread::Builder::new()
                .name(format!("lh-wr-{i}"))
                .spawn(move || {
                    let wrote = crate::panic::catch("writer", || {
                        if let Some(cpu) = r.placement.cpu_for(Role::Disk, i) {
                            let _ = bind_current_thread(cpu);
                        }
                        let mut dirs = DirCache::default();
                        let disk = &r.disk;
                        while let Some(job) = DiskTimes::timed(&disk.idle_us, || rx.recv().ok()) {
                            // A failed journaled session still writes the verified blocks it has
                            // queued (at most the pool): the next attempt need not send them again.
                            if r.life.stop.load(Ordering::Relaxed)
                                && (r.resume.journal.is_none() || r.writers.failed.load(Ordering::Relaxed))
                            {
                                continue;
                            }
                            let (block, hash) = (r.plan.block_of(job.offset), job.hash);
                            let journal = r.resume.journal.as_ref().filter(|_| job.journal);
                            let written = DiskTimes::timed(&disk.busy_us, || {
                                r.write(job, &mut dirs).and_then(|()| journal.map_or(Ok(()), |j| j.record(block, hash)))
                            });
                            if let Err(e) = written {
                                r.writers.failed.store(true, Ordering::Relaxed);
                                r.fail(e);
                            }
                        }
                        Ok(())
                    });
                    // What a panicked writer held is unknown: nothing more is written.
                    if let Err(e) = wrote {
                        r.writers.failed.store(true, Ordering::Relaxed);
                        r.fail(e);
                    }
                })
                .map_err(|e| Error::io("spawn writer", b"", e))?;
            handles.push(h);
        }
        drop(handles);
        Ok(())
    }

    /// The mode entry `e` is given: the index's bits, less setuid and setgid unless kept.
    pub(super) fn mode(&self, e: &crate::vfile::index::Entry) -> u32 {
        e.mode & self.files.mode_mask
    }

    /// Entry `i`'s owner and group as the index asks (`--owner`/`--group`); None: not asked.
    fn owner_of(&self, i: usize) -> Option<(Option<rustix::fs::Uid>, Option<rustix::fs::Gid>)> {
        use crate::vfile::index::{OWNER_GID, OWNER_UID};
        let o = self.index.owners()?;
        let (uid, gid) = o.ids[i];
        // u32::MAX is chown's "leave it as it is": never a real id to set.
        let uid = (o.which & OWNER_UID != 0 && uid != u32::MAX).then(|| rustix::fs::Uid::from_raw(uid));
        let gid = (o.which & OWNER_GID != 0 && gid != u32::MAX).then(|| rustix::fs::Gid::from_raw(gid));
        Some((uid, gid))
    }

    /// Gives the open file or directory `fd`, made by this receiver for entry `i`, the owner
    /// and group the index asks for; counted as not kept where the receiver may not (not
    /// root) or the file system refuses. By descriptor: nothing else can be chowned by a name
    /// swapped meanwhile.
    pub(super) fn chown_fd(&self, fd: std::os::fd::BorrowedFd<'_>, i: usize) {
        let Some((uid, gid)) = self.owner_of(i) else { return };
        if !(self.files.chown && rustix::fs::fchown(fd, uid, gid).is_ok()) {
            self.files.owner_missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Gives entry `i`, made by this receiver, the extended attributes the index holds:
    /// `set` sets one. `user.*` always; the other namespaces (trusted, security, system: ACLs
    /// as system.posix_acl_*) only as root. File capabilities (`security.capability`) grant
    /// privileges as a setuid bit does: set only where set-id bits are kept (`keep_setid`).
    /// An entry with one not set is counted, once.
    pub(super) fn set_xattrs(&self, i: usize, set: impl Fn(&OsStr, &[u8]) -> rustix::io::Result<()>) {
        let Some(attrs) = self.index.xattrs_of(i) else { return };
        let keep_setid = self.files.mode_mask & 0o6000 != 0;
        let mut missed = false;
        for (name, value) in attrs {
            let privileged = &**name != b"security.capability" || keep_setid;
            let allowed = name.starts_with(b"user.") || (self.files.chown && privileged);
            missed |= !(allowed && set(OsStr::from_bytes(name), value).is_ok());
        }
        if missed {
            self.files.xattrs_missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `set_xattrs` on an open file or directory.
    pub(super) fn set_xattrs_fd(&self, fd: std::os::fd::BorrowedFd<'_>, i: usize) {
        self.set_xattrs(i, |n, v| rustix::fs::fsetxattr(fd, n, v, rustix::fs::XattrFlags::empty()));
    }

    /// As `chown_fd`, for the symlink `name` in `dir` this receiver just made (not followed).
    /// Opened without following it, and checked to be a symlink, then chowned by that
    /// descriptor: a name swapped meanwhile for a hard link to someone's file changes nothing.
    pub(super) fn chown_link(&self, dir: std::os::fd::BorrowedFd<'_>, name: &str, i: usize) {
        use rustix::fs::{AtFlags, FileType};
        let Some((uid, gid)) = self.owner_of(i) else { return };
        let chowned = self.files.chown
            && rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).is_ok_and(|fd| {
                rustix::fs::fstat(&fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                    && rustix::fs::chownat(&fd, "", uid, gid, AtFlags::EMPTY_PATH).is_ok()
            });
        if !chowned {
            self.files.owner_missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The name file `i` has in its directory until it is complete.
    pub(super) fn temp_name(&self, i: usize) -> String {
        format!(".lh-{}-{i}.part", self.files.tag)
    }

    /// Opens (creating it if need be) file `i`'s temporary file in its directory.
    pub(super) fn open_temp(&self, i: usize, dirs: &mut DirCache) -> Result<File> {
        let e = &self.index.entries()[i];
        let (dir, _) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        // verify_full reads the file back through the same descriptor.
        let access = if self.digests.full { OFlags::RDWR } else { OFlags::WRONLY };
        let flags = access | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // O_EXCL tells a new temporary file from one an earlier attempt kept, which the account
        // holds already at its size.
        let count = self.files.space.is_some() && self.files.slots[i].part.load(Ordering::SeqCst) == UNCOUNTED;
        let temp = self.temp_name(i);
        let create = || rustix::fs::openat(dir, temp.as_str(), flags | OFlags::EXCL, Mode::from_raw_mode(0o600));
        let (f, kept) = match create() {
            Err(rustix::io::Errno::EXIST) => {
                // Taken over only if it is what a receiver makes (`own_part`); anything else
                // under the name (a hard link to a file elsewhere, a FIFO, another user's
                // file) is unlinked and a new one made: no write lands in an inode the
                // receiver did not create.
                let existing = rustix::fs::openat(dir, temp.as_str(), (flags - OFlags::CREATE) | OFlags::NONBLOCK, Mode::empty())
                    .ok()
                    .and_then(|f| rustix::fs::fstat(&f).ok().filter(own_part).map(|st| (f, st.st_size as u64)));
                match existing {
                    Some((f, size)) => (f, Some(size)),
                    None => {
                        let _ = rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty());
                        (create().map_err(|err| Error::io("create", &e.path, err.into()))?, None)
                    }
                }
            }
            r => (r.map_err(|err| Error::io("create", &e.path, err.into()))?, None),
        };
        self.files.slots[i].stage.store(STAGE_TEMP, Ordering::SeqCst);
        if count {
            self.count_part(i, kept);
        }
        Ok(File::from(f))
    }

    /// Counts file `i`'s temporary file at its full size from now (it is allocated to it, or
    /// will be): a new one, or one kept by an earlier attempt at `kept` bytes.
    fn count_part(&self, i: usize, kept: Option<u64>) {
        let Some(g) = &self.files.space else { return };
        let size = self.index.entries()[i].size;
        match kept {
            None => g.part_made(size),
            Some(was) => g.part_resized(was, size),
        }
        self.files.slots[i].part.store(size, Ordering::SeqCst);
    }

    /// The lock on file `i`'s final name while what it replaces is measured and replaced
    /// (ledger.rs); none where no account is kept.
    pub(super) fn name_lock(&self, i: usize) -> Option<std::sync::MutexGuard<'_, ()>> {
        let g = self.files.space.as_ref()?;
        Some(g.ledger().name_lock(&[&self.files.dest_id, &self.index.entries()[i].path]))
    }

    /// Bytes of the regular file that `name` in `dir` is now, which a rename to it replaces;
    /// looked at only where an account is kept. Call with the name's lock held.
    pub(super) fn replaced(&self, dir: std::os::fd::BorrowedFd<'_>, name: &OsStr) -> u64 {
        if self.files.space.is_none() {
            return 0;
        }
        match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile => st.st_size as u64,
            _ => 0,
        }
    }

    /// File `i` (`size` bytes; from its temporary file or not) took its final name over `old`
    /// bytes.
    pub(super) fn count_named(&self, i: usize, size: u64, old: u64) {
        let Some(g) = &self.files.space else { return };
        let part = self.files.slots[i].part.swap(UNCOUNTED, Ordering::SeqCst);
        g.named((part != UNCOUNTED).then_some(part), size, old);
    }

    /// File `i`'s temporary file was removed: its bytes (as counted, or as `on_disk` when an
    /// earlier attempt counted it) leave the account.
    pub(super) fn count_removed(&self, i: usize, on_disk: Option<u64>) {
        let Some(g) = &self.files.space else { return };
        match self.files.slots[i].part.swap(UNCOUNTED, Ordering::SeqCst) {
            UNCOUNTED => {
                if let Some(b) = on_disk {
                    g.part_removed(b)
                }
            }
            counted => g.part_removed(counted),
        }
    }

    fn slot_fd(&self, i: usize, dirs: &mut DirCache) -> Result<Arc<File>> {
        let mut fd = self.files.slots[i].fd.lock().expect("slot lock");
        if let Some(f) = fd.as_ref() {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(self.open_temp(i, dirs)?);
        *fd = Some(Arc::clone(&f));
        Ok(f)
    }

    /// Writes file `i`, all of it in `data`, into an unnamed file in its directory, sets its
    /// mode and mtime and links it in under its final name: the name appears complete or not
    /// at all. Works from the directory's descriptor (`dirs`), so no path is walked per file.
    /// Returns false (nothing done) where the link cannot be made; the caller then takes the
    /// temporary-name path.
    fn write_whole(&self, i: usize, data: &[u8], dirs: &mut DirCache) -> Result<bool> {
        use rustix::fs::{renameat, unlinkat, AtFlags};
        let e = &self.index.entries()[i];
        let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        let perm = e.mode & 0o777;
        let fd = Tmpfile::open(dir, perm).map_err(|err| Error::io("create", &e.path, err.into()))?;
        self.timed_write(&fd, data, 0).map_err(|err| Error::io("write", &e.path, err))?;
        // open() applied the umask: set the mode only where that changed it.
        self.set_metadata(&fd, i, self.mode(e) != perm & !crate::sys::probe::umask().unwrap_or(0o777))?;
        let link = |to: &OsStr| self.files.tmpfile.link(&fd, dir, to);
        let held = self.name_lock(i);
        match link(name) {
            Ok(()) => self.count_named(i, e.size, 0),
            // Replacing a file: link under the temporary name and rename over the old one.
            Err(rustix::io::Errno::EXIST) => {
                let temp = self.temp_name(i);
                // An earlier attempt's temporary file there leaves the account with it.
                let stale = self.replaced(dir, OsStr::new(&temp));
                if unlinkat(dir, temp.as_str(), AtFlags::empty()).is_ok() {
                    self.count_removed(i, Some(stale));
                }
                link(OsStr::new(&temp)).map_err(|err| Error::io("link", &e.path, err.into()))?;
                let old = self.replaced(dir, name);
                renameat(dir, temp.as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
                self.count_named(i, e.size, old);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(false),
            Err(err) => return Err(Error::io("link", &e.path, err.into())),
        }
        drop(held);
        self.files.slots[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
        self.files.linked.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// `write_chunked`, counted in the disk figures.
    fn timed_write(&self, fd: &File, data: &[u8], at: u64) -> std::io::Result<()> {
        DiskTimes::timed(&self.disk.write_us, || write_chunked(fd, data, at))?;
        self.disk.bytes_written.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn write(&self, job: WriteJob, dirs: &mut DirCache) -> Result<()> {
        for p in self.index.pieces(job.offset, job.buf.len() as u64) {
            let stage = self.files.slots[p.entry].stage.load(Ordering::SeqCst);
            if stage == STAGE_FINAL {
                // Resumed: an earlier attempt completed this file; the block is here for others.
                continue;
            }
            let at = p.range_offset as usize;
            let extents = self.index.extents_of(p.entry);
            if stage == STAGE_NONE
                && extents.is_none()
                && p.len == self.index.entries()[p.entry].size
                && self.files.tmpfile.usable()
                && self.write_whole(p.entry, &job.buf[at..at + p.len as usize], dirs)?
            {
                self.files.slots[p.entry].remaining.store(0, Ordering::SeqCst);
                continue;
            }
            let fd = self.slot_fd(p.entry, dirs)?;
            // Buffered writes to one file take turns on its inode lock in the kernel, where a
            // waiting writer spins (on one 4 GiB file with 4 writers: 10% of the node's CPU in
            // rwsem_spin_on_owner). Waiting here sleeps instead and leaves the CPU to the
            // receiving threads. A file within one piece has no other writer.
            let _turn = (p.len < self.index.entries()[p.entry].size).then(|| self.files.slots[p.entry].writing.lock().expect("write lock"));
            let piece = &job.buf[at..at + p.len as usize];
            match extents {
                None => self.timed_write(&fd, piece, p.file_offset),
                // Only the data: what lies in a hole is zeros that stay a hole.
                Some(x) => data_within(x, p.file_offset, p.len).try_for_each(|(from, len)| {
                    let k = (from - p.file_offset) as usize;
                    self.timed_write(&fd, &piece[k..k + len as usize], from)
                }),
            }
            .map_err(|e| Error::io("write", &self.index.entries()[p.entry].path, e))?;
            drop(fd);
            if self.files.slots[p.entry].remaining.fetch_sub(p.len, Ordering::AcqRel) == p.len {
                self.finalize(p.entry, dirs)?;
            }
        }
        Ok(())
    }

    /// Gives the open file `i` its mode (where `chmod`) and mtime, and fsyncs it under the
    /// `file` policy: what a file needs before it takes its final name.
    fn set_metadata(&self, fd: &File, i: usize, chmod: bool) -> Result<()> {
        let e = &self.index.entries()[i];
        // Before the mode: a chown clears the setuid and setgid bits.
        self.chown_fd(fd.as_fd(), i);
        self.set_xattrs_fd(fd.as_fd(), i);
        let chmod = chmod || (self.index.owners().is_some() && self.mode(e) & 0o6000 != 0);
        if chmod {
            fd.set_permissions(fs::Permissions::from_mode(self.mode(e))).map_err(|err| Error::io("chmod", &e.path, err))?;
        }
        let t = timestamp(e.mtime_ns);
        rustix::fs::futimens(fd.as_fd(), &rustix::fs::Timestamps { last_access: t, last_modification: t })
            .map_err(|err| Error::io("set mtime", &e.path, err.into()))?;
        if self.fsync == Fsync::File {
            DiskTimes::timed(&self.disk.fsync_us, || fd.sync_all()).map_err(|err| Error::io("fsync", &e.path, err))?;
        }
        Ok(())
    }

    /// Gives file `i`, complete under its temporary name, its final name.
    fn rename_final(&self, i: usize, dirs: &mut DirCache) -> Result<()> {
        let e = &self.index.entries()[i];
        let (dir, name) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused)?;
        let held = self.name_lock(i);
        let old = self.replaced(dir, name);
        rustix::fs::renameat(dir, self.temp_name(i).as_str(), dir, name).map_err(|err| Error::io("rename", &e.path, err.into()))?;
        self.count_named(i, e.size, old);
        drop(held);
        self.files.slots[i].stage.store(STAGE_FINAL, Ordering::SeqCst);
        self.files.renamed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// All of file `i` is written and its blocks verified: set its metadata and give it its
    /// final name; with `verify_full`, read it back and hash it first, and leave the rename to
    /// `promote` once the sender's digest is in.
    pub(super) fn finalize(&self, i: usize, dirs: &mut DirCache) -> Result<()> {
        let e = &self.index.entries()[i];
        let fd = self.files.slots[i].fd.lock().expect("slot lock").take();
        let fd = match fd {
            Some(f) => f,
            None => Arc::new(self.open_temp(i, dirs)?),
        };
        if self.index.extents_of(i).is_some() {
            // Its size whatever was written: a hole at its end is written by no one.
            fd.set_len(e.size).map_err(|err| Error::io("truncate", &e.path, err))?;
        }
        self.set_metadata(&fd, i, true)?;
        if self.digests.full {
            let digest = blake3_file(&fd, e.size).map_err(|err| Error::io("read back", &e.path, err))?;
            let _ = self.digests.read_back[i].set(digest);
            self.files.slots[i].stage.store(STAGE_WRITTEN, Ordering::SeqCst);
            return Ok(());
        }
        drop(fd);
        self.rename_final(i, dirs)?;
        Ok(())
    }

    /// `verify_full`: file `i` was read back; compare with the sender's digest and rename it.
    /// A mismatch removes the temporary file, so that a later attempt sends the file again.
    pub(super) fn promote(&self, i: usize, dirs: &mut DirCache) -> Result<()> {
        let e = &self.index.entries()[i];
        let theirs = self.digests.theirs.lock().expect("digests lock").get(i).copied().flatten();
        let Some(theirs) = theirs else {
            return Err(Error::Protocol(format!("the sender sent no digest for {:?}", lossy(&e.path))));
        };
        if self.digests.read_back[i].get() != Some(&theirs) {
            if self.remove_temp(i, dirs) {
                self.count_removed(i, None);
            }
            self.files.slots[i].stage.store(STAGE_NONE, Ordering::SeqCst);
            return Err(Error::FileDigest { path: lossy(&e.path) });
        }
        self.rename_final(i, dirs)?;
        self.digests.verified.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes file `i`'s temporary file, through its directory's descriptor; whether it went.
    pub(super) fn remove_temp(&self, i: usize, dirs: &mut DirCache) -> bool {
        dirs.parent(self.dest_fd.as_fd(), &self.index.entries()[i].path, dest_refused)
            .is_ok_and(|(dir, _)| rustix::fs::unlinkat(dir, self.temp_name(i).as_str(), rustix::fs::AtFlags::empty()).is_ok())
    }
}

/// The parts of `[at, at + len)` of a file that lie in its data extents `extents` (sorted), as
/// `(offset, len)` in the file.
pub(super) fn data_within(extents: &[(u64, u64)], at: u64, len: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    let end = at + len;
    let first = extents.partition_point(|&(s, l)| s + l <= at);
    extents[first..].iter().take_while(move |&&(s, _)| s < end).map(move |&(s, l)| {
        let from = s.max(at);
        (from, (s + l).min(end) - from)
    })
}

#[cfg(test)]
mod sparse_tests {
    /// Issue 32: a piece of a sparse file is written only where it meets the file's data.
    #[test]
    fn only_the_data_of_a_piece_is_written() {
        let x = [(100, 50), (1000, 10), (5000, 1)];
        let got = |at, len| super::data_within(&x, at, len).collect::<Vec<_>>();
        assert_eq!(got(0, 100), []);
        assert_eq!(got(0, 4096), [(100, 50), (1000, 10)]);
        assert_eq!(got(120, 885), [(120, 30), (1000, 5)]);
        assert_eq!(got(4096, 4096), [(5000, 1)]);
        assert_eq!(got(5001, 10), []);
    }
}
