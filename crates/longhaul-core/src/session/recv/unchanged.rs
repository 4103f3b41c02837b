//! Files found unchanged (same size and mtime, or the same BLAKE3 with `--checksum`) are not
//! received again, but their metadata may have changed at the source since: a chmod, a chown,
//! an extended attribute, an mtime under `--checksum`. rsync -a applies those; so does this
//! receiver, before it tells the sender what it holds.
//!
//! In place only on a file the receiver could have made (docs/SECURITY.md §8): a regular file
//! with one name (the index's only one), owned by the receiver's user or, for a root
//! receiver keeping owners, by the owner the index asks for (a mode, an mtime or a user.*
//! attribute then gives that user nothing they could not give themselves). Through a descriptor
//! opened without following a symlink, never by a name a local user could swap meanwhile.
//! Anything else (a new owner, an attribute outside user.* on a file not the receiver's own,
//! set-id bits the file lacks) is sent again instead: the new file is made and chowned by
//! descriptor as any other is.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timestamps};

use crate::vfile::index::{Index, Kind, OWNER_GID, OWNER_UID};

/// What a receiver applies to the files it finds unchanged, and what it could not.
pub(super) struct MetaSync {
    /// The permission bits a receiver sets (`Receive::mode`'s mask: set-id bits cleared unless kept).
    pub(super) mode_mask: u32,
    /// The receiver runs as root: it may chown and set attributes outside user.*.
    pub(super) root: bool,
    /// Apply what differs (false: a dry run, which only decides).
    pub(super) apply: bool,
    /// Names each file has in the index (itself and its hard links).
    names: Vec<u32>,
    /// Files whose owner or group differs and could not be set (the receiver is not root).
    pub(super) owner_missed: u64,
    /// Files with an attribute the receiver may not set.
    pub(super) xattrs_missed: u64,
    /// Files whose mode, mtime or attributes differ and are set in place (or, in a dry run,
    /// would be): a run that sends no byte of them still changes them.
    pub(super) in_place: Vec<u32>,
    /// Attribute names and a value, read back (buffers kept from file to file).
    names_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// Attribute names.
type Names = Vec<Box<[u8]>>;

/// What became of a file found unchanged.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Its metadata is the index's (or was made so): it stays.
    Held,
    /// Its metadata differs in a way not set in place: it is received again.
    Resend,
}

impl MetaSync {
    pub(super) fn new(index: &Index, mode_mask: u32, apply: bool) -> MetaSync {
        let entries = index.entries();
        let mut names = vec![1u32; entries.len()];
        for e in entries.iter().filter(|e| e.kind == Kind::HardLink) {
            if let Some(n) = names.get_mut(e.offset as usize) {
                *n += 1;
            }
        }
        let root = rustix::process::geteuid().is_root();
        let (names_buf, value_buf) = if index.has_xattrs() {
            (vec![0u8; crate::vfile::index::MAX_XATTR_BYTES], vec![0u8; crate::vfile::index::MAX_XATTR_BYTES])
        } else {
            (Vec::new(), Vec::new())
        };
        MetaSync { mode_mask, root, apply, names, owner_missed: 0, xattrs_missed: 0, in_place: Vec::new(), names_buf, value_buf }
    }

    /// Brings file `i`, `name` in `dir` and found unchanged by its bytes, in line with the
    /// index's mode, mtime, owner (when the index carries owners) and attributes (when it
    /// carries any), or says it must be sent again. `seen`: its stat by name, which decides
    /// alone when nothing differs and the index carries no attributes (the common case: no
    /// call more per file).
    pub(super) fn file(&mut self, index: &Index, i: usize, dir: BorrowedFd<'_>, name: &OsStr, seen: &Stat) -> Outcome {
        let e = &index.entries()[i];
        if !index.has_xattrs() && self.differs(index, i, seen) == (false, false, false) {
            return Outcome::Held;
        }
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(dir, name, flags, Mode::empty()) else { return Outcome::Resend };
        let Ok(st) = rustix::fs::fstat(&fd) else { return Outcome::Resend };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_size as u64 != e.size {
            return Outcome::Resend;
        }
        // The file by its descriptor: the kernel's link to the inode opened, not a name.
        let at = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let at = OsStr::new(&at);

        let want_uid = self.wanted(index, i).0;
        let (owner_differs, mode_differs, mtime_differs) = self.differs(index, i, &st);
        let own = st.st_uid == rustix::process::geteuid().as_raw() || (self.root && want_uid == Some(st.st_uid));
        // One name, here: a link count matching the index's names may still count one outside
        // the destination (a local user's link to a file the receiver owns), which a change in
        // place would reach. A hard-linked file is received again, its links made anew.
        let safe = own && st.st_nlink == 1 && self.names[i] == 1;
        if owner_differs && self.root {
            // A new owner is given by descriptor to a file this receiver makes.
            return Outcome::Resend;
        }
        if owner_differs {
            self.owner_missed += 1;
        }

        let mode = e.mode & self.mode_mask;
        let (sets, removes, missed) = if index.has_xattrs() { self.xattr_changes(index, i, at) } else { (Vec::new(), Vec::new(), false) };
        if missed {
            self.xattrs_missed += 1;
        }
        if !mode_differs && !mtime_differs && sets.is_empty() && removes.is_empty() {
            return Outcome::Held;
        }
        let privileged = sets.iter().chain(&removes).any(|n| !n.starts_with(b"user."));
        // Set-id bits the file lacks would go to bytes the quick check never read, which its
        // owner may have put there (a setgid to a group they are not in): sent again instead.
        let adds_setid = mode & 0o6000 & !st.st_mode != 0;
        if !safe || adds_setid || (privileged && st.st_uid != rustix::process::geteuid().as_raw()) {
            return Outcome::Resend;
        }
        self.in_place.push(i as u32);
        if !self.apply {
            return Outcome::Held;
        }
        let attrs = index.xattrs_of(i).unwrap_or(&[]);
        // Refused (a file system without them, say): counted as not kept, as on a file made
        // here; sending the file again would not change the answer.
        let mut refused = false;
        for name in &sets {
            let value = attrs.iter().find(|(n, _)| n == name).map(|(_, v)| &v[..]).unwrap_or(&[]);
            refused |= rustix::fs::setxattr(at, OsStr::from_bytes(name), value, rustix::fs::XattrFlags::empty()).is_err();
        }
        for name in &removes {
            refused |= rustix::fs::removexattr(at, OsStr::from_bytes(name)).is_err();
        }
        if refused && !missed {
            self.xattrs_missed += 1;
        }
        if mode_differs && rustix::fs::chmod(at, Mode::from_raw_mode(mode)).is_err() {
            return Outcome::Resend;
        }
        let t = rustix::fs::Timespec { tv_sec: e.mtime_ns.div_euclid(1_000_000_000), tv_nsec: e.mtime_ns.rem_euclid(1_000_000_000) as _ };
        if mtime_differs
            && rustix::fs::utimensat(rustix::fs::CWD, at, &Timestamps { last_access: t, last_modification: t }, AtFlags::empty()).is_err()
        {
            return Outcome::Resend;
        }
        Outcome::Held
    }

    /// The owner and group the index asks entry `i` to have, where it asks.
    fn wanted(&self, index: &Index, i: usize) -> (Option<u32>, Option<u32>) {
        let Some(o) = index.owners() else { return (None, None) };
        let (u, g) = o.ids[i];
        // u32::MAX is chown's "leave it as it is": never a real id to set.
        ((o.which & OWNER_UID != 0 && u != u32::MAX).then_some(u), (o.which & OWNER_GID != 0 && g != u32::MAX).then_some(g))
    }

    /// Whether `st`'s owner (as asked), mode and mtime differ from entry `i`'s.
    fn differs(&self, index: &Index, i: usize, st: &Stat) -> (bool, bool, bool) {
        let e = &index.entries()[i];
        let (uid, gid) = self.wanted(index, i);
        let owner = uid.is_some_and(|u| u != st.st_uid) || gid.is_some_and(|g| g != st.st_gid);
        let mode = st.st_mode & 0o7777 != e.mode & self.mode_mask;
        let mtime = st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128 != e.mtime_ns as i128;
        (owner, mode, mtime)
    }

    /// The attributes file `at` lacks or holds with another value (set), those it holds and the
    /// index does not (removed), among those the receiver manages (user.*, and as root the
    /// others); and whether the index has one the receiver may not set.
    fn xattr_changes(&mut self, index: &Index, i: usize, at: &OsStr) -> (Names, Names, bool) {
        let keep_setid = self.mode_mask & 0o6000 != 0;
        let attrs = index.xattrs_of(i).unwrap_or(&[]);
        let root = self.root;
        let may = |n: &[u8]| n.starts_with(b"user.") || (root && (n != b"security.capability" || keep_setid));
        let (names, value) = (&mut self.names_buf, &mut self.value_buf);
        // None (ENOTSUP) or unreadable: whatever the index has is set again.
        let listed = rustix::fs::listxattr(at, &mut names[..]).unwrap_or(0);
        let held: Vec<&[u8]> = names[..listed].split(|&c| c == 0).filter(|n| !n.is_empty()).collect();
        let mut sets = Vec::new();
        let mut missed = false;
        for (name, want) in attrs {
            if !may(name) {
                missed = true;
                continue;
            }
            let same = held.contains(&&name[..])
                && rustix::fs::getxattr(at, OsStr::from_bytes(name), &mut value[..]).is_ok_and(|n| value[..n] == want[..]);
            if !same {
                sets.push(name.clone());
            }
        }
        // What the kernel or a security module puts there on its own is not the index's to remove.
        let removes = held
            .into_iter()
            .filter(|n| may(n) && !n.starts_with(b"security.") && !attrs.iter().any(|(a, _)| &a[..] == *n))
            .map(Box::from)
            .collect();
        (sets, removes, missed)
    }
}

/// Removes from directory `fd` (entry `i`, which the receiver has just given the index's
/// attributes) those the index no longer has, among those the receiver manages (user.*, and as
/// `root` the others but security.*): an attribute removed at the source, as rsync -X does.
pub(super) fn remove_stale_xattrs(index: &Index, i: usize, fd: BorrowedFd<'_>, root: bool) {
    let attrs = index.xattrs_of(i).unwrap_or(&[]);
    let mut names = vec![0u8; crate::vfile::index::MAX_XATTR_BYTES];
    let listed = rustix::fs::flistxattr(fd, &mut names[..]).unwrap_or(0);
    for name in names[..listed].split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let managed = name.starts_with(b"user.") || (root && !name.starts_with(b"security."));
        if managed && !attrs.iter().any(|(a, _)| &a[..] == name) {
            let _ = rustix::fs::fremovexattr(fd, OsStr::from_bytes(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::vfile::index::Entry;

    /// Issue 32, review: a file found unchanged by size and mtime alone holds whatever bytes
    /// are under its name, which a local user who owns it may have put there. Set-id bits
    /// (kept with `keep_setid`) are never added to it in place: it is sent again, so that the
    /// bits land on the source's bytes. A plain mode change still happens in place.
    #[test]
    fn issue_32_setid_bits_are_not_added_in_place() {
        let root = crate::scratch::Scratch::new("unchanged-setid");
        let path = root.join("tool");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let st = rustix::fs::stat(&path).unwrap();
        let mtime_ns = st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64;
        let entry =
            |mode| Entry { path: b"tool".to_vec().into(), kind: Kind::File, mode, mtime_ns, size: 10, offset: 0, target: Box::default() };
        let dir = rustix::fs::open(&*root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mode_of = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;

        for setid in [0o4755, 0o2755] {
            let index = Index::from_entries(vec![entry(setid)]).unwrap();
            let mut meta = MetaSync::new(&index, 0o7777, true);
            assert_eq!(meta.file(&index, 0, dir.as_fd(), OsStr::new("tool"), &st), Outcome::Resend, "{setid:o}");
            assert_eq!(mode_of(), 0o755, "{setid:o}");
        }
        let index = Index::from_entries(vec![entry(0o700)]).unwrap();
        let mut meta = MetaSync::new(&index, 0o7777, true);
        assert_eq!(meta.file(&index, 0, dir.as_fd(), OsStr::new("tool"), &st), Outcome::Held);
        assert_eq!(mode_of(), 0o700);
    }

    /// Issue 32, review: a file with as many links as the index gives it names may still have
    /// one outside the destination (a local user's link to a file the receiver owns, where
    /// fs.protected_hardlinks is off), and the count alone cannot tell: a hard-linked file
    /// whose metadata changed is sent again (its links made anew), never changed in place.
    #[test]
    fn issue_32_a_file_with_a_link_outside_the_tree_is_not_changed_in_place() {
        let root = crate::scratch::Scratch::new("unchanged-links");
        std::fs::create_dir(root.join("dest")).unwrap();
        let path = root.join("dest/f");
        std::fs::write(&path, b"0123456789").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::hard_link(&path, root.join("outside")).unwrap();
        let st = rustix::fs::stat(&path).unwrap();
        let mtime_ns = st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64;
        let f = Entry { path: b"f".to_vec().into(), kind: Kind::File, mode: 0o666, mtime_ns, size: 10, offset: 0, target: Box::default() };
        let g =
            Entry { path: b"g".to_vec().into(), kind: Kind::HardLink, mode: 0o666, mtime_ns, size: 0, offset: 0, target: Box::default() };
        let index = Index::from_entries(vec![f, g]).unwrap();
        let dir = rustix::fs::open(root.join("dest"), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let mut meta = MetaSync::new(&index, 0o7777, true);
        assert_eq!(meta.file(&index, 0, dir.as_fd(), OsStr::new("f"), &st), Outcome::Resend);
        assert_eq!(std::fs::metadata(root.join("outside")).unwrap().permissions().mode() & 0o7777, 0o600);
    }
}
