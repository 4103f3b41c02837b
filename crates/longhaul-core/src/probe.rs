//! Start-up probes for the fast paths. Each probe answers "use it" or "fall back, because …";
//! the reason travels into transfer summaries and `doctor`. Tests force each fallback with an
//! environment variable:
//!
//! | variable | effect |
//! | --- | --- |
//! | `LONGHAUL_NO_SENDFILE=1` | blocks are read into pooled buffers and written, never sendfile'd |
//! | `LONGHAUL_NO_MLOCK=1` | the buffer pool is not locked in memory |

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

fn forced_off(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether the pool should try mlock at all.
pub fn mlock_allowed() -> Result<(), String> {
    if forced_off("LONGHAUL_NO_MLOCK") {
        return Err("disabled by LONGHAUL_NO_MLOCK".into());
    }
    Ok(())
}

pub fn memlock_limit_text() -> String {
    match rustix::process::getrlimit(rustix::process::Resource::Memlock).current {
        None => "unlimited".into(),
        Some(n) => format!("{} KiB", n / 1024),
    }
}

/// Whether sendfile works here: read each time for the variable (tests flip it), probed once
/// for the syscall itself (a 1-byte sendfile from a memfd into a socket pair).
pub fn sendfile() -> Result<(), String> {
    if forced_off("LONGHAUL_NO_SENDFILE") {
        return Err("disabled by LONGHAUL_NO_SENDFILE".into());
    }
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe_sendfile).clone()
}

fn probe_sendfile() -> Result<(), String> {
    let fd = rustix::fs::memfd_create("longhaul-probe", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(b"x").map_err(|e| format!("probe write: {e}"))?;
    let (a, mut b) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let mut off = 0u64;
    match rustix::fs::sendfile(a.as_fd(), file.as_fd(), Some(&mut off), 1) {
        Ok(1) => {}
        Ok(n) => return Err(format!("sendfile moved {n} bytes of 1")),
        Err(e) => return Err(format!("sendfile: {e}")),
    }
    let mut got = [0u8; 1];
    b.read_exact(&mut got).map_err(|e| format!("probe read: {e}"))?;
    if &got != b"x" {
        return Err("sendfile delivered the wrong byte".into());
    }
    Ok(())
}
