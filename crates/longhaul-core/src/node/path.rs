//! The node's path policy: what a client may name (clean, relative, not the node's own
//! directory, no symlink on the way) and the shape of a session it may ask for.

use super::state::STATE_DIR;
use crate::error::{lossy, Error, Result};
use crate::sys::beneath::{self, DirCache};
use crate::wire::frame::Limits;
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(super) fn check_session_shape(limits: &Limits, streams: u16, block_size: u32) -> Result<()> {
    if streams == 0 || streams > limits.max_streams {
        return Err(Error::Limit { what: "streams", limit: limits.max_streams as u64, got: streams as u64 });
    }
    if block_size < 4096 || block_size > limits.max_block {
        return Err(Error::Limit { what: "block size", limit: limits.max_block as u64, got: block_size as u64 });
    }
    Ok(())
}

/// Checks a client-named path and joins it to the root: relative, no `..`, not the node's own
/// directory, and no symlink on the way (the last component too unless `final_link`).
pub(super) fn resolve(root: &Path, rel: &[u8], final_link: bool) -> Result<PathBuf> {
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    check_request_path(rel)?;
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    let mut p = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        p.push(OsStr::from_bytes(c));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() && (i + 1 < parts.len() || !final_link) => {
                return Err(Error::PathEscape { path: lossy(rel), why: "through a symlink" })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound { path: lossy(rel) }),
            Err(e) => return Err(Error::io("stat", rel, e)),
        }
    }
    Ok(p)
}

/// The rules of a client-named path that need no look at the disk: a clean relative path, not
/// in the node's own directory.
pub(super) fn check_request_path(rel: &[u8]) -> Result<()> {
    crate::vfile::index::check_path(rel)?;
    if rel.split(|&b| b == b'/').next() == Some(STATE_DIR.as_bytes()) {
        return Err(Error::PathEscape { path: lossy(rel), why: "the node's own directory" });
    }
    Ok(())
}

/// Checks the path a pull or a copy sends from: as `resolve`, and not the root itself, which
/// holds the node's own directory (a scan of it would send the state no client may read).
pub(super) fn resolve_source(root: &Path, rel: &[u8]) -> Result<PathBuf> {
    if rel.is_empty() {
        return Err(Error::BadPath { path: String::new(), why: "name a file or directory under the root, not the root itself" });
    }
    resolve(root, rel, false)
}

/// The regular file `path` (or, with `name`, that name in `path`'s directory) under `dest`,
/// looked at from its directory opened beneath `dest`, no symlink followed.
pub(super) fn stat_in(dest: BorrowedFd<'_>, dirs: &mut DirCache, path: &[u8], name: Option<&str>) -> Option<rustix::fs::Stat> {
    let (dir, last) = dirs.parent(dest, path, beneath::root_refused).ok()?;
    let name = name.map_or(last, OsStr::new);
    let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
    (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile).then_some(st)
}
