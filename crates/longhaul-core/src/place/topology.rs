//! The machine's CPUs and NUMA nodes, and the node each device sits on, read from sysfs (and
//! `/proc/net/route` for the interface that reaches a peer). Everything is read through a root
//! directory so that tests can point it at a fake tree: `Topology::read(Path::new("/"))` on a
//! real machine.
//!
//! What it ignores: SMT siblings are listed (core ids) but not treated specially; CPUs that
//! are offline are left out; a device whose `numa_node` is -1 (no affinity, or a virtual device
//! such as `lo`) has no node.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub id: usize,
    pub core: usize,
    pub package: usize,
    pub node: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaNode {
    pub id: usize,
    pub cpus: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub cpus: Vec<Cpu>,
    pub nodes: Vec<NumaNode>,
    root: PathBuf,
}

/// Parses a kernel CPU list: `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || Error::Usage(format!("bad CPU list {text:?}"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if b < a || b - a > 65_536 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Formats CPUs as a kernel CPU list, the inverse of `parse_cpu_list`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn read_num(p: &Path) -> Option<i64> {
    read_trim(p)?.parse().ok()
}

impl Topology {
    /// Reads the topology under `root` (`/` on a real machine).
    pub fn read(root: &Path) -> Result<Topology> {
        let cpu_dir = root.join("sys/devices/system/cpu");
        let online = read_trim(&cpu_dir.join("online"))
            .ok_or_else(|| Error::io("read", cpu_dir.join("online").as_os_str().as_encoded_bytes(), std::io::ErrorKind::NotFound.into()))?;
        let online = parse_cpu_list(&online)?;
        let mut nodes = Vec::new();
        let node_dir = root.join("sys/devices/system/node");
        if let Ok(rd) = fs::read_dir(&node_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(id) = name.strip_prefix("node").and_then(|n| n.parse::<usize>().ok()) else { continue };
                let cpus = read_trim(&e.path().join("cpulist")).map(|l| parse_cpu_list(&l)).transpose()?.unwrap_or_default();
                let cpus: Vec<usize> = cpus.into_iter().filter(|c| online.contains(c)).collect();
                nodes.push(NumaNode { id, cpus });
            }
        }
        nodes.sort_by_key(|n| n.id);
        if nodes.is_empty() {
            // No NUMA information (a kernel without CONFIG_NUMA): one node with every CPU.
            nodes.push(NumaNode { id: 0, cpus: online.clone() });
        }
        let cpus = online
            .iter()
            .map(|&id| {
                let t = cpu_dir.join(format!("cpu{id}/topology"));
                Cpu {
                    id,
                    core: read_num(&t.join("core_id")).map_or(id, |v| v as usize),
                    package: read_num(&t.join("physical_package_id")).map_or(0, |v| v as usize),
                    node: nodes.iter().find(|n| n.cpus.contains(&id)).map_or(0, |n| n.id),
                }
            })
            .collect();
        Ok(Topology { cpus, nodes, root: root.to_path_buf() })
    }

    pub fn node_cpus(&self, node: usize) -> &[usize] {
        self.nodes.iter().find(|n| n.id == node).map_or(&[], |n| &n.cpus)
    }

    pub fn all_cpus(&self) -> Vec<usize> {
        self.cpus.iter().map(|c| c.id).collect()
    }

    /// The NUMA node of network interface `iface`, if it has one.
    pub fn node_of_interface(&self, iface: &str) -> Option<usize> {
        if iface.contains('/') || iface.starts_with('.') {
            return None;
        }
        let n = read_num(&self.root.join("sys/class/net").join(iface).join("device/numa_node"))?;
        usize::try_from(n).ok()
    }

    /// The NUMA node of the block device `major:minor` (a partition answers for its disk).
    pub fn node_of_block_device(&self, major: u32, minor: u32) -> Option<usize> {
        let dev = self.root.join(format!("sys/dev/block/{major}:{minor}"));
        let dev = fs::canonicalize(&dev).unwrap_or(dev);
        let disk = if dev.join("partition").exists() { dev.parent()?.to_path_buf() } else { dev };
        let n = read_num(&disk.join("device/numa_node"))?;
        usize::try_from(n).ok()
    }

    /// The NUMA node of the device holding `path` (a file or directory on the real machine).
    pub fn node_of_path(&self, path: &Path) -> Option<usize> {
        let dev = fs::metadata(path).ok()?.dev();
        self.node_of_block_device(rustix::fs::major(dev), rustix::fs::minor(dev))
    }

    /// The interface the IPv4 routing table sends `peer` through (longest prefix; 127/8 is `lo`).
    pub fn interface_for(&self, peer: Ipv4Addr) -> Option<String> {
        if peer.is_loopback() {
            return Some("lo".into());
        }
        let table = fs::read_to_string(self.root.join("proc/net/route")).ok()?;
        let ip = u32::from_le_bytes(peer.octets());
        let mut best: Option<(u32, String)> = None;
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let (Ok(dest), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16)) else { continue };
            // Route entries are in host (little-endian) byte order, like `ip` above.
            if ip & mask == dest && best.as_ref().is_none_or(|(m, _)| mask.count_ones() > m.count_ones()) {
                best = Some((mask, f[0].to_owned()));
            }
        }
        best.map(|(_, iface)| iface)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! Fake sysfs trees for tests.
    use std::fs;
    use std::path::Path;

    pub struct FakeMachine {
        pub nodes: usize,
        pub cpus_per_node: usize,
        pub nic: (&'static str, i64),
        pub disk_node: i64,
    }

    /// Writes a machine with `nodes` NUMA nodes; the NIC and the disk `8:0` (with partition
    /// `8:1`) on the given nodes; a default route through the NIC and 10.0.0.0/8 through it too.
    pub fn write(root: &Path, b: &FakeMachine) {
        let cpus = b.nodes * b.cpus_per_node;
        let cpu = root.join("sys/devices/system/cpu");
        fs::create_dir_all(&cpu).unwrap();
        fs::write(cpu.join("online"), format!("0-{}\n", cpus - 1)).unwrap();
        for n in 0..b.nodes {
            let first = n * b.cpus_per_node;
            let d = root.join(format!("sys/devices/system/node/node{n}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cpulist"), format!("{}-{}\n", first, first + b.cpus_per_node - 1)).unwrap();
            for c in first..first + b.cpus_per_node {
                let t = cpu.join(format!("cpu{c}/topology"));
                fs::create_dir_all(&t).unwrap();
                fs::write(t.join("core_id"), format!("{}\n", c - first)).unwrap();
                fs::write(t.join("physical_package_id"), format!("{n}\n")).unwrap();
            }
        }
        let nic = root.join("sys/class/net").join(b.nic.0).join("device");
        fs::create_dir_all(&nic).unwrap();
        fs::write(nic.join("numa_node"), format!("{}\n", b.nic.1)).unwrap();
        let disk = root.join("sys/devices/pci0000:00/0000:00:1f.2/block/sda");
        fs::create_dir_all(disk.join("device")).unwrap();
        fs::create_dir_all(disk.join("sda1")).unwrap();
        fs::write(disk.join("sda1/partition"), "1\n").unwrap();
        fs::write(disk.join("device/numa_node"), format!("{}\n", b.disk_node)).unwrap();
        fs::create_dir_all(root.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(&disk, root.join("sys/dev/block/8:0")).unwrap();
        std::os::unix::fs::symlink(disk.join("sda1"), root.join("sys/dev/block/8:1")).unwrap();
        fs::create_dir_all(root.join("proc/net")).unwrap();
        fs::write(
            root.join("proc/net/route"),
            format!(
                "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                 {nic}\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 {nic}\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n\
                 docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
                nic = b.nic.0
            ),
        )
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{write, FakeMachine};
    use super::*;
    use crate::scratch::Scratch;

    fn scratch(name: &str) -> Scratch {
        Scratch::new(&format!("topo-{name}"))
    }

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn a_two_node_box_with_nic_and_disk_on_different_nodes() {
        let root = scratch("two");
        write(&root, &FakeMachine { nodes: 2, cpus_per_node: 4, nic: ("eth0", 1), disk_node: 0 });
        let t = Topology::read(&root).unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.node_cpus(0), &[0, 1, 2, 3]);
        assert_eq!(t.node_cpus(1), &[4, 5, 6, 7]);
        assert_eq!(t.cpus[5], Cpu { id: 5, core: 1, package: 1, node: 1 });
        assert_eq!(t.node_of_interface("eth0"), Some(1));
        assert_eq!(t.node_of_interface("lo"), None);
        assert_eq!(t.node_of_block_device(8, 0), Some(0));
        assert_eq!(t.node_of_block_device(8, 1), Some(0), "a partition answers for its disk");
        assert_eq!(t.interface_for("10.1.2.3".parse().unwrap()).as_deref(), Some("eth0"));
        assert_eq!(t.interface_for("172.17.0.5".parse().unwrap()).as_deref(), Some("docker0"), "longest prefix wins");
        assert_eq!(t.interface_for("8.8.8.8".parse().unwrap()).as_deref(), Some("eth0"), "default route");
        assert_eq!(t.interface_for("127.0.0.1".parse().unwrap()).as_deref(), Some("lo"));
    }

    #[test]
    fn a_four_node_box() {
        let root = scratch("four");
        write(&root, &FakeMachine { nodes: 4, cpus_per_node: 8, nic: ("ens1f0", 3), disk_node: 2 });
        let t = Topology::read(&root).unwrap();
        assert_eq!(t.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(t.node_cpus(3), &(24..32).collect::<Vec<_>>()[..]);
        assert_eq!(t.node_of_interface("ens1f0"), Some(3));
        assert_eq!(t.node_of_block_device(8, 1), Some(2));
        assert_eq!(t.cpus.len(), 32);
    }

    #[test]
    fn this_machine_reads() {
        let t = Topology::read(Path::new("/")).unwrap();
        assert!(!t.cpus.is_empty());
        assert!(t.nodes.iter().any(|n| !n.cpus.is_empty()));
    }
}
