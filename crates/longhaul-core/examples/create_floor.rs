//! The floor for writing many small files here: N threads that do nothing but create files of
//! one size in fresh directories (open O_CREAT|O_EXCL, one write, futimens, close), with no
//! network, no reading and no checksum. bench/RESULTS.md compares the LOSF figures with it.
//!
//!     cargo run --release -p longhaul-core --example create_floor -- DIR [FILES] [DIRS] [SIZE] [THREADS]
//!
//! DIR must not exist (a fresh directory: see the ext4 note in bench/RESULTS.md).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Instant;

fn arg(n: usize, default: usize) -> usize {
    std::env::args().nth(n).map_or(default, |s| s.parse().expect("a number"))
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).expect("usage: create_floor DIR [FILES] [DIRS] [SIZE] [THREADS]"));
    let (files, dirs, size, threads) = (arg(2, 100_000), arg(3, 1000), arg(4, 4096), arg(5, 2));
    fs::create_dir(&root).expect("DIR must not exist");
    let data = vec![0x5au8; size];
    let t = rustix::fs::Timespec { tv_sec: 1_700_000_000, tv_nsec: 0 };
    let started = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            let (root, data) = (&root, &data);
            s.spawn(move || {
                for d in (k..dirs).step_by(threads) {
                    let dir = root.join(format!("d{d}"));
                    fs::create_dir(&dir).unwrap();
                    for f in 0..files / dirs {
                        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(dir.join(format!("f{f}"))).unwrap();
                        file.write_all(data).unwrap();
                        rustix::fs::futimens(file.as_fd(), &rustix::fs::Timestamps { last_access: t, last_modification: t }).unwrap();
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let n = (files / dirs) * dirs;
    println!("{n} files of {size} B in {dirs} dirs, {threads} threads: {secs:.3} s, {:.0} files/s", n as f64 / secs);
}
