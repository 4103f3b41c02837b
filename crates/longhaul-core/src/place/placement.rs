//! Where the engine's threads run: placement is data, chosen from the topology and the devices
//! a transfer touches, and applied by one function, `bind_current_thread`.
//!
//! Policy (mdtmFTP's core zones):
//! - Disk threads (readers, writers) go to the CPUs of the NUMA node of the block device that
//!   holds the source or destination; network threads (senders, receivers) to the CPUs of the
//!   node of the NIC that reaches the peer. A device without a node (a virtual disk, `lo`)
//!   leaves its threads free to use every allowed CPU.
//! - The other zone (processing, management, the Node.js main thread) is every allowed CPU not
//!   in an I/O zone; when the I/O zones cover every CPU of a machine of 4 or more, the first CPU
//!   is kept out of them for that other work.
//! - `cores` in the config (`io: "2-7", other: "0-1,8-15"`) overrides the choice.
//! - Pinning (`sched_setaffinity`, one CPU per thread, round robin in its zone) is applied when
//!   the machine has more than one NUMA node, or when asked for (`pin: always`, or `cores`);
//!   on a single node it would only take freedom away from the kernel's scheduler, so `auto`
//!   leaves threads unpinned and records why. `LONGHAUL_NO_PIN=1` turns pinning off.
//! - The buffer pool is first touched by a thread bound to the disk zone, so its pages are
//!   allocated on the disk's node.
//!
//! What it ignores: SMT siblings (two threads may land on one core's siblings), interrupt
//! affinity of the NIC queues, and CPU frequency.

use std::net::IpAddr;
use std::path::Path;

use crate::error::{Error, Result};
use crate::place::topology::{format_cpu_list, parse_cpu_list, Topology};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PinMode {
    /// Pin on machines of several NUMA nodes, or when cores are configured.
    #[default]
    Auto,
    Always,
    Never,
}

impl PinMode {
    pub fn parse(s: &str) -> Result<PinMode> {
        match s {
            "auto" => Ok(PinMode::Auto),
            "always" => Ok(PinMode::Always),
            "never" => Ok(PinMode::Never),
            _ => Err(Error::Usage(format!("pin must be auto, always or never, not {s:?}"))),
        }
    }
}

/// Cores set by the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreSpec {
    pub io: Vec<usize>,
    pub other: Vec<usize>,
}

impl CoreSpec {
    pub fn parse(io: &str, other: Option<&str>) -> Result<CoreSpec> {
        let io = parse_cpu_list(io)?;
        if io.is_empty() {
            return Err(Error::Usage("cores.io lists no CPU".into()));
        }
        Ok(CoreSpec { io, other: other.map(parse_cpu_list).transpose()?.unwrap_or_default() })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Disk,
    Net,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub disk_cpus: Vec<usize>,
    pub net_cpus: Vec<usize>,
    pub other_cpus: Vec<usize>,
    pub disk_node: Option<usize>,
    pub net_node: Option<usize>,
    pub pin: bool,
    /// What was chosen and why, for the summary and `doctor`.
    pub reason: String,
    /// Why pinning is not applied, when it is not.
    pub fallback: Option<String>,
}

fn intersect(a: &[usize], allowed: &[usize]) -> Vec<usize> {
    a.iter().copied().filter(|c| allowed.contains(c)).collect()
}

impl Placement {
    /// The placement of a transfer's threads on either end: near the NIC that reaches `peer`
    /// and the disk holding `path` (a sender's source, a node's root), read from the topology
    /// under `sysfs_root`. An unreadable topology leaves the threads unpinned, saying why; a
    /// `spec` that cannot be met is an error (a node falls back to unpinned, a client stops).
    pub fn for_peer(sysfs_root: &Path, peer: IpAddr, path: &Path, spec: Option<&CoreSpec>, mode: PinMode) -> Result<Placement> {
        let allowed = allowed_cpus();
        let topo = match Topology::read(sysfs_root) {
            Ok(t) => t,
            Err(e) => return Ok(Placement::unpinned(&allowed, format!("topology unreadable ({e}): threads are not pinned"))),
        };
        let net_node = match peer {
            IpAddr::V4(v4) => topo.interface_for(v4).and_then(|i| topo.node_of_interface(&i)),
            IpAddr::V6(_) => None,
        };
        let disk_node = topo.node_of_path(path);
        Placement::choose(&topo, net_node, disk_node, spec, &allowed, mode)
    }

    /// Chooses a placement. `allowed` is the CPUs this process may run on (its affinity).
    pub fn choose(
        topo: &Topology,
        net_node: Option<usize>,
        disk_node: Option<usize>,
        spec: Option<&CoreSpec>,
        allowed: &[usize],
        mode: PinMode,
    ) -> Result<Placement> {
        let allowed = intersect(&topo.all_cpus(), allowed);
        if allowed.is_empty() {
            return Err(Error::Usage("no CPU of the topology is allowed to this process".into()));
        }
        let forced_off = std::env::var_os("LONGHAUL_NO_PIN").is_some_and(|v| !v.is_empty() && v != "0");
        if let Some(spec) = spec {
            let io = intersect(&spec.io, &allowed);
            if io.is_empty() {
                return Err(Error::Usage(format!("cores.io {} lists no CPU this process may use", format_cpu_list(&spec.io))));
            }
            let mut other = intersect(&spec.other, &allowed);
            if other.is_empty() {
                other = allowed.iter().copied().filter(|c| !io.contains(c)).collect();
            }
            if other.is_empty() {
                other = allowed.clone();
            }
            let (pin, fallback) = match (mode, forced_off) {
                (_, true) => (false, Some("pinning disabled by LONGHAUL_NO_PIN".to_owned())),
                (PinMode::Never, _) => (false, Some("pinning disabled by pin: never".to_owned())),
                _ => (true, None),
            };
            return Ok(Placement {
                reason: format!("cores from the config: I/O on {}, other work on {}", format_cpu_list(&io), format_cpu_list(&other)),
                disk_cpus: io.clone(),
                net_cpus: io,
                other_cpus: other,
                disk_node,
                net_node,
                pin,
                fallback,
            });
        }
        let zone = |node: Option<usize>| -> Vec<usize> {
            let z = node.map(|n| intersect(topo.node_cpus(n), &allowed)).unwrap_or_default();
            if z.is_empty() {
                allowed.clone()
            } else {
                z
            }
        };
        let mut disk = zone(disk_node.or(net_node));
        let mut net = zone(net_node.or(disk_node));
        let io_all: Vec<usize> = allowed.iter().copied().filter(|c| disk.contains(c) || net.contains(c)).collect();
        if io_all.len() == allowed.len() && allowed.len() >= 4 {
            // Keep one CPU out of the I/O zones for the Node.js thread and management work.
            let keep = allowed[0];
            disk.retain(|&c| c != keep);
            net.retain(|&c| c != keep);
        }
        let mut other: Vec<usize> = allowed.iter().copied().filter(|c| !disk.contains(c) && !net.contains(c)).collect();
        if other.is_empty() {
            other = allowed.clone();
        }
        let nodes_in_use = topo.nodes.iter().filter(|n| !intersect(&n.cpus, &allowed).is_empty()).count();
        let (pin, fallback) = match (mode, forced_off) {
            (_, true) => (false, Some("pinning disabled by LONGHAUL_NO_PIN".to_owned())),
            (PinMode::Never, _) => (false, Some("pinning disabled by pin: never".to_owned())),
            (PinMode::Always, _) => (true, None),
            (PinMode::Auto, _) if nodes_in_use > 1 => (true, None),
            (PinMode::Auto, _) => {
                (false, Some("single NUMA node: pinning would only constrain the kernel's scheduler (pin: always forces it)".to_owned()))
            }
        };
        let node = |n: Option<usize>| n.map_or("no node".to_owned(), |n| format!("node {n}"));
        Ok(Placement {
            reason: format!(
                "disk threads on {} ({}), network threads on {} ({}), other work on {}",
                format_cpu_list(&disk),
                node(disk_node),
                format_cpu_list(&net),
                node(net_node),
                format_cpu_list(&other)
            ),
            disk_cpus: disk,
            net_cpus: net,
            other_cpus: other,
            disk_node,
            net_node,
            pin,
            fallback,
        })
    }

    /// No pinning, every allowed CPU in every zone, for when the topology cannot be read.
    pub fn unpinned(allowed: &[usize], why: String) -> Placement {
        Placement {
            disk_cpus: allowed.to_vec(),
            net_cpus: allowed.to_vec(),
            other_cpus: allowed.to_vec(),
            disk_node: None,
            net_node: None,
            pin: false,
            reason: why.clone(),
            fallback: Some(why),
        }
    }

    /// The CPU the `i`-th thread of `role` is bound to, if threads are pinned.
    pub fn cpu_for(&self, role: Role, i: usize) -> Option<usize> {
        if !self.pin {
            return None;
        }
        let zone = match role {
            Role::Disk => &self.disk_cpus,
            Role::Net => &self.net_cpus,
            Role::Other => &self.other_cpus,
        };
        zone.get(i % zone.len().max(1)).copied()
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Binds the calling thread to one CPU.
pub fn bind_current_thread(cpu: usize) -> std::result::Result<(), String> {
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Err(format!("CPU {cpu} is beyond the affinity mask"));
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| format!("sched_setaffinity to CPU {cpu}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::place::topology::fake::{write, FakeMachine};
    use crate::scratch::Scratch;

    fn topo(nodes: usize, per: usize, nic: i64, disk: i64) -> Topology {
        let root = Scratch::new(&format!("place-{nodes}-{per}-{nic}-{disk}"));
        write(&root, &FakeMachine { nodes, cpus_per_node: per, nic: ("eth0", nic), disk_node: disk });
        Topology::read(&root).unwrap()
    }

    #[test]
    fn two_nodes_put_each_thread_next_to_its_device() {
        let t = topo(2, 4, 1, 0);
        let all = t.all_cpus();
        let p = Placement::choose(&t, Some(1), Some(0), None, &all, PinMode::Auto).unwrap();
        assert_eq!(p.net_cpus, vec![4, 5, 6, 7]);
        assert_eq!(p.disk_cpus, vec![1, 2, 3], "CPU 0 is kept for other work");
        assert_eq!(p.other_cpus, vec![0]);
        assert!(p.pin, "two nodes: pin");
        assert_eq!(p.cpu_for(Role::Net, 0), Some(4));
        assert_eq!(p.cpu_for(Role::Net, 5), Some(5), "round robin in the zone");
        assert_eq!(p.cpu_for(Role::Disk, 1), Some(2));
    }

    #[test]
    fn four_nodes_leave_the_unused_nodes_to_other_work() {
        let t = topo(4, 8, 3, 2);
        let p = Placement::choose(&t, Some(3), Some(2), None, &t.all_cpus(), PinMode::Auto).unwrap();
        assert_eq!(p.net_cpus, (24..32).collect::<Vec<_>>());
        assert_eq!(p.disk_cpus, (16..24).collect::<Vec<_>>());
        assert_eq!(p.other_cpus, (0..16).collect::<Vec<_>>());
        assert!(p.pin);
        // Only the disk's node is known: the network threads go there too.
        let p = Placement::choose(&t, None, Some(2), None, &t.all_cpus(), PinMode::Auto).unwrap();
        assert_eq!(p.net_cpus, p.disk_cpus);
    }

    #[test]
    fn allowed_cpus_limit_every_zone() {
        let t = topo(2, 4, 1, 0);
        let p = Placement::choose(&t, Some(1), Some(0), None, &[2, 3, 6], PinMode::Auto).unwrap();
        assert_eq!(p.disk_cpus, vec![2, 3]);
        assert_eq!(p.net_cpus, vec![6]);
        // Every allowed CPU is in an I/O zone, fewer than 4: other work shares them.
        assert_eq!(p.other_cpus, vec![2, 3, 6]);
    }

    #[test]
    fn a_single_node_does_not_pin_unless_asked_and_says_why() {
        let t = topo(1, 2, -1, -1);
        let p = Placement::choose(&t, None, None, None, &t.all_cpus(), PinMode::Auto).unwrap();
        assert!(!p.pin);
        assert!(p.fallback.as_deref().unwrap().contains("single NUMA node"));
        assert_eq!(p.cpu_for(Role::Disk, 0), None);
        let p = Placement::choose(&t, None, None, None, &t.all_cpus(), PinMode::Always).unwrap();
        assert!(p.pin);
        assert_eq!(p.disk_cpus, vec![0, 1]);
    }

    #[test]
    fn configured_cores_override_and_are_checked() {
        let t = topo(2, 8, 1, 0);
        let spec = CoreSpec::parse("2-7", Some("0-1,8-15")).unwrap();
        let p = Placement::choose(&t, Some(1), Some(0), Some(&spec), &t.all_cpus(), PinMode::Auto).unwrap();
        assert_eq!(p.disk_cpus, vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(p.net_cpus, p.disk_cpus);
        assert_eq!(p.other_cpus, vec![0, 1, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert!(p.pin);
        let bad = CoreSpec::parse("40-41", None).unwrap();
        let e = Placement::choose(&t, None, None, Some(&bad), &t.all_cpus(), PinMode::Auto).unwrap_err();
        assert_eq!(e.code(), "E_USAGE");
        assert_eq!(PinMode::parse("sometimes").unwrap_err().code(), "E_USAGE");
    }

    #[test]
    fn binding_really_changes_the_affinity() {
        let cpus = allowed_cpus();
        let cpu = *cpus.last().unwrap();
        std::thread::spawn(move || {
            bind_current_thread(cpu).unwrap();
            assert_eq!(allowed_cpus(), vec![cpu]);
            let status = std::fs::read_to_string(format!("/proc/self/task/{}/status", rustix::thread::gettid().as_raw_nonzero())).unwrap();
            let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
            assert_eq!(line.split_whitespace().nth(1).unwrap(), cpu.to_string());
        })
        .join()
        .unwrap();
    }
}
