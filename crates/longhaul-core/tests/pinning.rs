//! A test that really pins: while a transfer runs, every engine thread's affinity is read back
//! from /proc/self/task/*/status and must be the CPU the placement gave it.

mod common;

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use longhaul_core::place::placement::{allowed_cpus, CoreSpec, PinMode};
use longhaul_core::{send, SchedulerKind, SendOptions, ServeOptions, Server};

/// (tid, thread name, Cpus_allowed_list) of every thread of this process named `lh-*`.
fn engine_threads() -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc/self/task").unwrap().flatten() {
        let tid: i32 = e.file_name().to_string_lossy().parse().unwrap();
        let (Ok(comm), Ok(status)) = (fs::read_to_string(e.path().join("comm")), fs::read_to_string(e.path().join("status"))) else {
            continue; // the thread ended while we looked
        };
        let name = comm.trim().to_owned();
        if !name.starts_with("lh-") {
            continue;
        }
        let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_owned();
        out.push((tid, name, cpus));
    }
    out
}

#[test]
fn engine_threads_run_where_the_placement_put_them() {
    let allowed = allowed_cpus();
    let io = *allowed.last().unwrap();
    let other = allowed[0];
    let base = common::scratch("pin", "threads");
    fs::create_dir_all(base.join("src")).unwrap();
    fs::write(base.join("src/data"), vec![7u8; 48 << 20]).unwrap();
    let node = Server::start(ServeOptions { root: base.join("root"), ..Default::default() }).unwrap();
    for scheduler in [SchedulerKind::Pipelined, SchedulerKind::Adaptive] {
        let seen = Mutex::new(HashMap::new());
        let opts = SendOptions {
            scheduler,
            block_size: 64 << 10,
            cores: Some(CoreSpec { io: vec![io], other: vec![other] }),
            pin: PinMode::Always,
            progress_interval: std::time::Duration::from_millis(1),
            ..Default::default()
        };
        let dest = format!("{scheduler:?}");
        let s = send(&base.join("src"), &node.local_addr().to_string(), dest.as_bytes(), &opts, &AtomicBool::new(false), &|_| {
            for (tid, name, cpus) in engine_threads() {
                seen.lock().unwrap().insert(tid, (name, cpus));
            }
        })
        .unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(s.placement.pin, "{scheduler:?}: pinning was asked for");
        assert!(!s.pinned.is_empty(), "{scheduler:?}: no thread was pinned");
        let mut checked = 0;
        for p in &s.pinned {
            assert_eq!(p.error, None, "{} could not be bound", p.name);
            let want = if p.name.starts_with("lh-pr") { other } else { io };
            assert_eq!(p.cpu, want, "{} was given the wrong CPU", p.name);
            if let Some((name, cpus)) = seen.get(&p.tid) {
                assert_eq!(name, &p.name);
                assert_eq!(cpus, &want.to_string(), "the kernel says {name} may run on {cpus}");
                checked += 1;
            }
        }
        assert!(checked > 0, "{scheduler:?}: no pinned thread was seen running (saw {seen:?})");
        let prefix = if scheduler == SchedulerKind::Adaptive { "lh-aw" } else { "lh-rd" };
        assert!(s.pinned.iter().any(|p| p.name.starts_with(prefix)), "{scheduler:?}: {:?}", s.pinned);
        assert_eq!(fs::read(base.join("root").join(&dest).join("src/data")).unwrap().len(), 48 << 20);
    }
    drop(node);
}
