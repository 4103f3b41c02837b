//! Scans a source (a file or a directory tree) into a content index, walking directories in
//! parallel with `ignore`'s work-stealing walker (its filters off: every file is sent, hidden and
//! ignored ones too). Symlinks are recorded as links and never followed; a symlink named as the
//! source itself is followed once, as `cp -r` and `scp -r` do. Sockets, FIFOs and devices are
//! skipped and listed, since they cannot be sent as bytes.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use crate::error::{Error, Result};
use crate::index::{Entry, Index, Kind};

pub struct Scan {
    pub index: Index,
    /// The directory the entries' paths are relative to (the source's parent).
    pub base: PathBuf,
    /// Entries that are neither files, directories nor symlinks, with the reason.
    pub skipped: Vec<(String, &'static str)>,
}

pub fn scan(source: &Path, threads: usize) -> Result<Scan> {
    let abs = fs::canonicalize(source).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { path: source.display().to_string() },
        _ => Error::io("resolve", source.as_os_str().as_bytes(), e),
    })?;
    let base = abs.parent().ok_or_else(|| Error::Usage("the file system root cannot be sent as a source".into()))?.to_path_buf();
    let meta = fs::metadata(&abs).map_err(|e| Error::io("stat", abs.as_os_str().as_bytes(), e))?;
    let shared = Shared { base: &base, out: Mutex::new(Collected::default()) };
    if meta.is_dir() {
        WalkBuilder::new(&abs)
            .standard_filters(false)
            .follow_links(false)
            .threads(threads.max(1))
            .build_parallel()
            .visit(&mut VisitorBuilder { shared: &shared });
    } else {
        let mut c = Collected::default();
        c.add_path(&base, &abs);
        shared.out.lock().expect("scan lock").merge(c);
    }
    let collected = shared.out.into_inner().expect("scan lock");
    if let Some(e) = collected.error {
        return Err(e);
    }
    Ok(Scan { index: Index::from_entries(collected.entries)?, base, skipped: collected.skipped })
}

struct Shared<'a> {
    base: &'a Path,
    out: Mutex<Collected>,
}

#[derive(Default)]
struct Collected {
    entries: Vec<Entry>,
    skipped: Vec<(String, &'static str)>,
    error: Option<Error>,
}

impl Collected {
    fn merge(&mut self, other: Collected) {
        self.entries.extend(other.entries);
        self.skipped.extend(other.skipped);
        if self.error.is_none() {
            self.error = other.error;
        }
    }

    fn add_path(&mut self, base: &Path, path: &Path) {
        let rel = match path.strip_prefix(base) {
            Ok(r) => r.as_os_str().as_bytes().to_vec(),
            Err(_) => return,
        };
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.error.get_or_insert(Error::io("lstat", path.as_os_str().as_bytes(), e));
                return;
            }
        };
        let ft = meta.file_type();
        let (kind, size, target) = if ft.is_file() {
            (Kind::File, meta.len(), Vec::new())
        } else if ft.is_dir() {
            (Kind::Dir, 0, Vec::new())
        } else if ft.is_symlink() {
            match fs::read_link(path) {
                Ok(t) => (Kind::Symlink, 0, t.into_os_string().into_vec()),
                Err(e) => {
                    self.error.get_or_insert(Error::io("readlink", path.as_os_str().as_bytes(), e));
                    return;
                }
            }
        } else {
            let why = if ft.is_fifo() {
                "FIFO"
            } else if ft.is_socket() {
                "socket"
            } else {
                "device file"
            };
            self.skipped.push((path.display().to_string(), why));
            return;
        };
        let mtime_ns = meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec());
        self.entries.push(Entry { path: rel, kind, mode: meta.mode() & 0o7777, mtime_ns, size, offset: 0, target });
    }
}

use std::os::unix::ffi::OsStringExt;

struct VisitorBuilder<'s, 'a> {
    shared: &'s Shared<'a>,
}

impl<'s, 'a: 's> ParallelVisitorBuilder<'s> for VisitorBuilder<'s, 'a> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor { shared: self.shared, local: Collected::default() })
    }
}

/// Collects into a thread-local list and merges once, when the walker drops it.
struct Visitor<'s, 'a> {
    shared: &'s Shared<'a>,
    local: Collected,
}

impl ParallelVisitor for Visitor<'_, '_> {
    fn visit(&mut self, entry: std::result::Result<DirEntry, ignore::Error>) -> WalkState {
        match entry {
            Ok(dent) => {
                self.local.add_path(self.shared.base, dent.path());
                WalkState::Continue
            }
            Err(e) => {
                let io = e.into_io_error().unwrap_or_else(|| std::io::Error::other("directory walk failed"));
                self.local.error.get_or_insert(Error::io("walk", self.shared.base.as_os_str().as_bytes(), io));
                WalkState::Quit
            }
        }
    }
}

impl Drop for Visitor<'_, '_> {
    fn drop(&mut self) {
        let local = std::mem::take(&mut self.local);
        if let Ok(mut out) = self.shared.out.lock() {
            out.merge(local);
        }
    }
}
