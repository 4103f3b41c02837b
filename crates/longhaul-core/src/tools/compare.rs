//! Compares two local trees the way a user checks a copy: the same entries, kinds, sizes, bytes,
//! modes, mtimes (to the nanosecond) and symlink targets. Behind `longhaul compare` and the
//! SDK's `compareTrees`, which the demo and the tests use to check every transfer.
//!
//! Each tree is walked on a thread of its own (lstat of every entry), then THREADS threads
//! compare the entries, each reading through its own pair of CHUNK-byte buffers.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{lossy, Error, Result};
use crate::wire::frame::SumEntry;

const THREADS: usize = 4;
const CHUNK: usize = 256 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Missing,
    Extra,
    Kind,
    Size,
    Content,
    Mode,
    Mtime,
    Target,
}

impl What {
    pub fn as_str(self) -> &'static str {
        match self {
            What::Missing => "missing",
            What::Extra => "extra",
            What::Kind => "kind",
            What::Size => "size",
            What::Content => "content",
            What::Mode => "mode",
            What::Mtime => "mtime",
            What::Target => "target",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Relative to both roots, `/`-separated (not UTF-8 shown lossily).
    pub path: String,
    pub what: What,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// Every difference between `expected` and `actual`, in the byte order of their paths, the
/// entries only in `actual` (`Extra`) last. An empty list means identical. `dir_mtimes: false`
/// leaves directory mtimes out. The roots are followed if they are symlinks; where either is
/// not a directory, the two are compared as one entry (as `cmp` would, plus mode and mtime),
/// under the name of `expected`.
pub fn compare_trees(expected: &Path, actual: &Path, dir_mtimes: bool) -> Result<Vec<Difference>> {
    let ma = fs::metadata(expected).map_err(|e| io_error("stat", expected, e))?;
    let mb = fs::metadata(actual).map_err(|e| io_error("stat", actual, e))?;
    if !ma.is_dir() || !mb.is_dir() {
        let name = expected.file_name().map_or(&b""[..], |n| n.as_bytes());
        let mut out = Vec::new();
        compare_one(expected, actual, name, &ma, Some(&mb), true, &mut (vec![0u8; CHUNK], vec![0u8; CHUNK]), &mut out)?;
        return Ok(out);
    }
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| list_tree(expected));
        let b = list_tree(actual);
        (a.join().expect("walking a tree"), b)
    });
    let (a, b) = (a?, b?);
    let mut paths: Vec<&Vec<u8>> = a.keys().collect();
    paths.sort();
    // Each thread keeps its differences with the index of their path; merged in path order.
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let per_thread: Vec<Result<Vec<(usize, Difference)>>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS.min(paths.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut bufs = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
                    let mut found = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= paths.len() || failed.load(Ordering::Relaxed) {
                            return Ok(found);
                        }
                        let rel = paths[i];
                        let (pa, pb) = (join(expected, rel), join(actual, rel));
                        let mut out = Vec::new();
                        if let Err(e) = compare_one(&pa, &pb, rel, &a[rel], b.get(rel), dir_mtimes, &mut bufs, &mut out) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        found.extend(out.into_iter().map(|d| (i, d)));
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("comparing files")).collect()
    });
    let mut found = Vec::new();
    for r in per_thread {
        found.extend(r?);
    }
    // Stable: one path's differences keep their order.
    found.sort_by_key(|(i, _)| *i);
    let mut diffs: Vec<Difference> = found.into_iter().map(|(_, d)| d).collect();
    let mut extra: Vec<&Vec<u8>> = b.keys().filter(|p| !a.contains_key(*p)).collect();
    extra.sort();
    diffs.extend(extra.into_iter().map(|p| Difference { path: lossy(p), what: What::Extra, expected: None, actual: None }));
    Ok(diffs)
}

/// One local entry for a comparison with a node's listing: its lstat, and its target or
/// BLAKE3 where it is a symlink or a regular file.
struct Local {
    md: Metadata,
    target: Option<PathBuf>,
    digest: Option<[u8; 32]>,
}

/// As `compare_trees`, with `actual` a tree on a node: `fetch` brings its listing, each regular
/// file hashed there (TREE_SUMS), and runs on a thread of its own while THREADS threads hash the
/// local files, so the two ends hash at the same time. Contents compare by BLAKE3; the
/// differences and their order are those `compare_trees` reports for the same two trees.
pub fn compare_with_sums(
    expected: &Path,
    dir_mtimes: bool,
    fetch: impl FnOnce() -> Result<Vec<SumEntry>> + Send,
) -> Result<Vec<Difference>> {
    let (local, remote) = std::thread::scope(|s| {
        let r = s.spawn(fetch);
        let l = local_sums(expected);
        (l, r.join().expect("listing the node's tree"))
    });
    let (local, remote) = (local?, remote?);
    let mut theirs: HashMap<Vec<u8>, SumEntry> = remote.into_iter().map(|e| (e.path.clone(), e)).collect();
    let root = theirs.remove(&b""[..]).ok_or_else(|| Error::Protocol("TREE_SUMS answer without its root entry".into()))?;
    let mut out = Vec::new();
    let ours_root = &local[&b""[..]];
    if !ours_root.md.is_dir() || root.kind != 1 {
        let name = expected.file_name().map_or(&b""[..], |n| n.as_bytes());
        compare_sum(name, ours_root, Some(&root), true, &mut out);
        return Ok(out);
    }
    let mut paths: Vec<&Vec<u8>> = local.keys().filter(|p| !p.is_empty()).collect();
    paths.sort();
    for rel in paths {
        compare_sum(rel, &local[rel], theirs.get(rel), dir_mtimes, &mut out);
    }
    let mut extra: Vec<&Vec<u8>> = theirs.keys().filter(|p| !local.contains_key(*p)).collect();
    extra.sort();
    out.extend(extra.into_iter().map(|p| Difference { path: lossy(p), what: What::Extra, expected: None, actual: None }));
    Ok(out)
}

/// Every entry under `root` (the root itself under the empty name, followed if a symlink, as
/// `compare_trees` does), each regular file hashed and each symlink's target read.
fn local_sums(root: &Path) -> Result<HashMap<Vec<u8>, Local>> {
    let top = fs::metadata(root).map_err(|e| io_error("stat", root, e))?;
    let mut listed: Vec<(Vec<u8>, Metadata)> = if top.is_dir() { list_tree(root)?.into_iter().collect() } else { Vec::new() };
    listed.push((Vec::new(), top));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    type Found = Vec<(Vec<u8>, Local)>;
    let parts: Vec<Result<Found>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= listed.len() || failed.load(Ordering::Relaxed) {
                            return Ok(found);
                        }
                        let (rel, md) = &listed[i];
                        // Not join: "" would make `root/`, which a file root is not.
                        let path = if rel.is_empty() { root.to_path_buf() } else { join(root, rel) };
                        let mut l = Local { md: md.clone(), target: None, digest: None };
                        let got = (|| {
                            if md.file_type().is_symlink() {
                                l.target = Some(fs::read_link(&path).map_err(|e| io_error("readlink", &path, e))?);
                            } else if md.is_file() {
                                let f = File::open(&path).map_err(|e| io_error("open", &path, e))?;
                                l.digest = Some(crate::hash::blake3_file(&f, md.len()).map_err(|e| io_error("read", &path, e))?);
                            }
                            Ok(())
                        })();
                        if let Err(e) = got {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        found.push((rel.clone(), l));
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("hashing files")).collect()
    });
    let mut out = HashMap::with_capacity(listed.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// As `compare_one`, the actual entry being the node's: contents by BLAKE3.
fn compare_sum(rel: &[u8], ours: &Local, theirs: Option<&SumEntry>, dir_mtimes: bool, out: &mut Vec<Difference>) {
    let diff = |what, expected: Option<String>, actual: Option<String>| Difference { path: lossy(rel), what, expected, actual };
    let Some(t) = theirs else {
        out.push(diff(What::Missing, None, None));
        return;
    };
    let ka = kind_of(&ours.md);
    let kb = match t.kind {
        1 => "dir",
        2 => "file",
        3 => "symlink",
        _ => "other",
    };
    if ka != kb {
        out.push(diff(What::Kind, Some(ka.into()), Some(kb.into())));
        return;
    }
    if ka == "symlink" {
        let ta = ours.target.as_deref().unwrap_or(Path::new(""));
        let tb = Path::new(std::ffi::OsStr::from_bytes(&t.target));
        if ta != tb {
            out.push(diff(What::Target, Some(ta.display().to_string()), Some(tb.display().to_string())));
        }
        return;
    }
    let (ma, mb) = (ours.md.permissions().mode() & 0o7777, t.mode & 0o7777);
    if ma != mb {
        out.push(diff(What::Mode, Some(format!("{ma:o}")), Some(format!("{mb:o}"))));
    }
    let (ta, tb) = (mtime_ns(&ours.md), t.mtime_ns as i128);
    if (ka == "file" || dir_mtimes) && ta != tb {
        out.push(diff(What::Mtime, Some(ta.to_string()), Some(tb.to_string())));
    }
    if ka == "file" {
        if ours.md.len() != t.size {
            out.push(diff(What::Size, Some(ours.md.len().to_string()), Some(t.size.to_string())));
        } else if ours.digest != t.digest {
            out.push(diff(What::Content, None, None));
        }
    }
}

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}

fn io_error(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::NotFound => Error::NotFound { path: path.display().to_string() },
        _ => Error::io(op, path.as_os_str().as_bytes(), e),
    }
}

/// Every entry under `root` by its relative path, with its lstat.
fn list_tree(root: &Path) -> Result<HashMap<Vec<u8>, Metadata>> {
    let mut out = HashMap::new();
    let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(dir) = dirs.pop() {
        let at = join(root, &dir);
        for entry in fs::read_dir(&at).map_err(|e| io_error("reading the directory", &at, e))? {
            let entry = entry.map_err(|e| io_error("reading the directory", &at, e))?;
            let mut rel = dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(entry.file_name().as_bytes());
            let path = join(root, &rel);
            let md = fs::symlink_metadata(&path).map_err(|e| io_error("lstat", &path, e))?;
            if md.is_dir() {
                dirs.push(rel.clone());
            }
            out.insert(rel, md);
        }
    }
    Ok(out)
}

fn kind_of(md: &Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else {
        "other"
    }
}

fn mtime_ns(md: &Metadata) -> i128 {
    md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128
}

/// Compares one entry, `pa` against `pb`; differences are reported under `rel`.
// Reason: one step of a recursive walk takes the pair, their metadata and the walk's buffers and output.
#[allow(clippy::too_many_arguments)]
fn compare_one(
    pa: &Path,
    pb: &Path,
    rel: &[u8],
    sa: &Metadata,
    sb: Option<&Metadata>,
    dir_mtimes: bool,
    bufs: &mut (Vec<u8>, Vec<u8>),
    out: &mut Vec<Difference>,
) -> Result<()> {
    let diff = |what, expected: Option<String>, actual: Option<String>| Difference { path: lossy(rel), what, expected, actual };
    let Some(sb) = sb else {
        out.push(diff(What::Missing, None, None));
        return Ok(());
    };
    let (ka, kb) = (kind_of(sa), kind_of(sb));
    if ka != kb {
        out.push(diff(What::Kind, Some(ka.into()), Some(kb.into())));
        return Ok(());
    }
    if ka == "symlink" {
        let ta = fs::read_link(pa).map_err(|e| io_error("readlink", pa, e))?;
        let tb = fs::read_link(pb).map_err(|e| io_error("readlink", pb, e))?;
        if ta != tb {
            out.push(diff(What::Target, Some(ta.display().to_string()), Some(tb.display().to_string())));
        }
        return Ok(());
    }
    let (ma, mb) = (sa.permissions().mode() & 0o7777, sb.permissions().mode() & 0o7777);
    if ma != mb {
        out.push(diff(What::Mode, Some(format!("{ma:o}")), Some(format!("{mb:o}"))));
    }
    let (ta, tb) = (mtime_ns(sa), mtime_ns(sb));
    if (ka == "file" || dir_mtimes) && ta != tb {
        out.push(diff(What::Mtime, Some(ta.to_string()), Some(tb.to_string())));
    }
    if ka == "file" {
        if sa.len() != sb.len() {
            out.push(diff(What::Size, Some(sa.len().to_string()), Some(sb.len().to_string())));
        } else if !same_bytes(pa, pb, bufs)? {
            out.push(diff(What::Content, None, None));
        }
    }
    Ok(())
}

/// Whether two files hold the same bytes, read to the end of both.
fn same_bytes(a: &Path, b: &Path, (ba, bb): &mut (Vec<u8>, Vec<u8>)) -> Result<bool> {
    let mut fa = File::open(a).map_err(|e| io_error("open", a, e))?;
    let mut fb = File::open(b).map_err(|e| io_error("open", b, e))?;
    loop {
        let na = read_full(&mut fa, ba).map_err(|e| io_error("read", a, e))?;
        let nb = read_full(&mut fb, bb).map_err(|e| io_error("read", b, e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na < ba.len() {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless the file ends first; the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::symlink;

    fn pair(name: &str) -> (Scratch, PathBuf, PathBuf) {
        let t = Scratch::new(name);
        let (a, b) = (t.join("a"), t.join("b"));
        fs::create_dir_all(a.join("d")).unwrap();
        fs::write(a.join("d/f"), vec![7u8; CHUNK * 2 + 5]).unwrap();
        fs::write(a.join("small"), b"hello").unwrap();
        symlink("d/f", a.join("l")).unwrap();
        assert!(std::process::Command::new("cp").arg("-a").arg(&a).arg(&b).status().unwrap().success());
        (t, a, b)
    }

    fn whats(d: &[Difference]) -> Vec<(String, &'static str)> {
        d.iter().map(|d| (d.path.clone(), d.what.as_str())).collect()
    }

    #[test]
    fn a_faithful_copy_has_no_difference() {
        let (_t, a, b) = pair("compare-same");
        assert_eq!(compare_trees(&a, &b, true).unwrap(), vec![]);
    }

    #[test]
    fn each_kind_of_difference_is_found_in_path_order() {
        let (_t, a, b) = pair("compare-diffs");
        // The last byte of a file three reads long, with its mtime kept.
        let mut bytes = fs::read(b.join("d/f")).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(b.join("d/f"), bytes).unwrap();
        assert!(std::process::Command::new("touch").arg("-r").arg(a.join("d/f")).arg(b.join("d/f")).status().unwrap().success());
        fs::set_permissions(b.join("small"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(b.join("l")).unwrap();
        symlink("d/g", b.join("l")).unwrap();
        fs::write(b.join("new"), b"").unwrap();
        let d = compare_trees(&a, &b, false).unwrap();
        assert_eq!(whats(&d), vec![("d/f".into(), "content"), ("l".into(), "target"), ("small".into(), "mode"), ("new".into(), "extra")]);
        let mode = format!("{:o}", fs::metadata(a.join("small")).unwrap().permissions().mode() & 0o7777);
        assert_eq!((d[2].expected.as_deref(), d[2].actual.as_deref()), (Some(mode.as_str()), Some("600")));
        // Directory mtimes count unless left out: "new" changed the root's, which is not an entry.
        fs::remove_file(b.join("small")).unwrap();
        fs::create_dir(b.join("small")).unwrap();
        let d = compare_trees(&a, &b, true).unwrap();
        assert!(whats(&d).contains(&("small".into(), "kind")), "{d:?}");
    }

    #[test]
    fn two_files_are_compared_as_one_entry() {
        let (_t, a, b) = pair("compare-files");
        assert_eq!(compare_trees(&a.join("d/f"), &b.join("d/f"), true).unwrap(), vec![]);
        let d = compare_trees(&a.join("d/f"), &b.join("small"), true).unwrap();
        assert!(whats(&d).contains(&("f".into(), "size")), "{d:?}");
        let d = compare_trees(&a.join("d"), &b.join("small"), true).unwrap();
        assert_eq!(whats(&d), vec![("d".into(), "kind")]);
    }

    /// What a node's TREE_SUMS would answer for `root`, made from this side's own listing.
    fn sums_of(root: &Path) -> Result<Vec<SumEntry>> {
        let kind = |md: &Metadata| match kind_of(md) {
            "dir" => 1,
            "file" => 2,
            "symlink" => 3,
            _ => 4,
        };
        Ok(local_sums(root)?
            .into_iter()
            .map(|(path, l)| SumEntry {
                path,
                kind: kind(&l.md),
                mode: l.md.permissions().mode() & 0o7777,
                size: if l.md.is_file() { l.md.len() } else { 0 },
                mtime_ns: mtime_ns(&l.md) as i64,
                target: l.target.map(|t| t.into_os_string().into_vec()).unwrap_or_default(),
                digest: l.digest,
            })
            .collect())
    }

    #[test]
    fn a_listing_with_digests_gives_the_differences_a_local_compare_gives() {
        let (_t, a, b) = pair("compare-sums");
        assert_eq!(compare_with_sums(&a, true, || sums_of(&b)).unwrap(), vec![]);
        let mut bytes = fs::read(b.join("d/f")).unwrap();
        bytes[CHUNK] ^= 1;
        fs::write(b.join("d/f"), bytes).unwrap();
        assert!(std::process::Command::new("touch").arg("-r").arg(a.join("d/f")).arg(b.join("d/f")).status().unwrap().success());
        fs::set_permissions(b.join("small"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(b.join("l")).unwrap();
        symlink("d/g", b.join("l")).unwrap();
        fs::write(b.join("new"), b"").unwrap();
        fs::create_dir(b.join("sub")).unwrap();
        for dir_mtimes in [false, true] {
            let remote = compare_with_sums(&a, dir_mtimes, || sums_of(&b)).unwrap();
            assert_eq!(remote, compare_trees(&a, &b, dir_mtimes).unwrap(), "dir_mtimes {dir_mtimes}");
        }
        assert_eq!(
            whats(&compare_with_sums(&a, false, || sums_of(&b)).unwrap()),
            vec![
                ("d/f".into(), "content"),
                ("l".into(), "target"),
                ("small".into(), "mode"),
                ("new".into(), "extra"),
                ("sub".into(), "extra")
            ]
        );
        // One entry where either side is not a directory, under the local name.
        assert_eq!(compare_with_sums(&a.join("d/f"), true, || sums_of(&a.join("d/f"))).unwrap(), vec![]);
        assert_eq!(whats(&compare_with_sums(&a.join("small"), true, || sums_of(&b.join("d"))).unwrap()), vec![("small".into(), "kind")]);
        // The node's error is the comparison's.
        let e = compare_with_sums(&a, true, || Err(Error::PathEscape { path: "x".into(), why: "through a symlink" })).unwrap_err();
        assert_eq!(e.code(), "E_PATH_ESCAPE");
    }

    #[test]
    fn a_missing_tree_is_not_found() {
        let (_t, a, _b) = pair("compare-missing");
        assert!(matches!(compare_trees(&a, &a.join("nothing"), true), Err(Error::NotFound { .. })));
    }
}
