//! The engine end to end on loopback, without Node: a node in-process, a tree sent to it with
//! 1 and 3 streams and with small blocks (so blocks span many files and files span blocks).

mod common;

use common::snapshot;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use longhaul_core::{send, Digest, SchedulerKind, SendOptions, ServeOptions, Server};

fn scratch(name: &str) -> common::Scratch {
    common::scratch("core", name)
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    let mut seed = 7u64;
    for i in 0..300u64 {
        let size = (i * i * 37) % 20_000;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        let p = root.join(if i % 2 == 0 { "a" } else { "a/b" }).join(format!("f {i}"));
        fs::write(&p, data).unwrap();
    }
    fs::write(root.join("big"), vec![0x5a; 300_000]).unwrap();
    fs::set_permissions(root.join("big"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("a/f 0", root.join("link")).unwrap();
}

#[test]
fn a_tree_arrives_identical_over_1_and_3_streams() {
    let base = scratch("tree");
    let src = base.join("src");
    make_tree(&src);
    let mut node = Server::start(ServeOptions { root: base.join("root"), ..Default::default() }).unwrap();
    let addr = node.local_addr().to_string();
    for (streams, block) in [(1u16, 4u32 << 20), (3, 8192)] {
        let dest = format!("s{streams}");
        let opts = SendOptions { streams, block_size: block, ..Default::default() };
        let s = send(&src, &addr, dest.as_bytes(), &opts, &AtomicBool::new(false), &|_| {}).unwrap();
        assert_eq!(s.files, 301);
        assert_eq!(s.receiver.bytes, s.bytes);
        assert_eq!(snapshot(&src), snapshot(&base.join("root").join(&dest).join("src")), "{streams} streams");
    }
    // Every scheduler, with and without a BLAKE3 of every block; 8 KiB blocks make ~400 of
    // them, enough for `auto` to probe both schedulers.
    for scheduler in [SchedulerKind::Pipelined, SchedulerKind::Adaptive, SchedulerKind::Auto] {
        for digest in [Digest::None, Digest::Blake3] {
            let dest = format!("{scheduler:?}-{digest:?}");
            let opts = SendOptions { streams: 2, block_size: 4096, scheduler, digest, ..Default::default() };
            let s = send(&src, &addr, dest.as_bytes(), &opts, &AtomicBool::new(false), &|_| {}).unwrap();
            assert_eq!(snapshot(&src), snapshot(&base.join("root").join(&dest).join("src")), "{dest}");
            match scheduler {
                SchedulerKind::Auto => {
                    assert_eq!(s.scheduler.probe.len(), 2, "{dest}: {}", s.scheduler.reason);
                    assert!(s.scheduler.used == "pipelined" || s.scheduler.used == "adaptive");
                }
                _ => assert_eq!(s.scheduler.used, s.scheduler.requested),
            }
            if digest == Digest::Blake3 {
                assert_eq!(s.sendfile_blocks, 0, "a digest needs buffers");
            }
            assert!(!s.timeline.is_empty());
        }
    }
    assert_eq!(node.counts().completed, 8);
    node.close();
}

#[test]
fn a_dest_through_a_symlink_is_refused_and_nothing_lands_outside() {
    let base = scratch("escape");
    let src = base.join("src");
    make_tree(&src);
    let outside = base.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(base.join("root")).unwrap();
    symlink(&outside, base.join("root/evil")).unwrap();
    let node = Server::start(ServeOptions { root: base.join("root"), ..Default::default() }).unwrap();
    let err = send(&src, &node.local_addr().to_string(), b"evil/x", &SendOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(err.code(), "E_PATH_ESCAPE", "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    let err = send(&src, &node.local_addr().to_string(), b"../up", &SendOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(err.code(), "E_PATH_ESCAPE", "{err}");
    assert!(!base.join("up").exists());
    drop(node);
}

/// Regression: a cancel that lands while the pipelined queues are full used to leave readers
/// blocked forever on a queue whose receiving end the scheduler still held.
#[test]
fn cancelling_at_any_moment_ends_every_scheduler_promptly() {
    let base = scratch("cancel");
    let src = base.join("src");
    make_tree(&src);
    let big = fs::File::create(src.join("zz-big")).unwrap();
    big.set_len(512 << 20).unwrap();
    let node = Server::start(ServeOptions { root: base.join("root"), ..Default::default() }).unwrap();
    let addr = node.local_addr().to_string();
    for (i, scheduler) in [SchedulerKind::Pipelined, SchedulerKind::Adaptive, SchedulerKind::Auto].iter().cycle().take(18).enumerate() {
        let (src, addr, scheduler) = (src.clone(), addr.clone(), *scheduler);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let cancel = std::sync::Arc::new(AtomicBool::new(false));
            let c = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(7 * i as u64));
                c.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let opts = SendOptions { scheduler, streams: 1 + (i % 2) as u16, ..Default::default() };
            let _ = tx
                .send(send(&src, &addr, format!("c{i}").as_bytes(), &opts, &cancel, &|_| {}).map(|_| ()).map_err(|e| e.code().to_owned()));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(Err(code)) => assert_eq!(code, "E_CANCELLED", "{scheduler:?} #{i}"),
            Ok(Ok(())) => {} // finished before the cancel landed
            Err(_) => panic!("{scheduler:?} #{i}: a cancelled send did not return within 20 s"),
        }
    }
    drop(node);
}
