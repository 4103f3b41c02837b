//! What a tree may and may not do to the receiver it arrives at (issue 29, items 6 and 8): a
//! file meeting a directory is refused before data moves, and set-id bits are cleared unless
//! the receiver keeps them.

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use longhaul_core::client::{self, GetOptions};
use longhaul_core::{send, Error, SendOptions, ServeOptions, Server};

fn scratch(name: &str) -> common::Scratch {
    common::scratch("arrival", name)
}

fn node(root: &Path, keep_setid: bool) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), keep_setid, ..ServeOptions::default() }).unwrap()
}

fn push(n: &Server, source: &Path, dest: &str) -> Result<(), Error> {
    let opts = SendOptions { block_size: 64 << 10, ..SendOptions::default() };
    send(source, &n.local_addr().to_string(), dest.as_bytes(), &opts, &AtomicBool::new(false), &|_| {}).map(|_| ())
}

fn pull(n: &Server, path: &str, dest: &Path, keep_setid: bool) -> Result<(), Error> {
    let opts = GetOptions { block_size: 64 << 10, keep_setid, ..GetOptions::default() };
    client::get(&n.local_addr().to_string(), path.as_bytes(), dest, &opts, &AtomicBool::new(false), &|_| {}).map(|_| ())
}

/// The message names the path; the code is E_CONFLICT (a node's error arrives as Remote).
fn assert_conflict(e: &Error, path: &str) {
    assert_eq!(e.code(), "E_CONFLICT", "{e}");
    assert!(e.to_string().contains(&format!("{path:?}")), "{e} does not name {path:?}");
}

/// issue 29: a file where the node has a directory, a directory where it has a file, and a
/// file under a path that is a file on the node are refused when the manifest arrives: nothing
/// is written under the root (no `.part`, no journal), and the node takes the next push.
#[test]
fn a_push_that_meets_a_directory_with_a_file_is_refused_before_data_moves() {
    let dir = scratch("push");
    let root = dir.join("root");
    fs::create_dir_all(root.join("t/sub/inner")).unwrap();
    fs::write(root.join("t/sub/inner/keep"), b"keep").unwrap();
    fs::write(root.join("t/file"), b"old bytes").unwrap();
    let n = node(&root, false);
    let before = snapshot(&root);
    // Each source is a tree `t` with bytes enough for several blocks, all of which would travel
    // before a rename found the conflict.
    let cases: [(&str, &[&str], &[&str], &str); 3] = [
        ("file-over-dir", &["t"], &["t/a", "t/sub"], "t/sub"),
        ("dir-over-file", &["t", "t/file"], &["t/file/x", "t/a"], "t/file"),
        ("under-a-file", &["t", "t/file", "t/file/deeper"], &["t/file/deeper/x"], "t/file"),
    ];
    for (name, dirs, files, named) in cases {
        let src = dir.join(name);
        for d in dirs {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        for (i, f) in files.iter().enumerate() {
            fs::write(src.join(f), bytes(i as u64, 300_000)).unwrap();
        }
        let e = push(&n, &src.join("t"), "").unwrap_err();
        assert_conflict(&e, named);
        assert_eq!(snapshot(&root), before, "{name}: nothing under the root changed");
    }
    // Inside a destination the path is named from the root.
    let src = dir.join("file-over-dir");
    let e = push(&n, &src.join("t"), "").unwrap_err();
    assert_conflict(&e, "t/sub");
    fs::create_dir_all(root.join("in/t/a")).unwrap();
    let e = push(&n, &src.join("t"), "in").unwrap_err();
    assert_conflict(&e, "in/t/a");
    fs::remove_dir(root.join("in/t/a")).unwrap();
    // The node still serves: the same tree into a free place arrives whole.
    push(&n, &src.join("t"), "elsewhere").unwrap();
    assert_eq!(fs::read(root.join("elsewhere/t/sub")).unwrap(), bytes(1, 300_000));
    assert_eq!(fs::read(root.join("t/file")).unwrap(), b"old bytes");
}

/// issue 29: a pull whose tree has a file where DEST holds a directory fails with E_CONFLICT
/// before data moves, and writes nothing into DEST (no journal either).
#[test]
fn a_pull_into_a_conflicting_destination_writes_nothing() {
    let dir = scratch("pull");
    let root = dir.join("root");
    fs::create_dir_all(root.join("p")).unwrap();
    fs::write(root.join("p/data"), bytes(7, 500_000)).unwrap();
    let n = node(&root, false);
    let out = dir.join("out");
    fs::create_dir_all(out.join("p/data/mine")).unwrap();
    fs::write(out.join("p/data/mine/f"), b"mine").unwrap();
    let before = snapshot(&out);
    let e = pull(&n, "p", &out, false).unwrap_err();
    assert_conflict(&e, "p/data");
    assert_eq!(snapshot(&out), before);
    pull(&n, "p", &dir.join("out2"), false).unwrap();
    assert_eq!(fs::read(dir.join("out2/p/data")).unwrap(), bytes(7, 500_000));
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// A tree with a setuid program (whole in one block, and over several), a setgid directory
/// and a sticky one.
fn setid_tree(src: &Path) {
    fs::create_dir_all(src.join("shared/tmp")).unwrap();
    fs::write(src.join("shared/small"), b"#!/bin/sh\n").unwrap();
    fs::write(src.join("shared/large"), bytes(3, 200_000)).unwrap();
    for (p, m) in [("shared/small", 0o4755), ("shared/large", 0o6755), ("shared", 0o2775), ("shared/tmp", 0o1777)] {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).unwrap();
    }
}

/// issue 29: a node does not make set-id files or directories from a client's index unless
/// started with keep_setid, and what it makes is owned by its own user.
#[test]
fn setid_bits_are_cleared_unless_the_node_keeps_them() {
    let dir = scratch("setid");
    let src = dir.join("src");
    setid_tree(&src);
    let uid = rustix::process::getuid().as_raw();
    let cleared = dir.join("cleared");
    push(&node(&cleared, false), &src.join("shared"), "").unwrap();
    let kept = dir.join("kept");
    push(&node(&kept, true), &src.join("shared"), "").unwrap();
    let want =
        [("shared/small", 0o755, 0o4755), ("shared/large", 0o755, 0o6755), ("shared", 0o775, 0o2775), ("shared/tmp", 0o1777, 0o1777)];
    for (p, without, with) in want {
        assert_eq!(mode(&cleared.join(p)), without, "{p} from a node without keep_setid");
        assert_eq!(mode(&kept.join(p)), with, "{p} from a node with keep_setid");
        assert_eq!(fs::symlink_metadata(cleared.join(p)).unwrap().uid(), uid, "{p} is the node's user's");
    }
    assert_eq!(fs::read(cleared.join("shared/large")).unwrap(), bytes(3, 200_000));
}

/// issue 29: the client of a pull does not make set-id files from a node's index unless asked.
#[test]
fn a_pull_clears_setid_bits_unless_asked_to_keep_them() {
    let dir = scratch("pull-setid");
    let root = dir.join("root");
    setid_tree(&root);
    let n = node(&root, false);
    pull(&n, "shared", &dir.join("cleared"), false).unwrap();
    pull(&n, "shared", &dir.join("kept"), true).unwrap();
    for (p, without, with) in [("shared/small", 0o755, 0o4755), ("shared/large", 0o755, 0o6755), ("shared", 0o775, 0o2775)] {
        assert_eq!(mode(&dir.join("cleared").join(p)), without, "{p}");
        assert_eq!(mode(&dir.join("kept").join(p)), with, "{p}");
    }
}
