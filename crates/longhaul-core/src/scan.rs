//! Scans a source (a file or a directory tree) into a content index, walking directories in
//! parallel: worker threads take directories from a shared stack, list each with getdents and
//! stat every entry relative to the directory's descriptor (`DirEntry::metadata`: statx at the
//! dirfd), so no full path is resolved per file. Every file is sent, hidden ones too. Symlinks
//! are recorded as links and never followed; a symlink named as the source itself is followed
//! once, as `cp -r` and `scp -r` do. Sockets, FIFOs and devices are skipped and listed, since
//! they cannot be sent as bytes.
//!
//! (The walk was `ignore`'s `WalkParallel` with its filters off; on 100,000 files in 1,000
//! directories it spent most of its time resolving each file's full path and in its matcher
//! set-up per directory: 0.30-0.45 s against 0.1-0.2 s for this walk, all of it before the first
//! byte can be sent.)

use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

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
    let rel = abs.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
    // Canonical, so not a symlink itself: its own metadata is what a walk would have found.
    let meta = fs::metadata(&abs).map_err(|e| Error::io("stat", abs.as_os_str().as_bytes(), e))?;
    let mut collected = Collected::default();
    collected.add(rel.clone(), &meta, || abs.clone())?;
    if meta.is_dir() {
        collected.merge(walk(abs, rel, threads.max(1))?);
    }
    Ok(Scan { index: Index::from_entries(collected.entries)?, base, skipped: collected.skipped })
}

#[derive(Default)]
struct Collected {
    entries: Vec<Entry>,
    skipped: Vec<(String, &'static str)>,
}

impl Collected {
    fn merge(&mut self, other: Collected) {
        self.entries.extend(other.entries);
        self.skipped.extend(other.skipped);
    }

    /// Records the entry at relative path `rel` from its own (not followed) metadata; `path`
    /// makes its full path, needed only for a symlink's target or a skipped entry's name.
    fn add(&mut self, rel: Vec<u8>, meta: &Metadata, path: impl FnOnce() -> PathBuf) -> Result<()> {
        let ft = meta.file_type();
        let (kind, size, target) = if ft.is_file() {
            (Kind::File, meta.len(), Vec::new())
        } else if ft.is_dir() {
            (Kind::Dir, 0, Vec::new())
        } else if ft.is_symlink() {
            let path = path();
            let t = fs::read_link(&path).map_err(|e| Error::io("readlink", path.as_os_str().as_bytes(), e))?;
            (Kind::Symlink, 0, t.into_os_string().into_vec())
        } else {
            let why = if ft.is_fifo() {
                "FIFO"
            } else if ft.is_socket() {
                "socket"
            } else {
                "device file"
            };
            self.skipped.push((path().display().to_string(), why));
            return Ok(());
        };
        let mtime_ns = meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec());
        self.entries.push(Entry { path: rel, kind, mode: meta.mode() & 0o7777, mtime_ns, size, offset: 0, target });
        Ok(())
    }
}

/// A directory still to list: where it is, and its path relative to the scan's base.
type Pending = (PathBuf, Vec<u8>);

/// Directories waiting to be listed, how many are being listed now, and the first failure.
struct Queue {
    dirs: Vec<Pending>,
    busy: usize,
    error: Option<Error>,
}

struct Walk {
    queue: Mutex<Queue>,
    /// Signalled when directories are pushed, or when the walk ends or fails.
    cond: Condvar,
    out: Mutex<Collected>,
}

/// Lists everything under `root` (not `root` itself) with `threads` workers, this one included.
fn walk(root: PathBuf, rel: Vec<u8>, threads: usize) -> Result<Collected> {
    let w = Walk {
        queue: Mutex::new(Queue { dirs: vec![(root, rel)], busy: 0, error: None }),
        cond: Condvar::new(),
        out: Mutex::new(Collected::default()),
    };
    std::thread::scope(|s| {
        for i in 1..threads {
            let w = &w;
            // A thread that cannot be started leaves its share to the others and to this one.
            let _ = std::thread::Builder::new().name(format!("lh-scan-{i}")).spawn_scoped(s, move || w.work());
        }
        w.work();
    });
    let queue = w.queue.into_inner().expect("scan queue lock");
    match queue.error {
        Some(e) => Err(e),
        None => Ok(w.out.into_inner().expect("scan lock")),
    }
}

impl Walk {
    fn work(&self) {
        let mut local = Collected::default();
        let mut found = Vec::new();
        loop {
            let next = {
                let mut q = self.queue.lock().expect("scan queue lock");
                loop {
                    if q.error.is_some() {
                        break None;
                    }
                    if let Some(d) = q.dirs.pop() {
                        q.busy += 1;
                        break Some(d);
                    }
                    if q.busy == 0 {
                        break None;
                    }
                    q = self.cond.wait(q).expect("scan queue lock");
                }
            };
            let Some((dir, rel)) = next else { break };
            let listed = list(&dir, &rel, &mut local, &mut found);
            let mut q = self.queue.lock().expect("scan queue lock");
            q.busy -= 1;
            let wake = match listed {
                Err(e) => {
                    q.error.get_or_insert(e);
                    true
                }
                Ok(()) => !found.is_empty() || (q.busy == 0 && q.dirs.is_empty()),
            };
            q.dirs.append(&mut found);
            drop(q);
            if wake {
                self.cond.notify_all();
            }
        }
        self.out.lock().expect("scan lock").merge(local);
    }
}

/// Records the entries of directory `dir` (relative path `rel`) and queues its subdirectories.
fn list(dir: &Path, rel: &[u8], out: &mut Collected, subdirs: &mut Vec<Pending>) -> Result<()> {
    let shown = || dir.as_os_str().as_bytes().to_vec();
    for dent in fs::read_dir(dir).map_err(|e| Error::io("read directory", shown(), e))? {
        let dent = dent.map_err(|e| Error::io("read directory", shown(), e))?;
        let name = dent.file_name();
        let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
        path.extend_from_slice(rel);
        path.push(b'/');
        path.extend_from_slice(name.as_bytes());
        let meta = dent.metadata().map_err(|e| Error::io("lstat", dent.path().as_os_str().as_bytes(), e))?;
        if meta.is_dir() {
            subdirs.push((dent.path(), path.clone()));
        }
        out.add(path, &meta, || dent.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;
    use crate::scratch::Scratch;

    fn scratch(name: &str) -> Scratch {
        Scratch::new(&format!("scan-{name}"))
    }

    /// What a walk must find: every entry's path, kind, size, mode and link target.
    fn listing(s: &Scan) -> Vec<(String, Kind, u64, u32, String)> {
        s.index.entries().iter().map(|e| (crate::error::lossy(&e.path), e.kind, e.size, e.mode, crate::error::lossy(&e.target))).collect()
    }

    #[test]
    fn a_tree_is_listed_whole_in_tree_order_with_any_number_of_threads() {
        let base = scratch("tree");
        let root = base.join("src");
        let mut want = vec![("src".to_owned(), Kind::Dir, 0, 0o755, String::new())];
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        // Deep and wide: 3 levels of 4 directories, 5 files each, one of them hidden.
        for a in 0..4 {
            for b in 0..4 {
                let d = root.join(format!("d{a}")).join(format!("e{b}"));
                fs::create_dir_all(&d).unwrap();
                for f in 0..5 {
                    let name = if f == 0 { ".hidden".to_owned() } else { format!("f{f}") };
                    fs::write(d.join(&name), vec![b'x'; a * 100 + b * 10 + f]).unwrap();
                    fs::set_permissions(d.join(&name), fs::Permissions::from_mode(0o600 + f as u32)).unwrap();
                }
            }
        }
        symlink("d0/e0/f1", root.join("link")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, root.join("fifo"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o600), 0).unwrap();
        for a in 0..4 {
            want.push((format!("src/d{a}"), Kind::Dir, 0, 0o755, String::new()));
            for b in 0..4 {
                want.push((format!("src/d{a}/e{b}"), Kind::Dir, 0, 0o755, String::new()));
                for f in 0..5 {
                    let name = if f == 0 { ".hidden".to_owned() } else { format!("f{f}") };
                    want.push((
                        format!("src/d{a}/e{b}/{name}"),
                        Kind::File,
                        (a * 100 + b * 10 + f) as u64,
                        0o600 + f as u32,
                        String::new(),
                    ));
                }
            }
        }
        want.push(("src/link".to_owned(), Kind::Symlink, 0, 0o777, "d0/e0/f1".to_owned()));
        want.sort_by(|a, b| crate::index::path_cmp(a.0.as_bytes(), b.0.as_bytes()));
        // Directories made by create_dir_all carry the umask: read their modes back.
        for w in want.iter_mut().filter(|w| w.1 == Kind::Dir) {
            w.3 = fs::metadata(base.join(&w.0)).unwrap().mode() & 0o7777;
        }
        for threads in [1, 2, 8] {
            let s = scan(&root, threads).unwrap();
            assert_eq!(listing(&s), want, "{threads} threads");
            assert_eq!(s.base, fs::canonicalize(&base).unwrap());
            assert_eq!(s.skipped, vec![(root.join("fifo").display().to_string(), "FIFO")], "{threads} threads");
        }
    }

    #[test]
    fn a_source_symlink_is_followed_once_and_a_missing_source_is_not_found() {
        let dir = scratch("single");
        fs::write(dir.join("file"), b"12345").unwrap();
        symlink("file", dir.join("alias")).unwrap();
        let s = scan(&dir.join("alias"), 2).unwrap();
        assert_eq!(listing(&s), vec![("file".to_owned(), Kind::File, 5, 0o644 & !crate::probe::umask().unwrap_or(0o022), String::new())]);
        assert_eq!(scan(&dir.join("missing"), 2).err().map(|e| e.code().to_owned()).as_deref(), Some("E_NOT_FOUND"));
    }
}
