//! `lh-netem`: an emulated WAN link for tests and benches. These kernels have no `netem` qdisc,
//! so the link is a user-space relay: two network namespaces, each with a TUN device, and two
//! threads moving IP packets between the devices through the link model (link.rs): a rate with
//! a drop-tail queue, a one-way delay, jitter without reordering, and seeded random loss.
//!
//! ```text
//! lh-netem --rtt 50ms --rate 1gbit --loss 0.01% [--queue BYTES] [--jitter 1ms] [--seed N]
//!          [--tcp-mem BYTES]
//! ```
//!
//! Both sides are tuned as hosts that move data over long links are: TCP may grow a socket's
//! buffers to `--tcp-mem` (64 MiB; 0 keeps the kernel's 6 MiB / 4 MiB, which cap one stream
//! at about 500 Mbit/s over 50 ms).
//!
//! It prints one JSON line (the two namespaces and their addresses), then relays until SIGINT,
//! SIGTERM or SIGHUP, when it prints its counters and removes both namespaces. A watchdog
//! process removes them too if `lh-netem` itself is killed (SIGKILL). Run a program on either
//! side with `ip netns exec NAME ...`; `/etc/netns/NAME/hosts` names this host at the side's
//! address, for peers that resolve their own host name (GridFTP).

mod link;
mod relay;
mod setup;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use link::Shape;

struct Args {
    rtt: Duration,
    rate_bps: u64,
    loss: f64,
    queue_bytes: Option<u64>,
    jitter: Duration,
    seed: u64,
    tcp_mem_max: u64,
}

fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "" | "ms" => v / 1e3,
        "us" => v / 1e6,
        "s" => v,
        _ => return Err(format!("unknown unit in {s:?} (ms, us or s)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn rate(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (num, unit) = lower.split_at(lower.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(lower.len()));
    let v: f64 = num.parse().map_err(|_| format!("not a rate: {s:?}"))?;
    let mult = match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(format!("unknown unit in {s:?} (kbit, mbit or gbit)")),
    };
    Ok((v * mult) as u64)
}

fn probability(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.parse::<f64>().map(|p| p / 100.0),
        None => s.parse::<f64>(),
    }
    .map_err(|_| format!("not a probability: {s:?}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("loss must be within 0..1 (or 0%..100%), not {s:?}"))
    }
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a =
        Args { rtt: Duration::ZERO, rate_bps: 0, loss: 0.0, queue_bytes: None, jitter: Duration::ZERO, seed: 1, tcp_mem_max: 64 << 20 };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rtt" => a.rtt = duration(&value()?)?,
            "--rate" => a.rate_bps = rate(&value()?)?,
            "--loss" => a.loss = probability(&value()?)?,
            "--queue" => a.queue_bytes = Some(value()?.parse().map_err(|_| "--queue takes a number of bytes".to_string())?),
            "--jitter" => a.jitter = duration(&value()?)?,
            "--seed" => a.seed = value()?.parse().map_err(|_| "--seed takes a number".to_string())?,
            "--tcp-mem" => a.tcp_mem_max = value()?.parse().map_err(|_| "--tcp-mem takes a number of bytes".to_string())?,
            "-h" | "--help" => return Err(String::new()),
            f => return Err(format!("unknown option {f}")),
        }
    }
    Ok(a)
}

const USAGE: &str = "usage: lh-netem --rtt 50ms --rate 1gbit --loss 0.01% [--queue BYTES] [--jitter 1ms] [--seed N] [--tcp-mem BYTES]";

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lh-netem: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A queue of one bandwidth-delay product (at least 64 KiB): what a router sized by the
    // rule of thumb holds, enough for one flow to fill the link.
    let bdp = (args.rate_bps as f64 / 8.0 * args.rtt.as_secs_f64()) as u64;
    let shape = Shape {
        rate_bps: args.rate_bps,
        delay: args.rtt / 2,
        queue_bytes: args.queue_bytes.unwrap_or(bdp.max(64 << 10)),
        loss: args.loss,
        jitter: args.jitter,
    };
    // Signals are taken by sigwait below: blocked before any thread starts, so every thread
    // inherits the mask and none is interrupted.
    let signals = setup::block_signals();
    let sides = match setup::Sides::create(args.tcp_mem_max) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lh-netem: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (a_to_b, b_to_a) = match sides.relays(shape, args.seed, &stop) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lh-netem: {e}");
            sides.remove();
            return ExitCode::FAILURE;
        }
    };
    let line = format!(
        "{{\"a\":{{\"netns\":\"{}\",\"dev\":\"{}\",\"addr\":\"{}\"}},\"b\":{{\"netns\":\"{}\",\"dev\":\"{}\",\"addr\":\"{}\"}},\"rttMs\":{},\"rateBps\":{},\"loss\":{},\"queueBytes\":{},\"tunQueue\":{},\"seed\":{}}}",
        sides.a.netns,
        sides.a.dev,
        setup::ADDR_A,
        sides.b.netns,
        sides.b.dev,
        setup::ADDR_B,
        args.rtt.as_secs_f64() * 1e3,
        shape.rate_bps,
        shape.loss,
        shape.queue_bytes,
        setup::TUN_QUEUE,
        args.seed
    );
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    setup::wait(&signals);
    stop.store(true, Ordering::Relaxed);
    let mut ab = a_to_b.join().unwrap_or_default();
    let mut ba = b_to_a.join().unwrap_or_default();
    ab.tun_dropped = sides.a.tun_dropped().unwrap_or(0);
    ba.tun_dropped = sides.b.tun_dropped().unwrap_or(0);
    eprintln!("{{\"aToB\":{},\"bToA\":{}}}", ab.json(), ba.json());
    sides.remove();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn options_parse_with_their_units() {
        let a = args("--rtt 50ms --rate 1gbit --loss 0.01% --jitter 2ms --seed 9 --queue 100000").unwrap();
        assert_eq!(a.rtt, Duration::from_millis(50));
        assert_eq!(a.rate_bps, 1_000_000_000);
        assert!((a.loss - 0.0001).abs() < 1e-12);
        assert_eq!((a.jitter, a.seed, a.queue_bytes), (Duration::from_millis(2), 9, Some(100_000)));
        assert_eq!(args("--rate 300mbit --rtt 0.2s").unwrap().rate_bps, 300_000_000);
        assert_eq!(args("--rtt 0.2s").unwrap().rtt, Duration::from_millis(200));
        for bad in ["--loss 2", "--loss 150%", "--rate 1tbit", "--rtt 5h", "--bogus", "--rtt"] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }
}
