//! TREE_SUMS on loopback, frame by frame: the node's answer comes in bounded parts, hashes
//! what it says, hides its own directory, and a refusal leaves the connection usable.

mod common;

use common::bytes;

use std::fs;
use std::time::Duration;

use longhaul_core::client::Connection;
use longhaul_core::session::handshake::{self, Dial, REQUEST_FEATURES};
use longhaul_core::wire::frame::{self, Msg, SumEntry, MAX_TREE_SUMS_ENTRIES};
use longhaul_core::{ServeOptions, Server};

const T: Duration = Duration::from_secs(10);

#[test]
fn a_large_directory_comes_in_bounded_parts_with_every_file_hashed() {
    let dir = common::scratch("tree-sums", "parts");
    let root = dir.join("root");
    fs::create_dir_all(root.join("t/sub")).unwrap();
    for i in 0..1300u64 {
        fs::write(root.join(format!("t/f{i}")), bytes(i, (i as usize * 37) % 3000)).unwrap();
    }
    fs::write(root.join("t/sub/big"), bytes(7, 3 << 20)).unwrap();
    std::os::unix::fs::symlink("../f1", root.join("t/sub/link")).unwrap();
    let n = Server::start(ServeOptions { root: root.clone(), ..ServeOptions::default() }).unwrap();
    let addr = n.local_addr().to_string();

    let dial = Dial { addr: &addr, secret: None, tls: None, connect_timeout: T, io_timeout: T };
    let (mut sock, _, hello) = handshake::open(&dial, REQUEST_FEATURES).unwrap();
    assert_ne!(hello.features & frame::FEATURE_REMOTE_SUMS, 0);
    frame::write_msg(&mut sock, &Msg::TreeSums { path: b"t".to_vec() }).unwrap();
    let mut parts = Vec::new();
    loop {
        match frame::expect_reply(&mut sock, 0).unwrap() {
            Msg::TreeSumsPart { last, entries } => {
                parts.push(entries.len());
                assert!(entries.len() <= MAX_TREE_SUMS_ENTRIES);
                if last {
                    break;
                }
            }
            m => panic!("{m:?}"),
        }
    }
    // The path itself, 1,300 files, sub and its two entries.
    assert_eq!(parts.iter().sum::<usize>(), 1 + 1300 + 1 + 2);
    assert!(parts.len() >= 3, "{parts:?}");

    let mut c = Connection::open(&addr, None, None, T).unwrap();
    let all = c.tree_sums(b"").unwrap();
    let get = |p: &[u8]| -> &SumEntry { all.iter().find(|e| e.path == p).unwrap() };
    assert!(all.iter().all(|e| !e.path.starts_with(b".longhaul")), "the node's own directory is hidden");
    assert_eq!(get(b"").kind, 1);
    let big = get(b"t/sub/big");
    assert_eq!((big.kind, big.size, big.digest), (2, 3 << 20, Some(*blake3::hash(&bytes(7, 3 << 20)).as_bytes())));
    let link = get(b"t/sub/link");
    assert_eq!((link.kind, link.target.as_slice(), link.digest), (3, b"../f1".as_slice(), None));
    // Refusals are answered and the connection goes on.
    assert_eq!(c.tree_sums(b"../x").unwrap_err().code(), "E_PATH_ESCAPE");
    assert_eq!(c.tree_sums(b"t/sub/link").unwrap_err().code(), "E_PATH_ESCAPE");
    assert_eq!(c.tree_sums(b"t/sub/link/x").unwrap_err().code(), "E_PATH_ESCAPE");
    assert_eq!(c.tree_sums(b"nothing").unwrap_err().code(), "E_NOT_FOUND");
    assert_eq!(c.tree_sums(b".longhaul").unwrap_err().code(), "E_PATH_ESCAPE");
    let one = c.tree_sums(b"t/f5").unwrap();
    assert_eq!((one.len(), one[0].path.as_slice(), one[0].size), (1, b"".as_slice(), 185));
}

#[test]
fn a_large_file_keeps_parts_coming_while_it_is_hashed() {
    let dir = common::scratch("tree-sums", "large");
    let root = dir.join("root");
    fs::create_dir_all(root.join("h")).unwrap();
    // Sparse: 600 MiB of zeros that cost no disk.
    let f = fs::File::create(root.join("h/huge")).unwrap();
    f.set_len(600 << 20).unwrap();
    let n = Server::start(ServeOptions { root: root.clone(), ..ServeOptions::default() }).unwrap();
    let addr = n.local_addr().to_string();
    let dial = Dial { addr: &addr, secret: None, tls: None, connect_timeout: T, io_timeout: T };
    let (mut sock, _, _) = handshake::open(&dial, REQUEST_FEATURES).unwrap();
    frame::write_msg(&mut sock, &Msg::TreeSums { path: b"h".to_vec() }).unwrap();
    let mut parts = Vec::new();
    loop {
        match frame::expect_reply(&mut sock, 0).unwrap() {
            Msg::TreeSumsPart { last, entries } => {
                parts.push(entries.iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect::<Vec<_>>());
                if last {
                    break;
                }
            }
            m => panic!("{m:?}"),
        }
    }
    // After 256 MiB: the part held so far; after 512 MiB: an empty one; then the file.
    assert_eq!(parts, vec![vec![String::new()], vec![], vec!["huge".to_owned()]]);
}
