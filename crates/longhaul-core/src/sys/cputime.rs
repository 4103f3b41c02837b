//! CPU time spent by the calling thread: a bench session's cost on each end, counted by the
//! threads that do its work (a node runs other transfers at the same time, so its process
//! total would not be this session's).

/// Microseconds of CPU (user and system) the calling thread has used since it started.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_thread_counts_time() {
        let before = super::thread_cpu_us();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(super::thread_cpu_us() > before, "{x}");
    }
}
