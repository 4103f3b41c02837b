//! Start-up probes for the fast paths. Each probe answers "use it" or "fall back, because …";
//! the reason travels into transfer summaries and `doctor`. Tests force each fallback with an
//! environment variable:
//!
//! | variable | effect |
//! | --- | --- |
//! | `LONGHAUL_NO_SENDFILE=1` | blocks are read into pooled buffers and written, never sendfile'd |
//! | `LONGHAUL_NO_MLOCK=1` | the buffer pool is not locked in memory |
//! | `LONGHAUL_NO_TMPFILE=1` | a node writes every file under a temporary name and renames it, never O_TMPFILE + link |
//! | `LONGHAUL_NO_OPENAT2=1` | directories beneath a root are opened one component at a time with O_NOFOLLOW (beneath.rs) |

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
    match memlock_limit() {
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

/// Whether splice works here: a byte from a memfd into a pipe and on into a socket pair, the
/// path a zero-copy receiver would take (socket -> pipe -> file) in reverse. Probed each call.
pub fn splice() -> Result<(), String> {
    use rustix::pipe::{pipe, splice, SpliceFlags};
    let fd = rustix::fs::memfd_create("longhaul-probe", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(b"y").map_err(|e| format!("probe write: {e}"))?;
    let (r, w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut off = 0u64;
    match splice(file.as_fd(), Some(&mut off), &w, None, 1, SpliceFlags::empty()) {
        Ok(1) => {}
        Ok(n) => return Err(format!("splice into the pipe moved {n} bytes of 1")),
        Err(e) => return Err(format!("splice file -> pipe: {e}")),
    }
    let (a, mut b) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    match splice(&r, None, a.as_fd(), None, 1, SpliceFlags::empty()) {
        Ok(1) => {}
        Ok(n) => return Err(format!("splice out of the pipe moved {n} bytes of 1")),
        Err(e) => return Err(format!("splice pipe -> socket: {e}")),
    }
    let mut got = [0u8; 1];
    b.read_exact(&mut got).map_err(|e| format!("probe read: {e}"))?;
    if &got != b"y" {
        return Err("splice delivered the wrong byte".into());
    }
    Ok(())
}

/// Whether a receiver can make unnamed files (O_TMPFILE) in `dir`, which depends on its file
/// system (ext4, xfs, btrfs, tmpfs can; some network file systems cannot). One open, closed at
/// once: an unnamed file that is never linked leaves nothing behind.
pub fn tmpfile(dir: std::os::fd::BorrowedFd<'_>) -> Result<(), String> {
    use rustix::fs::{openat, Mode, OFlags};
    if forced_off("LONGHAUL_NO_TMPFILE") {
        return Err("disabled by LONGHAUL_NO_TMPFILE".into());
    }
    match openat(dir, ".", OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::from_raw_mode(0o600)) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("O_TMPFILE in the destination: {e} (the file system cannot make unnamed files)")),
    }
}

/// The process's file-creation mask, from /proc/self/status (None where it cannot be read;
/// umask(2) itself cannot be read without changing it).
pub fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// RLIMIT_MEMLOCK in bytes (`None`: unlimited).
pub fn memlock_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Memlock).current
}

/// Whether the kernel lets this process set up an io_uring (one entry, then closed at once).
pub fn io_uring() -> Result<(), String> {
    // struct io_uring_params is 120 bytes; zeroed asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes `params` (120 bytes, as the kernel expects) and
    // returns a new descriptor, which is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".into(),
            Some(libc::EPERM) => "io_uring is disabled here (EPERM: kernel.io_uring_disabled or a seccomp filter)".into(),
            _ => format!("io_uring_setup: {e}"),
        });
    }
    // SAFETY: fd is a descriptor this call just received and nothing else holds.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn splice_moves_a_byte_through_a_pipe_on_linux() {
        // Linux has had splice since 2.6.17; a failure here means the probe itself is wrong.
        assert_eq!(super::splice(), Ok(()));
    }

    #[test]
    fn io_uring_answers_with_a_reason_when_it_is_off() {
        if let Err(e) = super::io_uring() {
            assert!(e.contains("io_uring"), "{e}");
        }
    }
}
