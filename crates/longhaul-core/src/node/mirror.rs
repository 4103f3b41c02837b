//! Mirrors on a node: what a push with `--delete` removes once its transfer verified, and a
//! dry run's plan (what it would receive, update and delete), both from the walk and the
//! decisions the push itself makes.
//!
//! What is deleted: under each directory the index names at its top (`DEST/SRC` for a source
//! directory `SRC`, as `rsync -a --delete SRC DEST/`), every entry the index does not name,
//! unless the sender's filter rules leave its path out (rsync's protection of excluded paths),
//! it is a receiver's temporary file (`.lh-*.part`: a resumable attempt's, or a concurrent
//! push's), or it is a `.longhaul` at the top of the tree. The walk opens each directory at its
//! parent's descriptor with O_NOFOLLOW, reads entries with fstatat(AT_SYMLINK_NOFOLLOW) and
//! removes with unlinkat: a symlink is removed as a link, never followed, and nothing outside
//! the destination is reached. Directories go deepest first, and only when emptied: one that
//! holds a protected entry stays.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};
use crate::session::mirror::{Listed, Request};
use crate::session::recv::sums::Held;
use crate::sys::beneath::{self, DirCache};
use crate::sys::net::Deadline;
use crate::sys::state_dir::STATE_DIR;
use crate::vfile::filter::Filter;
use crate::vfile::index::{Entry, Index, Kind};
use crate::wire::frame::{self, MARK_DELETE, MARK_NEW, MARK_UPDATE};

/// The MIRROR that follows MANIFEST when the client offered FEATURE_DELETE or FEATURE_DRY_RUN
/// (and only then), its rules compiled; it must ask for what the features said.
pub(super) fn read_request(sock: &std::net::TcpStream, features: u64, within: Duration) -> Result<Option<(Request, Filter)>> {
    let (delete, dry_run) = (features & frame::FEATURE_DELETE != 0, features & frame::FEATURE_DRY_RUN != 0);
    if !delete && !dry_run {
        return Ok(None);
    }
    let (req, filter) = Request::from_msg(frame::expect_reply(&mut Deadline::new(sock, within), 0)?)?;
    if (req.delete, req.dry_run) != (delete, dry_run) {
        return Err(Error::Protocol("MIRROR asks for other than the features offered at HELLO".into()));
    }
    Ok(Some((req, filter)))
}

/// How the walk names a directory it cannot open: swapped for a symlink or a file while it ran.
fn refused(path: &[u8], e: rustix::io::Errno) -> Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::XDEV => {
            Error::PathEscape { path: crate::error::lossy(path), why: "a directory replaced by a symlink during --delete" }
        }
        e => Error::io("open", path, e.into()),
    }
}

/// Directory levels the walk goes down, below a top directory of the index: deeper than any
/// path an index may name (2,048 components with its destination), and what a walk on its own
/// thread's stack (`WALK_STACK`) holds with room to spare. A deeper tree, which only a local
/// user could have made, fails the deletion (`E_LIMIT`) rather than the node.
pub(super) const MAX_WALK_DEPTH: usize = 4_096;

/// What a walk holds beside the index, out of the node's memory budget: its map of the index's
/// paths (a bucket and a control byte an entry, at most twice as many buckets as entries).
pub(super) fn walk_share(index: &Index) -> u64 {
    index.entries().len() as u64 * 2 * (std::mem::size_of::<(&[u8], &Entry)>() as u64 + 1)
}

/// The walk's own stack: each level holds a frame of a few hundred bytes.
const WALK_STACK: usize = 16 << 20;

/// What `dest` holds under the index's top directories and the index does not, deepest first:
/// removed when `act`, else only listed (a dry run). Counted in the TALLY's `deleted_*`. A
/// walk that fails part-way still says what it removed, beside the error: what went, went.
pub(super) fn extra(dest: BorrowedFd<'_>, index: &Index, filter: &Filter, act: bool) -> (Listed, Option<Error>) {
    std::thread::scope(|s| {
        let walking = std::thread::Builder::new().name("lh-mirror".into()).stack_size(WALK_STACK).spawn_scoped(s, || {
            let kinds: HashMap<&[u8], &Entry> = index.entries().iter().map(|e| (&e.path[..], e)).collect();
            let mut walk = Walk { kinds, filter, act, listed: Listed::default() };
            let stopped = walk_tops(&mut walk, dest, index, act).err();
            (walk.listed, stopped)
        });
        match walking {
            Ok(w) => w.join().unwrap_or_else(|p| (Listed::default(), Some(crate::panic::from_payload("mirror", p)))),
            Err(e) => (Listed::default(), Some(Error::io("start", b"the --delete walk", e))),
        }
    })
}

fn walk_tops(walk: &mut Walk<'_>, dest: BorrowedFd<'_>, index: &Index, act: bool) -> Result<()> {
    for top in index.entries().iter().filter(|e| e.kind == Kind::Dir && !e.path.contains(&b'/')) {
        let fd = match beneath::open_dir(dest, &top.path, refused) {
            Ok(fd) => fd,
            // A dry run into a destination not made yet: nothing there to delete.
            Err(_) if !act => continue,
            Err(e) => return Err(e),
        };
        walk.mirrored(fd.as_fd(), top, top.path.len() + 1, 0)?;
    }
    Ok(())
}

struct Walk<'a> {
    kinds: HashMap<&'a [u8], &'a Entry>,
    filter: &'a Filter,
    act: bool,
    listed: Listed,
}

fn too_deep(path: &[u8]) -> Error {
    Error::Limit {
        what: "directory levels below a --delete destination",
        limit: MAX_WALK_DEPTH as u64,
        got: crate::error::lossy(path).matches('/').count() as u64,
    }
}

/// The entries of the directory at `fd` (not `.` and `..`) with their lstat.
fn entries(fd: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<(Vec<u8>, rustix::fs::Stat)>> {
    let dup = rustix::fs::openat(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", path, e.into()))?;
    let mut out = Vec::new();
    for d in rustix::fs::Dir::read_from(&dup).map_err(|e| Error::io("list", path, e.into()))? {
        let d = d.map_err(|e| Error::io("list", path, e.into()))?;
        let name = d.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let st = match rustix::fs::statat(fd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Gone since it was listed: nothing to delete.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(Error::io("stat", name, e.into())),
        };
        out.push((name.to_vec(), st));
    }
    // Sorted, so that lists come out the same way each time.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn open_child(fd: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(fd, OsStr::from_bytes(name), flags, Mode::empty()).map_err(|e| refused(path, e))
}

impl Walk<'_> {
    /// A directory of the index: its entries the index does not name go (unless protected),
    /// its subdirectories of the index are walked in turn. A directory something was removed
    /// from gets the index's mtime back, as the receiver gave it (rsync's result too).
    fn mirrored(&mut self, fd: BorrowedFd<'_>, dir: &Entry, below: usize, depth: usize) -> Result<()> {
        let path = &dir.path[..];
        if depth > MAX_WALK_DEPTH {
            return Err(too_deep(path));
        }
        let mut removed = false;
        for (name, st) in entries(fd, path)? {
            let child = [path, b"/", &name].concat();
            match self.kinds.get(&child[..]) {
                Some(e) if e.kind == Kind::Dir && is_dir(&st) => {
                    let sub = open_child(fd, &name, &child)?;
                    self.mirrored(sub.as_fd(), e, below, depth + 1)?;
                }
                // The transfer made it what the index says (a dry run: it would).
                Some(_) => {}
                None if self.protected(&child, below, &name, &st, path.len() + 1 == below) => {}
                None => removed |= self.remove(fd, &name, &child, &st, below, depth + 1)?,
            }
        }
        if removed && self.act {
            let t = rustix::fs::Timespec {
                tv_sec: dir.mtime_ns.div_euclid(1_000_000_000),
                tv_nsec: dir.mtime_ns.rem_euclid(1_000_000_000) as _,
            };
            let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
            rustix::fs::futimens(fd, &times).map_err(|e| Error::io("set the mtime of", path, e.into()))?;
        }
        Ok(())
    }

    fn protected(&self, path: &[u8], below: usize, name: &[u8], st: &rustix::fs::Stat, top: bool) -> bool {
        let temp = name.starts_with(b".lh-") && name.ends_with(b".part");
        temp || (top && name == STATE_DIR.as_bytes()) || self.filter.excludes(&path[below..], is_dir(st))
    }

    /// Removes `name` (at `fd`) and, for a directory, what it holds that is not protected.
    /// Whether it is gone (or, in a dry run, would be).
    fn remove(&mut self, fd: BorrowedFd<'_>, name: &[u8], path: &[u8], st: &rustix::fs::Stat, below: usize, depth: usize) -> Result<bool> {
        if depth > MAX_WALK_DEPTH {
            return Err(too_deep(path));
        }
        if !is_dir(st) {
            if self.act {
                match rustix::fs::unlinkat(fd, OsStr::from_bytes(name), AtFlags::empty()) {
                    // Gone meanwhile (another --delete of the same destination): nothing to do.
                    Err(rustix::io::Errno::NOENT) => return Ok(true),
                    r => r.map_err(|e| Error::io("delete", path, e.into()))?,
                }
            }
            self.listed.tally.deleted_files += 1;
            // The bytes the deletion frees: a file with other names (hard links) frees none.
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink == 1 {
                self.listed.tally.deleted_bytes += st.st_size as u64;
            }
            self.listed.note(MARK_DELETE, path.to_vec());
            return Ok(true);
        }
        let sub = match open_child(fd, name, path) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            r => r?,
        };
        let mut emptied = true;
        for (child_name, child_st) in entries(sub.as_fd(), path)? {
            let child = [path, b"/", &child_name].concat();
            if self.protected(&child, below, &child_name, &child_st, false) {
                emptied = false;
                continue;
            }
            emptied &= self.remove(sub.as_fd(), &child_name, &child, &child_st, below, depth + 1)?;
        }
        if !emptied {
            return Ok(false);
        }
        if self.act {
            rustix::fs::unlinkat(fd, OsStr::from_bytes(name), AtFlags::REMOVEDIR).map_err(|e| Error::io("delete", path, e.into()))?;
        }
        self.listed.tally.deleted_dirs += 1;
        self.listed.note(MARK_DELETE, [path, b"/"].concat());
        Ok(true)
    }
}

/// A dry run's plan for `index` into `dest` (None: not there yet): each file and symlink new,
/// to update or unchanged, decided as the push would (`held`, the SUMS' verdict; with `resume`
/// off every file is sent), and with `delete` what would be deleted.
pub(super) fn plan(
    dest: Option<BorrowedFd<'_>>,
    index: &Index,
    block_size: u32,
    held: Option<&Held>,
    resume: bool,
    delete: Option<&Filter>,
    keep_setid: bool,
) -> Result<Listed> {
    let entries = index.entries();
    let mut listed = Listed::default();
    let (same, in_place) = match (dest, resume) {
        (Some(d), true) => crate::session::recv::held_files(index, d, block_size, held, keep_setid),
        _ => (vec![false; entries.len()], vec![false; entries.len()]),
    };
    let mut dirs = DirCache::default();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.kind != Kind::Dir) {
        let there = dest.and_then(|d| {
            let (dir, name) = dirs.parent(d, &e.path, refused).ok()?;
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
            let target = (FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                .then(|| rustix::fs::readlinkat(dir, name, Vec::new()).ok())
                .flatten()
                .map(|t| t.into_bytes());
            Some((st, target))
        });
        let unchanged = match (&there, e.kind) {
            (Some((st, _)), Kind::File) if e.size == 0 => {
                resume
                    && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && st.st_size == 0
                    && st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128 == e.mtime_ns as i128
            }
            (Some(_), Kind::File) => same[i],
            (Some((_, Some(target))), Kind::Symlink) => target[..] == e.target[..],
            _ => false,
        };
        let t = &mut listed.tally;
        if unchanged && in_place[i] {
            // Its bytes stay; its mode, mtime or attributes change: an update with no byte sent.
            t.changed_files += 1;
            listed.note(MARK_UPDATE, e.path.to_vec());
        } else if unchanged {
            t.unchanged_files += 1;
            t.unchanged_bytes += e.size;
        } else if there.is_some() {
            t.changed_files += 1;
            t.changed_bytes += e.size;
            listed.note(MARK_UPDATE, e.path.to_vec());
        } else {
            t.new_files += 1;
            t.new_bytes += e.size;
            listed.note(MARK_NEW, e.path.to_vec());
        }
    }
    if let (Some(d), Some(filter)) = (dest, delete) {
        let (gone, stopped) = extra(d, index, filter, false);
        if let Some(e) = stopped {
            return Err(e);
        }
        listed.tally.deleted_files = gone.tally.deleted_files;
        listed.tally.deleted_dirs = gone.tally.deleted_dirs;
        listed.tally.deleted_bytes = gone.tally.deleted_bytes;
        for (mark, path) in gone.items {
            listed.note(mark, path);
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use crate::vfile::filter::Rule;
    use std::fs;

    fn walked((listed, stopped): (Listed, Option<Error>)) -> Listed {
        assert!(stopped.is_none(), "{stopped:?}");
        listed
    }

    fn dir_fd(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    /// The walk deletes what the index does not name (deepest first), keeps what the rules
    /// leave out, a receiver's temporary file and `.longhaul`, removes a symlink as a link, and
    /// a dry run lists the same and removes nothing.
    #[test]
    fn issue_32_extra_entries_go_and_protected_ones_stay() {
        let t = Scratch::new("mirror-extra");
        let (src, dest, outside) = (t.join("src"), t.join("dest"), t.join("outside"));
        fs::create_dir_all(src.join("keep")).unwrap();
        fs::write(src.join("keep/a"), b"a").unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), b"v").unwrap();
        let m = dest.join("src");
        fs::create_dir_all(m.join("keep")).unwrap();
        fs::write(m.join("keep/a"), b"a").unwrap();
        fs::create_dir_all(m.join("gone/deeper")).unwrap();
        fs::write(m.join("gone/deeper/f"), b"12345").unwrap();
        fs::write(m.join("stale"), b"xy").unwrap();
        fs::create_dir_all(m.join("cache")).unwrap();
        fs::write(m.join("cache/c"), b"c").unwrap();
        fs::write(m.join("keep/.lh-0123456789ab-0.part"), b"p").unwrap();
        fs::create_dir_all(m.join(".longhaul")).unwrap();
        std::os::unix::fs::symlink(&outside, m.join("escape")).unwrap();
        let index = crate::vfile::scan::scan(&src, 1).unwrap().index;
        let filter = Filter::new(&[Rule::parse("- /cache/")]).unwrap();
        let fd = dir_fd(&dest);

        let dry = walked(extra(fd.as_fd(), &index, &filter, false));
        assert!(m.join("gone/deeper/f").exists() && m.join("escape").exists(), "a dry run removes nothing");
        let done = walked(extra(fd.as_fd(), &index, &filter, true));
        assert_eq!(dry, done);
        let paths = done.paths(MARK_DELETE);
        assert_eq!(paths, ["src/escape", "src/gone/deeper/f", "src/gone/deeper/", "src/gone/", "src/stale"]);
        assert_eq!((done.tally.deleted_files, done.tally.deleted_dirs, done.tally.deleted_bytes), (3, 2, 7));
        assert!(!m.join("gone").exists() && !m.join("stale").exists());
        assert!(fs::symlink_metadata(m.join("escape")).is_err(), "the link itself is gone");
        assert!(outside.join("victim").exists(), "nothing behind the link was touched");
        for kept in ["keep/a", "cache/c", "keep/.lh-0123456789ab-0.part", ".longhaul"] {
            assert!(m.join(kept).exists(), "{kept} stays");
        }
    }

    /// A tree deeper than the walk goes (only a local user can make one) fails the deletion
    /// with E_LIMIT instead of the node's stack: the walk reaches MAX_WALK_DEPTH levels on its
    /// own stack, then refuses. (A review found the node crashed at ~4,000 levels before.)
    #[test]
    fn issue_32_a_very_deep_tree_is_refused_not_a_crash() {
        let t = Scratch::new("mirror-deep");
        let src = t.join("src");
        fs::create_dir_all(src.join("keep")).unwrap();
        let index = crate::vfile::scan::scan(&src, 1).unwrap().index;
        let dest = t.join("dest");
        fs::create_dir_all(dest.join("src/keep")).unwrap();
        // Made a level at a time from the deepest descriptor: paths this long do not fit PATH_MAX.
        let mut fd = dir_fd(&dest.join("src"));
        for _ in 0..MAX_WALK_DEPTH + 2 {
            rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, "d", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        }
        for act in [false, true] {
            let e = extra(dir_fd(&dest).as_fd(), &index, &Filter::default(), act).1.expect("refused");
            assert_eq!(e.code(), "E_LIMIT", "{e}");
        }
        assert!(dest.join("src/d").exists(), "a refused walk removed nothing on its way down");
    }

    /// The bytes a deletion frees: a file with another name frees none; the count still says it went.
    #[test]
    fn issue_32_a_hard_linked_file_frees_no_bytes() {
        let t = Scratch::new("mirror-nlink");
        let src = t.join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("kept"), b"k").unwrap();
        let m = t.join("dest/src");
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join("kept"), b"k").unwrap();
        fs::write(m.join("alone"), b"12345").unwrap();
        fs::write(m.join("linked"), b"1234567").unwrap();
        fs::hard_link(m.join("linked"), t.join("other-name")).unwrap();
        let index = crate::vfile::scan::scan(&src, 1).unwrap().index;
        let done = walked(extra(dir_fd(&t.join("dest")).as_fd(), &index, &Filter::default(), true));
        assert_eq!((done.tally.deleted_files, done.tally.deleted_bytes), (2, 5));
        assert_eq!(fs::read(t.join("other-name")).unwrap(), b"1234567");
    }
}
