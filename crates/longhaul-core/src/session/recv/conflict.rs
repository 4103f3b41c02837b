//! Whether a tree can be received into its destination without a file and a directory meeting
//! at one path. Checked when the manifest arrives, before the receiver creates anything: a
//! conflict found only at the final rename would have cost every byte of the transfer and
//! left a temporary file behind.
//!
//! What the receiver does with what is already there, by the index's kind and the
//! destination's (rsync's rules, except that a directory is never removed to make room):
//!
//! | index \ destination | missing | directory       | symlink         | file (or other)  |
//! |---------------------|---------|-----------------|-----------------|------------------|
//! | directory           | made    | kept            | E_PATH_ESCAPE   | E_CONFLICT       |
//! | file                | made    | E_CONFLICT      | link replaced   | replaced         |
//! | symlink             | made    | E_CONFLICT      | replaced        | replaced         |
//!
//! A directory in the way of a file is a conflict even when empty: removing a directory the
//! client did not name is not the receiver's to decide (rsync needs `--force` for a non-empty
//! one). A file in the way of a directory is a conflict for everything the index puts under it.
//!
//! Cost: one lookup per entry whose parent directory already exists at the destination, none
//! for entries under a directory the transfer will make, so a push into a new destination
//! pays one. Lookups are relative to the parent's descriptor, opened one component at a time
//! without following symlinks (beneath.rs), one open per run of entries in a directory.
//! This is a check, not a lock: a local user who makes a directory in the way while the data
//! flows still gets the transfer failed at the rename (E_IO), never a write elsewhere.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{lossy, Error, Result};
use crate::sys::beneath::DirCache;
use crate::vfile::index::{Index, Kind};

/// What a name is at the destination, not following a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum There {
    Missing,
    Dir,
    Symlink,
    /// A regular file, or a fifo, socket or device: anything a rename replaces.
    File,
}

/// Refuses `index` if it cannot be received into `dest` (relative to `base`, empty for `base`
/// itself) without a file and a directory meeting: `E_CONFLICT` naming the first such path.
pub(crate) fn check(base: BorrowedFd<'_>, dest: &[u8], index: &Index) -> Result<()> {
    lookups(base, dest, index).map(|_| ())
}

/// `check`, returning how many names it looked up (tests hold it to its cost).
fn lookups(base: BorrowedFd<'_>, dest: &[u8], index: &Index) -> Result<u64> {
    if !dest.is_empty() {
        crate::vfile::index::check_path(dest)?;
    }
    let shown = |path: &[u8]| {
        if dest.is_empty() {
            lossy(path)
        } else {
            format!("{}/{}", lossy(dest), lossy(path))
        }
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // `base` is the operator's root or the DEST a user named, opened by its owner (it may
    // have been reached through a symlink); below it nothing is followed.
    let mut dest_fd: OwnedFd = rustix::fs::openat(base, ".", flags, Mode::empty()).map_err(|e| Error::io("open", b".", e.into()))?;
    let mut looked = 0u64;
    let mut walked = 0;
    for c in dest.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        walked += c.len() + usize::from(walked > 0);
        let at = &dest[..walked];
        looked += 1;
        match rustix::fs::openat(&dest_fd, OsStr::from_bytes(c), flags, Mode::empty()) {
            Ok(fd) => dest_fd = fd,
            Err(Errno::NOENT) => return Ok(looked),
            Err(Errno::NOTDIR | Errno::LOOP) => {
                return Err(match there(dest_fd.as_fd(), OsStr::from_bytes(c), at)? {
                    There::Symlink => Error::PathEscape { path: lossy(at), why: "an existing symlink is in the way" },
                    _ => Error::Conflict { path: lossy(at), why: "the destination has a file where a directory is wanted" },
                })
            }
            Err(e) => return Err(Error::io("open", at, e.into())),
        }
    }
    // The index's directories on the way down to the current entry, each with whether it
    // exists at the destination. In tree order an entry's parent (which the index holds, being
    // checked) is on top once the directories it is not under are popped.
    let mut stack: Vec<(&[u8], bool)> = Vec::new();
    let mut dirs = DirCache::default();
    for e in index.entries() {
        while stack.last().is_some_and(|&(d, _)| !(e.path.len() > d.len() && e.path.starts_with(d) && e.path[d.len()] == b'/')) {
            stack.pop();
        }
        if !stack.last().is_none_or(|&(_, exists)| exists) {
            // Under a directory the transfer makes: nothing can be in the way.
            if e.kind == Kind::Dir {
                stack.push((&e.path, false));
            }
            continue;
        }
        let (dir, name) = dirs.parent(dest_fd.as_fd(), &e.path, |dir, err| match err {
            Errno::LOOP | Errno::NOTDIR => Error::PathEscape { path: lossy(dir), why: "a directory was replaced during the check" },
            err => Error::io("open", dir, err.into()),
        })?;
        looked += 1;
        let found = there(dir, name, &e.path)?;
        let refused = match (e.kind, found) {
            (Kind::Dir, There::Missing | There::Dir) => {
                stack.push((&e.path, found == There::Dir));
                None
            }
            (Kind::Dir, There::Symlink) => Some(Error::PathEscape { path: shown(&e.path), why: "an existing symlink is in the way" }),
            (Kind::Dir, There::File) => {
                Some(Error::Conflict { path: shown(&e.path), why: "the destination has a file where the tree has a directory" })
            }
            (Kind::File | Kind::HardLink, There::Dir) => {
                Some(Error::Conflict { path: shown(&e.path), why: "the destination has a directory where the tree has a file" })
            }
            (Kind::Symlink, There::Dir) => {
                Some(Error::Conflict { path: shown(&e.path), why: "the destination has a directory where the tree has a symlink" })
            }
            (Kind::File | Kind::HardLink | Kind::Symlink, There::Missing | There::Symlink | There::File) => None,
        };
        if let Some(err) = refused {
            return Err(err);
        }
    }
    Ok(looked)
}

/// What `name` is in `dir`, as lstat sees it.
fn there(dir: std::os::fd::BorrowedFd<'_>, name: &OsStr, shown: &[u8]) -> Result<There> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => There::Dir,
            FileType::Symlink => There::Symlink,
            _ => There::File,
        }),
        Err(Errno::NOENT) => Ok(There::Missing),
        Err(e) => Err(Error::io("lstat", shown, e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use crate::vfile::index::Entry;
    use std::fs;
    use std::path::Path;

    /// `base` opened as the node or the client opens it (a symlink to it followed).
    fn at(base: &Path) -> OwnedFd {
        rustix::fs::open(base, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    fn entry(path: &str, kind: Kind) -> Entry {
        let (size, target) = match kind {
            Kind::File => (3, &b""[..]),
            Kind::Symlink => (0, &b"elsewhere"[..]),
            Kind::Dir | Kind::HardLink => (0, &b""[..]),
        };
        Entry { path: path.as_bytes().into(), kind, mode: 0o755, mtime_ns: 0, size, offset: 0, target: target.into() }
    }

    fn index(entries: &[(&str, Kind)]) -> Index {
        Index::from_entries(entries.iter().map(|&(p, k)| entry(p, k)).collect()).unwrap()
    }

    /// A node's root with `a/` (holding `a/f` and `a/d/`), a file `x` and a symlink `l`.
    fn node(name: &str) -> Scratch {
        let root = Scratch::new(&format!("conflict-{name}"));
        fs::create_dir_all(root.join("a/d")).unwrap();
        fs::write(root.join("a/f"), b"old").unwrap();
        fs::write(root.join("x"), b"old").unwrap();
        std::os::unix::fs::symlink("a", root.join("l")).unwrap();
        root
    }

    fn refused(root: &Path, dest: &str, entries: &[(&str, Kind)]) -> (String, String) {
        let err = check(at(root).as_fd(), dest.as_bytes(), &index(entries)).unwrap_err();
        let path = match &err {
            Error::Conflict { path, .. } | Error::PathEscape { path, .. } => path.clone(),
            e => panic!("unexpected {e}"),
        };
        (err.code().to_owned(), path)
    }

    /// issue 29: a file where the node has a directory, a directory where it has a file, a
    /// file under a path that is a file on the node, a symlink where it has a directory.
    #[test]
    fn a_file_and_a_directory_at_one_path_are_refused_naming_it() {
        let root = node("refused");
        let code = |c: &str, p: &str| (c.to_owned(), p.to_owned());
        assert_eq!(refused(&root, "", &[("a", Kind::Dir), ("a/d", Kind::File)]), code("E_CONFLICT", "a/d"));
        assert_eq!(refused(&root, "", &[("a", Kind::File)]), code("E_CONFLICT", "a"));
        assert_eq!(refused(&root, "", &[("x", Kind::Dir), ("x/y", Kind::File)]), code("E_CONFLICT", "x"));
        assert_eq!(refused(&root, "", &[("a", Kind::Dir), ("a/f", Kind::Dir)]), code("E_CONFLICT", "a/f"));
        assert_eq!(refused(&root, "", &[("a", Kind::Dir), ("a/d", Kind::Symlink)]), code("E_CONFLICT", "a/d"));
        // Inside a destination: the path is named from the root.
        assert_eq!(refused(&root, "a", &[("d", Kind::File)]), code("E_CONFLICT", "a/d"));
        // The destination itself, or a directory on the way to it, is a file.
        assert_eq!(refused(&root, "x", &[("y", Kind::File)]), code("E_CONFLICT", "x"));
        assert_eq!(refused(&root, "a/f/deeper", &[("y", Kind::File)]), code("E_CONFLICT", "a/f"));
        // A symlink where a directory is wanted is refused as before, only earlier.
        assert_eq!(refused(&root, "", &[("l", Kind::Dir)]), code("E_PATH_ESCAPE", "l"));
        assert_eq!(refused(&root, "l/sub", &[("y", Kind::File)]), code("E_PATH_ESCAPE", "l"));
        // An empty directory is in the way too.
        fs::create_dir(root.join("empty")).unwrap();
        assert_eq!(refused(&root, "", &[("empty", Kind::File)]), code("E_CONFLICT", "empty"));
        // Nothing was changed by looking.
        assert_eq!(fs::read(root.join("x")).unwrap(), b"old");
        assert!(root.join("a/d").is_dir());
    }

    #[test]
    fn what_a_rename_replaces_passes() {
        let root = node("passes");
        let ok = |dest: &str, entries: &[(&str, Kind)]| check(at(&root).as_fd(), dest.as_bytes(), &index(entries)).unwrap();
        // Files and links over files and links (the link itself is replaced, not followed).
        ok("", &[("x", Kind::File), ("l", Kind::File)]);
        ok("", &[("x", Kind::Symlink), ("l", Kind::Symlink)]);
        // Directories into directories, with new and replaced files.
        ok("", &[("a", Kind::Dir), ("a/d", Kind::Dir), ("a/d/new", Kind::File), ("a/f", Kind::File), ("a/g", Kind::Dir)]);
        // A new destination, and a destination under one.
        ok("new/deeper", &[("x", Kind::Dir), ("x/a", Kind::File)]);
        ok("a/d", &[("x", Kind::Dir)]);
    }

    /// issue 29: a push into a new destination costs a lookup, not one per file.
    #[test]
    fn entries_under_a_directory_the_transfer_makes_are_not_looked_up() {
        let root = node("cost");
        let mut entries = vec![("a", Kind::Dir), ("a/new", Kind::Dir)];
        let names: Vec<String> = (0..10_000).map(|i| format!("a/new/f{i:05}")).collect();
        entries.extend(names.iter().map(|n| (n.as_str(), Kind::File)));
        entries.push(("a/z", Kind::File));
        let tree = index(&entries);
        assert_eq!(lookups(at(&root).as_fd(), b"", &tree).unwrap(), 3, "a, a/new, a/z");
        assert_eq!(lookups(at(&root).as_fd(), b"fresh", &tree).unwrap(), 1, "the destination, missing");
    }

    /// A node's root (or a pull's DEST) may itself be a symlink to a directory.
    #[test]
    fn the_base_directory_may_be_a_symlink() {
        let root = node("linked-base");
        let link = root.join("../").join(format!("conflict-linked-base-link-{}", std::process::id()));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&*root, &link).unwrap();
        let err = check(at(&link).as_fd(), b"", &index(&[("a", Kind::File)])).unwrap_err();
        assert_eq!(err.code(), "E_CONFLICT", "{err}");
        check(at(&link).as_fd(), b"", &index(&[("x", Kind::File)])).unwrap();
        fs::remove_file(&link).unwrap();
    }
}
