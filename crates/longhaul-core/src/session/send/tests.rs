use std::fs::{self, File};
use std::os::fd::AsFd;

use rustix::fs::Mode;

use super::*;
use crate::scratch::Scratch;
use crate::sys::beneath::DirCache;
use crate::sys::source::{open_source, read_exact_at};

fn read_all(f: &File, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0; n];
    read_exact_at(f, &mut buf, 0, b"x")?;
    Ok(buf)
}

#[test]
fn a_source_file_is_opened_in_its_held_directory_and_a_swap_after_the_scan_is_a_changed_source() {
    let base = Scratch::new("sender-open-source");
    fs::create_dir_all(base.join("src/a")).unwrap();
    fs::create_dir_all(base.join("elsewhere")).unwrap();
    for f in ["one", "two", "three", "four"] {
        fs::write(base.join("src/a").join(f), f).unwrap();
    }
    fs::write(base.join("elsewhere/three"), "outside").unwrap();
    let fd = crate::vfile::scan::scan(&base.join("src"), 1).unwrap().base_fd;
    let mut dirs = DirCache::default();
    let code = |r: Result<File>| r.map(|_| ()).unwrap_err().code().to_owned();

    assert_eq!(read_all(&open_source(fd.as_fd(), &mut dirs, b"src/a/one").unwrap(), 3).unwrap(), b"one");
    let held = dirs.held();
    assert_eq!(read_all(&open_source(fd.as_fd(), &mut dirs, b"src/a/two").unwrap(), 3).unwrap(), b"two");
    assert_eq!(dirs.held(), held, "the directory is opened once for its files");

    // A file swapped for a symlink: refused, not followed.
    fs::remove_file(base.join("src/a/two")).unwrap();
    std::os::unix::fs::symlink(base.join("elsewhere/three"), base.join("src/a/two")).unwrap();
    assert_eq!(code(open_source(fd.as_fd(), &mut dirs, b"src/a/two")), "E_SOURCE_CHANGED");
    // Deleted.
    fs::remove_file(base.join("src/a/one")).unwrap();
    let e = open_source(fd.as_fd(), &mut dirs, b"src/a/one").unwrap_err();
    assert_eq!((e.code(), e.to_string().contains("deleted")), ("E_SOURCE_CHANGED", true), "{e}");
    // A FIFO: the open returns at once (no writer needed) and the read fails.
    rustix::fs::mknodat(rustix::fs::CWD, base.join("src/a/fifo").as_path(), rustix::fs::FileType::Fifo, Mode::RUSR | Mode::WUSR, 0)
        .unwrap();
    let f = open_source(fd.as_fd(), &mut dirs, b"src/a/fifo").unwrap();
    assert_eq!(read_all(&f, 1).unwrap_err().code(), "E_SOURCE_CHANGED");
    // The directory swapped for a symlink to one holding a file of the same name: opened
    // afresh (another directory came between), it is refused.
    fs::write(base.join("src/top"), "top").unwrap();
    open_source(fd.as_fd(), &mut dirs, b"src/top").unwrap();
    fs::rename(base.join("src/a"), base.join("a.old")).unwrap();
    std::os::unix::fs::symlink(base.join("elsewhere"), base.join("src/a")).unwrap();
    assert_eq!(code(open_source(fd.as_fd(), &mut dirs, b"src/a/three")), "E_SOURCE_CHANGED");
    // A directory now where the scan found a file: its read fails the same way.
    let dir = File::open(base.join("a.old")).unwrap();
    assert_eq!(read_all(&dir, 1).unwrap_err().code(), "E_SOURCE_CHANGED");
}

/// issue 29: a sender's pool is sized to its data: a 5-byte file asking 64 streams of 4 MiB
/// gets one page, a large one the buffers asked for, never more buffers than blocks.
#[test]
fn the_pool_is_sized_to_the_data_it_sends() {
    let page = rustix::param::page_size();
    let opts = SendOptions { streams: 64, block_size: 4 << 20, pool_buffers: 16, ..SendOptions::default() };
    assert_eq!(pool_shape(&opts, 64, 5), (page, 1));
    assert_eq!(pool_shape(&opts, 64, 0), (page, 1));
    assert_eq!(pool_shape(&opts, 64, (4 << 20) * 3 + 1), (4 << 20, 4));
    assert_eq!(pool_shape(&opts, 64, 1 << 40), (4 << 20, 16));
    let picked = SendOptions { pool_buffers: 0, readers: 4, processors: 1, workers: 2, ..opts };
    assert_eq!(pool_shape(&picked, 2, 1 << 40), (4 << 20, 9));
}
