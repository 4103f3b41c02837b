//! What a push does before its first byte can flow, timed on a tree: the sender's scan (walk,
//! stat, sort, check), encoding the index, and the node's decoding and checking of it.
//!
//!     cargo run --release -p longhaul-core --example scan_index -- DIR [THREADS...]
//!
//! Each thread count is run three times; the tree is only read.

use std::path::Path;
use std::time::Instant;

use longhaul_core::vfile::index::Index;
use longhaul_core::vfile::scan::scan;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: scan_index DIR [THREADS...]");
    let mut threads: Vec<usize> = args.map(|s| s.parse().expect("a thread count")).collect();
    if threads.is_empty() {
        threads = vec![1, 2, 4];
    }
    for t in threads {
        for _ in 0..3 {
            let at = Instant::now();
            let s = scan(Path::new(&dir), t).expect("scan");
            let scanned = at.elapsed();
            let at = Instant::now();
            let encoded = s.index.encode();
            let encoding = at.elapsed();
            let at = Instant::now();
            let back = Index::decode(&encoded).expect("decode");
            let decoding = at.elapsed();
            assert_eq!(back, s.index);
            println!(
                "{t} threads: {} entries, scan {:.1} ms, encode {:.1} ms ({} bytes), decode {:.1} ms",
                s.index.entries().len(),
                scanned.as_secs_f64() * 1e3,
                encoding.as_secs_f64() * 1e3,
                encoded.len(),
                decoding.as_secs_f64() * 1e3
            );
        }
    }
}
