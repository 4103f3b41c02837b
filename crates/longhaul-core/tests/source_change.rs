//! Issue 29, item 7: a source file changed while it is read is named. A file whose size, mtime
//! or ctime changed (checked after every read of it, its last included) is sent once more from a
//! fresh scan; if it changes again the transfer fails with `E_SOURCE_CHANGED` naming it, and a
//! block whose checksum failed because its file changed between its hash and its send (sendfile
//! reads it twice) is that, not `E_CHECKSUM`.

mod common;

use common::bytes;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use longhaul_core::client::{self, GetOptions};
use longhaul_core::{send, SendOptions, ServeOptions, Server};

const BIG: usize = 16 << 20;

/// Rewrites `path` in place (same size, other bytes), as an editor saving over it would.
fn rewrite(path: &Path, seed: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&bytes(seed, BIG), 0).unwrap();
}

/// A node that takes 16 MiB/s, so the big file is still being read a second after it starts.
fn slow_node(root: &Path) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), rate: Some(16 << 20), ..ServeOptions::default() }).unwrap()
}

fn tree(src: &Path) {
    fs::create_dir_all(src.join("t")).unwrap();
    fs::write(src.join("t/a-small"), b"written before the scan, never changed").unwrap();
    fs::write(src.join("t/big"), bytes(1, BIG)).unwrap();
}

/// Waits until the node has counted `code` (it ends a session a moment after the client).
fn counted(n: &Server, code: &str) -> bool {
    (0..50).any(|_| {
        let found = n.stats_json().contains(&format!("\"{code}\":"));
        if !found {
            std::thread::sleep(Duration::from_millis(100));
        }
        found
    })
}

/// Issue 29, item 7: changed once, the file is sent again from a fresh stat and arrives as it
/// is now, byte for byte.
#[test]
fn issue_29_a_file_rewritten_once_while_it_is_sent_is_sent_again_and_arrives_as_rewritten() {
    let dir = common::scratch("source-change", "once");
    tree(&dir.join("src"));
    let n = slow_node(&dir.join("root"));
    let once = std::sync::Once::new();
    let opts = SendOptions { streams: 2, ..SendOptions::default() };
    let s = send(&dir.join("src/t"), &n.local_addr().to_string(), b"in", &opts, &AtomicBool::new(false), &|p| {
        if p.bytes_done > 0 {
            once.call_once(|| rewrite(&dir.join("src/t/big"), 2));
        }
    })
    .unwrap();
    assert!(once.is_completed());
    assert_eq!(s.files, 2);
    assert!(fs::read(dir.join("root/in/t/big")).unwrap() == bytes(2, BIG), "the file arrived as it was before the rewrite");
    assert_eq!(fs::read(dir.join("root/in/t/a-small")).unwrap(), fs::read(dir.join("src/t/a-small")).unwrap());
    // The first attempt ended as a changed source, told to the node: not as a bad block.
    assert!(counted(&n, "E_SOURCE_CHANGED"), "{}", n.stats_json());
    assert!(!n.stats_json().contains("E_CHECKSUM"), "{}", n.stats_json());
    // What the first attempt held of the changed file went with it: no temporary file stays.
    let names: Vec<String> = common::snapshot(&dir.join("root")).into_iter().map(|e| e.0).collect();
    assert!(!names.iter().any(|p| p.ends_with(".part")), "{names:?}");
}

/// Issue 29, item 7: a file that changes again while it is sent the second time fails the
/// transfer with E_SOURCE_CHANGED naming it (not a stream offset, not E_CHECKSUM), and the node
/// serves the next push.
#[test]
fn issue_29_a_file_that_keeps_changing_while_it_is_sent_is_e_source_changed_naming_it() {
    let dir = common::scratch("source-change", "again");
    tree(&dir.join("src"));
    let n = slow_node(&dir.join("root"));
    let addr = n.local_addr().to_string();
    let done = AtomicBool::new(false);
    let opts = SendOptions { streams: 2, ..SendOptions::default() };
    let e = std::thread::scope(|s| {
        s.spawn(|| {
            for seed in 10.. {
                std::thread::sleep(Duration::from_millis(150));
                if done.load(Ordering::Relaxed) {
                    break;
                }
                rewrite(&dir.join("src/t/big"), seed);
            }
        });
        let r = send(&dir.join("src/t"), &addr, b"in", &opts, &AtomicBool::new(false), &|_| {});
        done.store(true, Ordering::Relaxed);
        r
    })
    .unwrap_err();
    assert_eq!(e.code(), "E_SOURCE_CHANGED", "{e}");
    assert!(e.to_string().contains("\"t/big\"") && e.to_string().contains("changed while it was read"), "{e}");
    // (The node may count an attempt as E_CHECKSUM here: a scan that ran while a rewrite was
    // under way saw the rewrite's new mtime before its bytes, and nothing changed the stamp
    // again before the node's grace ran out. The sender still names the change.)
    // At rest again, the same push completes.
    send(&dir.join("src/t"), &addr, b"in", &opts, &AtomicBool::new(false), &|_| {}).unwrap();
    assert!(fs::read(dir.join("root/in/t/big")).unwrap() == fs::read(dir.join("src/t/big")).unwrap());
}

/// Issue 29, item 7: a pull whose file the node's source rewrites once under it is pulled again
/// from the node's fresh scan and arrives as rewritten; the first attempt's end is counted as a
/// changed source, not a bad block, though its blocks went out by sendfile after their hash.
#[test]
fn issue_29_a_pull_of_a_file_rewritten_once_under_the_node_is_pulled_again_as_rewritten() {
    let dir = common::scratch("source-change", "pull-once");
    let root = dir.join("root");
    tree(&root);
    let n = slow_node(&root);
    let once = std::sync::Once::new();
    let opts = GetOptions { streams: 2, ..GetOptions::default() };
    client::get(&n.local_addr().to_string(), b"t", &dir.join("out"), &opts, &AtomicBool::new(false), &|p| {
        if p.bytes_done > 0 {
            once.call_once(|| rewrite(&root.join("t/big"), 3));
        }
    })
    .unwrap();
    assert!(once.is_completed());
    assert!(fs::read(dir.join("out/t/big")).unwrap() == bytes(3, BIG), "the file arrived as it was before the rewrite");
    assert!(counted(&n, "E_SOURCE_CHANGED"), "{}", n.stats_json());
    assert!(!n.stats_json().contains("E_CHECKSUM"), "{}", n.stats_json());
    let names: Vec<String> = common::snapshot(&dir.join("out")).into_iter().map(|e| e.0).collect();
    assert!(!names.iter().any(|p| p.ends_with(".part")), "{names:?}");
}

/// Issue 29, item 7: a pull of a file that keeps changing under the node: E_SOURCE_CHANGED
/// naming it, not E_CHECKSUM (whatever the node counted: see the push's case).
#[test]
fn issue_29_a_pull_of_a_file_that_keeps_changing_under_the_node_is_e_source_changed_naming_it() {
    let dir = common::scratch("source-change", "pull-again");
    let root = dir.join("root");
    tree(&root);
    let n = slow_node(&root);
    let done = AtomicBool::new(false);
    let opts = GetOptions { streams: 2, ..GetOptions::default() };
    let e = std::thread::scope(|s| {
        s.spawn(|| {
            for seed in 20.. {
                std::thread::sleep(Duration::from_millis(150));
                if done.load(Ordering::Relaxed) {
                    break;
                }
                rewrite(&root.join("t/big"), seed);
            }
        });
        let r = client::get(&n.local_addr().to_string(), b"t", &dir.join("out"), &opts, &AtomicBool::new(false), &|_| {});
        done.store(true, Ordering::Relaxed);
        r
    })
    .unwrap_err();
    assert_eq!(e.code(), "E_SOURCE_CHANGED", "{e}");
    assert!(e.to_string().contains("\"t/big\"") && e.to_string().contains("changed while it was read"), "{e}");
}
