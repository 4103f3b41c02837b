//! The two sides: a network namespace each (`lhnet-PID-a`, `lhnet-PID-b`), a TUN device each,
//! moved into its namespace and given a point-to-point address; the hosts files peers that
//! resolve their own name need; a watchdog that removes all of it if this process is killed;
//! and the signals the main thread waits for.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::link::{Link, Shape};
use crate::relay::{self, Counters};

pub const ADDR_A: &str = "10.77.0.1";
pub const ADDR_B: &str = "10.77.0.2";
const MTU: u32 = 1500;
/// Packets a TUN device holds for the relay to read (the kernel's default is 500). The link's
/// one queue is the relay's drop-tail queue; this one only covers the relay thread being late
/// to run. At 500 (6 ms of a 1 Gbit/s link) a CPU shared with the transfer's own threads let
/// it overflow: 40,000-110,000 packets of a 1 GiB push with 8 streams dropped there, on top of
/// the link's loss, and 8,000-44,000 with 2 (bench/RESULTS.md, "--streams 8"). 20,000 (240 ms
/// at 1 Gbit/s) dropped none in the same runs; a late relay now delays packets, as a busy
/// router does, rather than losing them.
pub const TUN_QUEUE: u32 = 20_000;
const TUNSETIFF: u64 = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

pub struct Side {
    pub netns: String,
    pub dev: String,
    tun: Arc<OwnedFd>,
}

pub struct Sides {
    pub a: Side,
    pub b: Side,
    /// Removes the namespaces when this process's end of its stdin closes, however it ends.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

fn open_tun(name: &str) -> io::Result<OwnedFd> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: TUNSETIFF takes a pointer to an ifreq, which lives across the call.
    if unsafe { libc::ioctl(fd, TUNSETIFF as _, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}

/// Runs `sysctl -qw SETTING` inside namespace `ns`.
fn sysctl(ns: &str, setting: &str) -> io::Result<()> {
    let out = Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", setting]).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("sysctl {setting} in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl Side {
    /// Packets the kernel dropped at this side's TUN device because its queue was full: lost
    /// before the relay saw them (`ip -s` "TX dropped"). None if it cannot be read.
    pub fn tun_dropped(&self) -> Option<u64> {
        let out = Command::new("ip")
            .args(["-n", &self.netns, "-j", "-s", "link", "show", "dev", &self.dev])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        tx_dropped(&String::from_utf8_lossy(&out.stdout))
    }

    /// The most TCP may autotune a socket's buffers to on this side (0: the kernel's default).
    /// A long fat link needs a bandwidth-delay product in flight, and the receive window is
    /// about half the buffer: hosts that move data over such links are tuned so (ESnet's
    /// fasterdata guide: 64 MiB and up).
    fn tune(netns: &str, tcp_mem_max: u64) -> io::Result<()> {
        if tcp_mem_max > 0 {
            sysctl(netns, &format!("net.ipv4.tcp_rmem=4096 131072 {tcp_mem_max}"))?;
            sysctl(netns, &format!("net.ipv4.tcp_wmem=4096 16384 {tcp_mem_max}"))?;
        }
        Ok(())
    }

    fn create(netns: String, dev: String, addr: &str, peer: &str, tcp_mem_max: u64) -> io::Result<Side> {
        Side::tune(&netns, tcp_mem_max)?;
        let tun = open_tun(&dev)?;
        ip(&["link", "set", &dev, "netns", &netns])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&["-n", &netns, "addr", "add", addr, "peer", peer, "dev", &dev])?;
        ip(&["-n", &netns, "link", "set", &dev, "mtu", &MTU.to_string(), "txqueuelen", &TUN_QUEUE.to_string(), "up"])?;
        let dir = format!("/etc/netns/{netns}");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(format!("{dir}/hosts"), format!("127.0.0.1 localhost\n{addr} {}\n", hostname()))?;
        Ok(Side { netns, dev, tun: Arc::new(tun) })
    }
}

impl Sides {
    pub fn create(tcp_mem_max: u64) -> io::Result<Sides> {
        let pid = std::process::id();
        let (na, nb) = (format!("lhnet-{pid}-a"), format!("lhnet-{pid}-b"));
        // The watchdog first: from here on, however this process ends, the namespaces go.
        let mut child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "cat >/dev/null; ip netns del {na} 2>/dev/null; ip netns del {nb} 2>/dev/null; rm -rf /etc/netns/{na} /etc/netns/{nb}"
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let watchdog = Mutex::new(Some((child, stdin)));
        let made = (|| {
            ip(&["netns", "add", &na])?;
            ip(&["netns", "add", &nb])?;
            let a = Side::create(na.clone(), format!("lht{pid}a"), ADDR_A, ADDR_B, tcp_mem_max)?;
            let b = Side::create(nb.clone(), format!("lht{pid}b"), ADDR_B, ADDR_A, tcp_mem_max)?;
            Ok((a, b))
        })();
        match made {
            Ok((a, b)) => Ok(Sides { a, b, watchdog }),
            Err(e) => {
                Sides::stop_watchdog(&watchdog);
                Err(e)
            }
        }
    }

    /// Starts both directions.
    pub fn relays(&self, shape: Shape, seed: u64, stop: &Arc<AtomicBool>) -> io::Result<(JoinHandle<Counters>, JoinHandle<Counters>)> {
        let start = |name: &str, src: &Arc<OwnedFd>, dst: &Arc<OwnedFd>, seed: u64| {
            let (src, dst, stop) = (Arc::clone(src), Arc::clone(dst), Arc::clone(stop));
            std::thread::Builder::new().name(name.into()).spawn(move || relay::run(&src, &dst, Link::new(shape, seed), &stop))
        };
        // Different seeds: the two directions lose different packets.
        Ok((start("a-to-b", &self.a.tun, &self.b.tun, seed)?, start("b-to-a", &self.b.tun, &self.a.tun, seed.wrapping_add(0x9E37_79B9))?))
    }

    fn stop_watchdog(w: &Mutex<Option<(Child, ChildStdin)>>) -> Option<()> {
        let (mut child, mut stdin) = w.lock().ok()?.take()?;
        let _ = stdin.flush();
        drop(stdin);
        child.wait().ok().map(|_| ())
    }

    /// Removes both namespaces (the watchdog runs its removal too; the second finds nothing).
    pub fn remove(&self) {
        for s in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", &s.netns]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", s.netns));
        }
        Sides::stop_watchdog(&self.watchdog);
    }
}

/// The TX "dropped" count of `ip -j -s link show`'s JSON.
fn tx_dropped(json: &str) -> Option<u64> {
    let tx = &json[json.find("\"tx\":{")?..];
    let at = tx.find("\"dropped\":")? + "\"dropped\":".len();
    let digits: String = tx[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and the threads it starts).
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; the libc calls initialise and fill it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals.
pub fn wait(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: a valid signal set and a place for the signal number.
    unsafe { libc::sigwait(set, &mut sig) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_dropped_is_read_from_the_tx_counters_not_the_rx_ones() {
        let json = r#"[{"ifindex":5,"ifname":"lht1a","txqlen":20000,"stats64":{"rx":{"bytes":10,"packets":1,"errors":0,"dropped":7,"over_errors":0,"multicast":0},"tx":{"bytes":20,"packets":2,"errors":0,"dropped":42,"carrier_errors":0,"collisions":0}}}]"#;
        assert_eq!(tx_dropped(json), Some(42));
        assert_eq!(tx_dropped("[]"), None);
    }
}
