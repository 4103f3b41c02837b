//! `longhaul doctor`: probes each fast path and limit the engine depends on and says, for each
//! that is off, what to do about it.

use std::path::Path;

use crate::place::placement::{allowed_cpus, bind_current_thread, PinMode, Placement};
use crate::place::topology::{format_cpu_list, Topology};
use crate::pool::Pool;
use crate::sys::congestion::{self, Choice, Congestion};
use crate::sys::probe;

#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to do when it is not ok.
    pub advice: Option<String>,
}

fn read_num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Runs every check; `sysfs_root` is `/` on a real machine.
pub fn run(sysfs_root: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    match probe::sendfile() {
        Ok(()) => out.push(Check {
            name: "sendfile",
            ok: true,
            detail: "works (blocks inside one file leave without a copy)".into(),
            advice: None,
        }),
        Err(e) => out.push(Check {
            name: "sendfile",
            ok: false,
            detail: e,
            advice: Some("blocks are read into buffers and written instead; unset LONGHAUL_NO_SENDFILE if it is set".into()),
        }),
    }
    out.push(match probe::splice() {
        Ok(()) => Check {
            name: "splice",
            ok: true,
            detail: "works (file -> pipe -> socket); this version receives with read and write, checking each block's XXH3 in memory"
                .into(),
            advice: None,
        },
        Err(e) => Check {
            name: "splice",
            ok: false,
            detail: e,
            advice: Some("nothing to do for this version (it does not splice); a kernel or seccomp policy blocks splice here".into()),
        },
    });
    let tmp = std::env::temp_dir();
    let tmp_fd = rustix::fs::open(
        &tmp,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let tmpfile = tmp_fd.map_err(|e| format!("open: {e}")).and_then(|fd| probe::tmpfile(std::os::fd::AsFd::as_fd(&fd)));
    out.push(match tmpfile {
        Ok(()) => Check {
            name: "O_TMPFILE",
            ok: true,
            detail: format!(
                "works in {} (a node makes each small file unnamed and links it in complete; it probes each destination again)",
                tmp.display()
            ),
            advice: None,
        },
        Err(e) => Check {
            name: "O_TMPFILE",
            ok: false,
            detail: format!("{e} ({})", tmp.display()),
            advice: Some(
                "small files are written under a temporary name and renamed instead (slower on many small files); unset LONGHAUL_NO_TMPFILE if it is set"
                    .into(),
            ),
        },
    });
    out.push(match crate::sys::beneath::openat2_usable() {
        Ok(()) => Check {
            name: "openat2",
            ok: true,
            detail: "works: a node opens every directory beneath its root in one call that refuses any symlink (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)".into(),
            advice: None,
        },
        Err(e) => Check {
            name: "openat2",
            ok: false,
            detail: e,
            advice: Some("nothing to do: directories are opened one component at a time with O_NOFOLLOW instead, just as safe, a few more system calls; unset LONGHAUL_NO_OPENAT2 if it is set".into()),
        },
    });
    // The node's default pool: 16 x 4 MiB.
    let mut pool_locked = false;
    match Pool::new(4 << 20, 16) {
        Ok(p) if p.locked() => {
            pool_locked = true;
            out.push(Check {
                name: "mlock",
                ok: true,
                detail: format!("a 64 MiB pool locks (RLIMIT_MEMLOCK {})", probe::memlock_limit_text()),
                advice: None,
            })
        }
        Ok(p) => out.push(Check {
            name: "mlock",
            ok: false,
            detail: p.lock_fallback().unwrap_or("not locked").to_owned(),
            advice: Some("raise the locked-memory limit (ulimit -l, or LimitMEMLOCK= in the systemd unit) to the pool size".into()),
        }),
        Err(e) => {
            out.push(Check { name: "mlock", ok: false, detail: e.to_string(), advice: Some("free memory for the buffer pool".into()) })
        }
    }
    let pool_bytes = 64u64 << 20;
    out.push(match probe::memlock_limit() {
        None => Check { name: "RLIMIT_MEMLOCK", ok: true, detail: "unlimited".into(), advice: None },
        Some(n) if n >= pool_bytes => {
            Check { name: "RLIMIT_MEMLOCK", ok: true, detail: format!("{} KiB: room for the default 64 MiB pool", n / 1024), advice: None }
        }
        Some(n) if pool_locked => Check {
            name: "RLIMIT_MEMLOCK",
            ok: true,
            detail: format!("{} KiB, below the 64 MiB pool, but this process locks beyond it (CAP_IPC_LOCK, e.g. root)", n / 1024),
            advice: None,
        },
        Some(n) => Check {
            name: "RLIMIT_MEMLOCK",
            ok: false,
            detail: format!("{} KiB, less than the default 64 MiB pool", n / 1024),
            advice: Some("ulimit -l 131072 (or LimitMEMLOCK=128M in the systemd unit); unlocked buffers work but may be paged out".into()),
        },
    });
    let allowed = allowed_cpus();
    let pin = std::thread::spawn(move || match allowed.last() {
        Some(&cpu) => bind_current_thread(cpu).map(|()| cpu),
        None => Err("no CPU in this process's affinity mask".into()),
    })
    .join()
    .unwrap_or_else(|_| Err("the probe thread panicked".into()));
    out.push(match pin {
        Ok(cpu) => {
            Check { name: "pinning", ok: true, detail: format!("sched_setaffinity works (bound a thread to CPU {cpu})"), advice: None }
        }
        Err(e) => Check {
            name: "pinning",
            ok: false,
            detail: e,
            advice: Some("threads run unpinned; a container may forbid sched_setaffinity or restrict the CPU set".into()),
        },
    });
    match Topology::read(sysfs_root) {
        Ok(t) => {
            let nodes: Vec<String> = t.nodes.iter().map(|n| format!("node {}: CPUs {}", n.id, format_cpu_list(&n.cpus))).collect();
            let multi = t.nodes.iter().filter(|n| !n.cpus.is_empty()).count() > 1;
            out.push(Check {
                name: "numa",
                ok: true,
                detail: format!("{} CPUs; {}", t.cpus.len(), nodes.join("; ")),
                advice: (!multi).then(|| "one NUMA node: threads are left to the kernel's scheduler unless pin: always".into()),
            });
            let disk = t.node_of_path(Path::new("."));
            let p = Placement::choose(&t, None, disk, None, &allowed_cpus(), PinMode::Auto);
            out.push(match p {
                Ok(p) => Check {
                    name: "placement",
                    ok: true,
                    detail: format!("for this directory's disk: {}", p.reason),
                    advice: p.fallback.map(|f| format!("not pinned: {f}")),
                },
                Err(e) => Check { name: "placement", ok: false, detail: e.to_string(), advice: Some("check cores in the config".into()) },
            });
        }
        Err(e) => out.push(Check {
            name: "numa",
            ok: false,
            detail: format!("topology unreadable: {e}"),
            advice: Some("mount sysfs at /sys; threads are left unpinned".into()),
        }),
    }
    for (name, file) in [("net.core.rmem_max", "proc/sys/net/core/rmem_max"), ("net.core.wmem_max", "proc/sys/net/core/wmem_max")] {
        // 16 MiB covers 1 Gbit/s at 128 ms or 10 Gbit/s at 13 ms of round trip.
        let want = 16u64 << 20;
        out.push(match read_num(&sysfs_root.join(file)) {
            Some(v) if v >= want => Check { name: "socket buffers", ok: true, detail: format!("{name} = {v}"), advice: None },
            Some(v) => Check {
                name: "socket buffers",
                ok: false,
                detail: format!("{name} = {v}"),
                advice: Some(format!(
                    "for long fat networks: sysctl -w {name}={} (a buffer set with SO_RCVBUF or SO_SNDBUF stops at this maximum)",
                    64u64 << 20
                )),
            },
            None => Check { name: "socket buffers", ok: false, detail: format!("{name} unreadable"), advice: None },
        });
    }
    // TCP's autotuning grows a socket's buffers up to the third field of these: a stream's
    // window is about half of it, and a long fat link needs a bandwidth-delay product in flight
    // (at the kernel's 6 MiB, one stream tops out near 500 Mbit/s over 50 ms: bench/RESULTS.md).
    for (name, file, low) in [
        ("net.ipv4.tcp_rmem", "proc/sys/net/ipv4/tcp_rmem", "4096 131072"),
        ("net.ipv4.tcp_wmem", "proc/sys/net/ipv4/tcp_wmem", "4096 16384"),
    ] {
        let want = 16u64 << 20;
        let max = std::fs::read_to_string(sysfs_root.join(file)).ok().and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok());
        out.push(match max {
            Some(v) if v >= want => Check { name: "TCP autotuning", ok: true, detail: format!("{name} maximum = {v}"), advice: None },
            Some(v) => Check {
                name: "TCP autotuning",
                ok: false,
                detail: format!("{name} maximum = {v}: at most ~{} MiB in flight per stream", (v / 2) >> 20),
                advice: Some(format!(
                    "for long fat networks: sysctl -w {name}=\"{low} {}\" (autotuning stops at this maximum)",
                    64u64 << 20
                )),
            },
            None => Check { name: "TCP autotuning", ok: false, detail: format!("{name} unreadable"), advice: None },
        });
    }
    out.push(congestion_check(sysfs_root, crate::sys::congestion::choose(&Congestion::Auto)));
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    out.push(match nofile {
        Some(n) if n < 4096 => Check {
            name: "open files",
            ok: false,
            detail: format!("RLIMIT_NOFILE {n}"),
            advice: Some("raise it (ulimit -n 65536, or LimitNOFILE=) for nodes serving many transfers".into()),
        },
        n => Check {
            name: "open files",
            ok: true,
            detail: format!("RLIMIT_NOFILE {}", n.map_or("unlimited".into(), |n| n.to_string())),
            advice: None,
        },
    });
    out.push(match probe::io_uring() {
        Ok(()) => Check {
            name: "io_uring",
            ok: true,
            detail: "available; not used by this version (blocking threads with sendfile and pread/pwrite)".into(),
            advice: None,
        },
        Err(e) => {
            Check { name: "io_uring", ok: false, detail: e, advice: Some("nothing to do: this version does not use io_uring".into()) }
        }
    });
    out
}

/// What `congestion: auto` comes to here, with the kernel's lists beside it.
fn congestion_check(root: &Path, auto: crate::error::Result<Choice>) -> Check {
    let available = congestion::available(root).join(" ");
    let default = congestion::system_default(root).unwrap_or_else(|| "unknown".into());
    let lists = format!("system default {default}; available: {available}");
    match auto {
        Ok(Choice { set: Some(cc), .. }) => Check { name: "congestion control", ok: true, detail: format!("auto uses {cc} ({lists})"), advice: None },
        Ok(Choice { note, .. }) => Check {
            name: "congestion control",
            ok: false,
            detail: format!("auto keeps {default}: {} ({lists})", note.unwrap_or_default()),
            advice: Some("on lossy long links BBR is many times faster: modprobe tcp_bbr (and, for users other than root, add bbr to net.ipv4.tcp_allowed_congestion_control)".into()),
        },
        Err(e) => Check { name: "congestion control", ok: false, detail: e.to_string(), advice: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_check_and_reads_limits_through_the_root() {
        let root = crate::scratch::Scratch::new("doctor");
        crate::place::topology::fake::write(
            &root,
            &crate::place::topology::fake::FakeMachine { nodes: 2, cpus_per_node: 2, nic: ("eth0", 1), disk_node: 0 },
        );
        std::fs::create_dir_all(root.join("proc/sys/net/core")).unwrap();
        std::fs::write(root.join("proc/sys/net/core/rmem_max"), "212992\n").unwrap();
        std::fs::write(root.join("proc/sys/net/core/wmem_max"), "67108864\n").unwrap();
        std::fs::create_dir_all(root.join("proc/sys/net/ipv4")).unwrap();
        std::fs::write(root.join("proc/sys/net/ipv4/tcp_rmem"), "4096\t131072\t6291456\n").unwrap();
        std::fs::write(root.join("proc/sys/net/ipv4/tcp_wmem"), "4096\t16384\t67108864\n").unwrap();
        let checks = run(&root);
        let rmem = checks.iter().find(|c| c.detail.starts_with("net.ipv4.tcp_rmem")).unwrap();
        assert!(!rmem.ok && rmem.detail.ends_with("at most ~3 MiB in flight per stream"), "{}", rmem.detail);
        assert!(rmem.advice.as_deref().unwrap().contains("sysctl -w net.ipv4.tcp_rmem=\"4096 131072 67108864\""));
        assert!(checks.iter().find(|c| c.detail.starts_with("net.ipv4.tcp_wmem")).unwrap().ok);
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        for n in [
            "sendfile",
            "splice",
            "O_TMPFILE",
            "mlock",
            "RLIMIT_MEMLOCK",
            "pinning",
            "numa",
            "placement",
            "socket buffers",
            "open files",
            "io_uring",
        ] {
            assert!(names.contains(&n), "missing {n}");
        }
        let numa = checks.iter().find(|c| c.name == "numa").unwrap();
        assert!(numa.detail.contains("node 1: CPUs 2-3"), "{}", numa.detail);
        let rmem = checks.iter().find(|c| c.detail.starts_with("net.core.rmem_max")).unwrap();
        assert!(!rmem.ok && rmem.advice.as_deref().unwrap().contains("sysctl"));
        let wmem = checks.iter().find(|c| c.detail.starts_with("net.core.wmem_max")).unwrap();
        assert!(wmem.ok);
    }

    #[test]
    fn congestion_says_what_auto_uses_and_what_to_do_without_bbr() {
        let root = crate::scratch::Scratch::new("doctor-cc");
        std::fs::create_dir_all(root.join("proc/sys/net/ipv4")).unwrap();
        std::fs::write(root.join(congestion::AVAILABLE), "reno cubic\n").unwrap();
        std::fs::write(root.join(congestion::SYSTEM_DEFAULT), "cubic\n").unwrap();
        let with = congestion_check(&root, Ok(Choice { set: Some("bbr".into()), note: None }));
        assert!(with.ok && with.detail.starts_with("auto uses bbr (system default cubic; available: reno cubic)"), "{}", with.detail);
        let without = congestion_check(&root, Ok(Choice { set: None, note: Some("bbr cannot be used here".into()) }));
        assert!(!without.ok && without.detail.starts_with("auto keeps cubic"), "{}", without.detail);
        assert!(without.advice.unwrap().contains("modprobe tcp_bbr"));
        assert!(run(&root).iter().any(|c| c.name == "congestion control"));
    }
}
