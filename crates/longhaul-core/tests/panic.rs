//! Issue 29, item 9: a panic in any engine thread is a bug, reported as `E_PANIC` with the
//! thread's role (not a network fault such as `E_PROTOCOL`, which the SDK retries), and the node
//! keeps serving. The panics are injected (`longhaul_core::panic::inject_for_tests`), which is
//! process-wide: this file is a test binary of its own, and one test runs the roles in turn.

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use longhaul_core::client::{self, GetOptions};
use longhaul_core::panic::inject_for_tests;
use longhaul_core::{send, SchedulerKind, SendOptions, ServeOptions, Server, Verify};

fn tree(root: &Path) {
    fs::create_dir_all(root.join("t/sub")).unwrap();
    for i in 0..20u64 {
        fs::write(root.join("t/sub").join(format!("f{i}")), bytes(i, (i as usize * 3001) % 20_000)).unwrap();
    }
    fs::write(root.join("t/big"), bytes(99, 3 << 20)).unwrap();
}

/// Every file under `root` with its mode and bytes.
fn files(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    snapshot(root).into_iter().map(|(p, mode, _, bytes)| (p, mode, bytes)).collect()
}

/// Issue 29, item 9: every role's panic is E_PANIC naming the role, on a push (either side) and
/// a pull, and after each the same node takes the next push whole.
#[test]
fn issue_29_a_panic_in_any_engine_thread_is_e_panic_with_its_role_and_the_node_keeps_serving() {
    let dir = common::scratch("panic", "roles");
    tree(&dir.join("src"));
    let n = Server::start(ServeOptions { root: dir.join("root"), ..ServeOptions::default() }).unwrap();
    let addr = n.local_addr().to_string();
    let push = |dest: &str, scheduler: SchedulerKind, verify: Verify| {
        let opts = SendOptions { streams: 2, block_size: 64 << 10, scheduler, verify, ..SendOptions::default() };
        send(&dir.join("src/t"), &addr, dest.as_bytes(), &opts, &AtomicBool::new(false), &|_| {})
    };
    let roles = [
        // The sender's threads (here a client pushing).
        ("reader", SchedulerKind::Pipelined, Verify::Block),
        ("processor", SchedulerKind::Pipelined, Verify::Block),
        ("sender", SchedulerKind::Pipelined, Verify::Block),
        ("worker", SchedulerKind::Adaptive, Verify::Block),
        ("driver", SchedulerKind::Auto, Verify::Block),
        ("digester", SchedulerKind::Pipelined, Verify::Full),
        // The node's threads.
        ("receiver", SchedulerKind::Pipelined, Verify::Block),
        ("writer", SchedulerKind::Pipelined, Verify::Block),
        ("connection", SchedulerKind::Pipelined, Verify::Block),
        // Both sides have one; whichever panics first, the push is E_PANIC.
        ("control watcher", SchedulerKind::Pipelined, Verify::Block),
    ];
    for (k, (role, scheduler, verify)) in roles.into_iter().enumerate() {
        inject_for_tests(Some(role));
        let e = push(&format!("bad{k}"), scheduler, verify).unwrap_err();
        inject_for_tests(None);
        assert_eq!(e.code(), "E_PANIC", "{role}: {e}");
        assert!(e.to_string().contains(role), "{role}: {e}");
        let dest = format!("good{k}");
        push(&dest, scheduler, verify).unwrap_or_else(|e| panic!("after {role}: {e}"));
        assert!(files(&dir.join("root").join(dest)) == files(&dir.join("src")), "after {role}: the tree differs");
    }
    assert!(n.stats_json().contains("E_PANIC"), "{}", n.stats_json());

    // A pull: the node's reader panics, the client hears E_PANIC, and the node serves the next.
    inject_for_tests(Some("reader"));
    let out = dir.join("out");
    let e = client::get(&addr, b"good0", &out.join("a"), &GetOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap_err();
    inject_for_tests(None);
    assert_eq!(e.code(), "E_PANIC", "{e}");
    assert!(e.to_string().contains("reader"), "{e}");
    client::get(&addr, b"good0", &out.join("b"), &GetOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap();
    assert!(files(&out.join("b/good0")) == files(&dir.join("src")), "the pulled tree differs");
}
