//! Issue 31, item 7: `longhaul bench` sends generated data over a normal session and the node
//! checks and discards it: the bytes asked for arrive, nothing is made under the root, both
//! ends' CPU is reported, and a node started with `bench: false` refuses with E_DENIED.

mod common;

use std::fs;
use std::sync::atomic::AtomicBool;

use longhaul_core::{bench, Digest, SendOptions, ServeOptions, Server};

fn listing(root: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn issue_31_a_bench_moves_the_size_asked_and_leaves_nothing_under_the_root() {
    let base = common::scratch("bench", "moves");
    let root = base.join("root");
    let n = Server::start(ServeOptions { root: root.clone(), ..Default::default() }).unwrap();
    let before = listing(&root);
    let cancel = AtomicBool::new(false);
    let size = 24 * 1024 * 1024 + 12_345;
    for digest in [Digest::None, Digest::Blake3] {
        let opts = SendOptions { streams: 3, block_size: 1 << 20, digest, ..Default::default() };
        let s = bench(&n.local_addr().to_string(), size, &opts, &cancel, &|_| {}).unwrap();
        assert_eq!(s.bytes, size);
        assert_eq!(s.per_stream_bytes.iter().sum::<u64>(), size);
        assert_eq!(s.receiver.bytes, size, "the node checked every byte");
        assert_eq!(s.sendfile_blocks, 0, "generated blocks are sent from memory");
        assert!(s.receiver.cpu_us.is_some_and(|us| us > 0), "the node reports its CPU: {:?}", s.receiver.cpu_us);
        assert_eq!(s.receiver.disk.as_ref().map(|d| d.bytes_written), Some(0), "nothing written");
    }
    // --verify none: BLOCK_RAW, nothing hashed, every byte still counted by the node.
    let opts = SendOptions { verify: longhaul_core::Verify::None, ..Default::default() };
    let s = bench(&n.local_addr().to_string(), size, &opts, &cancel, &|_| {}).unwrap();
    assert_eq!((s.bytes, s.receiver.bytes, s.verify), (size, size, longhaul_core::Verify::None));
    assert_eq!(listing(&root), before, "a bench makes nothing under the root");
    let stats = n.stats();
    assert_eq!(stats.stored, 0, "a bench is not stored");
    let rows = stats.recent;
    assert!(rows.iter().any(|r| r.direction == "bench" && r.bytes_done == size), "{rows:?}");
}

#[test]
fn issue_31_a_node_that_refuses_benches_answers_e_denied() {
    let base = common::scratch("bench", "refused");
    let n = Server::start(ServeOptions { root: base.join("root"), bench: false, ..Default::default() }).unwrap();
    let cancel = AtomicBool::new(false);
    let e = bench(&n.local_addr().to_string(), 1 << 20, &SendOptions::default(), &cancel, &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_DENIED", "{e}");
}

#[test]
fn issue_31_verify_none_is_for_a_bench_only() {
    let base = common::scratch("bench", "unchecked-send");
    fs::create_dir_all(base.join("src")).unwrap();
    fs::write(base.join("src/f"), b"x").unwrap();
    let n = Server::start(ServeOptions { root: base.join("root"), ..Default::default() }).unwrap();
    let cancel = AtomicBool::new(false);
    let opts = SendOptions { verify: longhaul_core::Verify::None, ..Default::default() };
    let e = longhaul_core::send(&base.join("src"), &n.local_addr().to_string(), b"in", &opts, &cancel, &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_USAGE", "{e}");
    assert!(!base.join("root/in").exists());
}
