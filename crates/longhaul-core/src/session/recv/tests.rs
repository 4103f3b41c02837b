use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::dest_refused;
use crate::scratch::Scratch;
use crate::sys::beneath::DirCache;

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("receive-{name}"))
}

fn open_dir(p: &Path) -> OwnedFd {
    rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
}

/// Which directory a descriptor is, as its device and inode.
fn ino(fd: BorrowedFd<'_>) -> (u64, u64) {
    let st = rustix::fs::fstat(fd).unwrap();
    (st.st_dev, st.st_ino)
}

fn ino_of(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn dir_cache_opens_the_parent_and_keeps_it_while_files_share_it() {
    let root = scratch("dircache");
    fs::create_dir_all(root.join("a/b")).unwrap();
    let dest = open_dir(&root);
    let mut dirs = DirCache::default();

    let (fd, name) = dirs.parent(dest.as_fd(), b"top.txt", dest_refused).unwrap();
    assert_eq!((ino(fd), name), (ino_of(&root), OsStr::new("top.txt")));
    let (fd, name) = dirs.parent(dest.as_fd(), b"a/b/one", dest_refused).unwrap();
    assert_eq!((ino(fd), name), (ino_of(&root.join("a/b")), OsStr::new("one")));
    let first = dirs.held().unwrap();
    let (fd, name) = dirs.parent(dest.as_fd(), b"a/b/two", dest_refused).unwrap();
    assert_eq!((ino(fd), name), (ino_of(&root.join("a/b")), OsStr::new("two")));
    assert_eq!(dirs.held().unwrap(), first, "the same directory is not opened again");
    let (fd, _) = dirs.parent(dest.as_fd(), b"a/three", dest_refused).unwrap();
    assert_eq!(ino(fd), ino_of(&root.join("a")));
}

#[test]
fn dir_cache_refuses_a_directory_replaced_by_a_symlink() {
    let root = scratch("dircache-swap");
    let outside = scratch("dircache-outside");
    fs::create_dir_all(root.join("a/b")).unwrap();
    let dest = open_dir(&root);
    let mut dirs = DirCache::default();
    dirs.parent(dest.as_fd(), b"a/b/one", dest_refused).unwrap();
    // Swapped after the index was checked and the tree made: a path walk would follow it.
    fs::remove_dir_all(root.join("a/b")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("a/b")).unwrap();
    // The open directory is still the one made under the root (now unlinked), not `outside`.
    let (fd, _) = dirs.parent(dest.as_fd(), b"a/b/two", dest_refused).unwrap();
    assert_ne!(ino(fd), ino_of(&outside));
    // Opened afresh (another directory came between), the symlink is refused.
    dirs.parent(dest.as_fd(), b"a/x", dest_refused).unwrap();
    let err = dirs.parent(dest.as_fd(), b"a/b/three", dest_refused).unwrap_err();
    assert_eq!(err.code(), "E_PATH_ESCAPE", "{err}");
    // An intermediate component swapped the same way.
    fs::remove_file(root.join("a/b")).unwrap();
    fs::rename(root.join("a"), root.join("a.old")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
    fs::create_dir(outside.join("b")).unwrap();
    let err = dirs.parent(dest.as_fd(), b"a/b/four", dest_refused).unwrap_err();
    assert_eq!(err.code(), "E_PATH_ESCAPE", "{err}");
    assert_eq!(fs::read_dir(outside.join("b")).unwrap().count(), 0);
}
