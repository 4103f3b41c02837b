//! `--streams auto`: the data connections a push opens while it runs. It starts with
//! `DEFAULT_STREAMS` and, only while its streams are held back by loss, opens more: the first
//! step to `FIRST_STEP` times as many at once, then doubling (2, 8, 16: a 64 MiB push at 100 ms
//! is over in a few seconds, too short for one stream at a time, and new streams spend their
//! first round trips in slow start), for as long as each step still raised the goodput by
//! `MEANINGFUL`.
//!
//! Like FTS3's optimizer it moves the stream count by the throughput each step brought, and
//! like the Falcon tuner it stops where one more step no longer pays; unlike both it opens
//! nothing on a path where streams cannot help. The gate is TCP's own account (TCP_INFO): a
//! loss-based congestion control (CUBIC) on a lossy path runs near the rate its loss response
//! allows, about MSS / RTT × 1.22 / √loss (Mathis et al.), and N such streams get about N
//! times that; a stream under BBR (which does not back off at random loss), one well above
//! that rate, or one that loses nothing (a clean path, loopback, where streams only cost CPU)
//! is not held back by loss, and more streams would not add up.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::sys::tcpinfo::{self, TcpStats};
use crate::wire::frame::{self, Msg, Token};

/// The most streams `auto` opens (or the node's max_streams, if lower).
pub const AUTO_CAP: u16 = 16;
/// A step must raise the goodput by this much to be followed by another: below it the
/// extra streams only shared what the fewer already had (noise on a lossy link is ~5-10%).
const MEANINGFUL: f64 = 0.15;
/// A stream whose goodput is within this factor of its Mathis rate is held back by loss (CUBIC
/// at 0.1% loss and 100 ms runs ~2-3x it; BBR at 0.01% loss tens of times it).
const LOSS_BOUND: f64 = 5.0;
/// The first step multiplies the streams by this: a loss-limited stream at 0.1% loss and 100 ms
/// gets ~1% of a 1 Gbit/s link, so one doubling at a time spends most of a short push in
/// steps.
const FIRST_STEP: u16 = 4;
/// A path at least this long (minimum RTT, µs) holds a loss-based stream's slow-start overshoot
/// for seconds after its first loss (see `held_by_loss`).
const LONG_PATH_US: u32 = 20_000;

/// A push's data connections: all of them for a fixed count; with `auto`, as many slots as the
/// cap, filled in order while the transfer runs and sealed at its end.
pub(crate) struct Slots {
    slots: Vec<OnceLock<TcpStream>>,
    open: AtomicUsize,
    initial: usize,
    /// Set when the streams are ended: no stream may join after its STREAM_END went out.
    sealed: Mutex<bool>,
}

impl Slots {
    pub(crate) fn fixed(sockets: Vec<TcpStream>) -> Slots {
        Slots::with_cap(sockets, 0)
    }

    /// `sockets` now, room for up to `cap` in all.
    pub(crate) fn with_cap(sockets: Vec<TcpStream>, cap: u16) -> Slots {
        let n = sockets.len();
        let mut slots: Vec<OnceLock<TcpStream>> = sockets.into_iter().map(OnceLock::from).collect();
        slots.resize_with(n.max(cap as usize), OnceLock::new);
        Slots { slots, open: AtomicUsize::new(n), initial: n, sealed: Mutex::new(false) }
    }

    /// Stream `i`, if it is open.
    pub(crate) fn get(&self, i: usize) -> Option<&TcpStream> {
        self.slots.get(i)?.get()
    }

    /// Streams open now (a prefix of the slots).
    pub(crate) fn opened(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Whether streams may join during the run.
    pub(crate) fn grows(&self) -> bool {
        self.slots.len() > self.initial
    }

    /// The most streams there may be.
    pub(crate) fn cap(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn open_now(&self) -> Vec<&TcpStream> {
        (0..self.opened()).filter_map(|i| self.get(i)).collect()
    }

    /// Introduces connected `sockets` to the session (DATA_HELLO) as the next streams and
    /// makes them usable, unless the streams were sealed already (then they are closed
    /// unintroduced, which the node's lobby drops). Returns how many joined.
    pub(crate) fn join(&self, sockets: Vec<TcpStream>, token: Token, keep: &dyn Fn(&TcpStream) -> bool) -> Result<usize> {
        let sealed = self.sealed.lock().expect("sealed lock");
        if *sealed {
            return Ok(0);
        }
        let mut joined = 0;
        for mut s in sockets {
            let i = self.opened();
            if i >= self.slots.len() || !keep(&s) {
                break;
            }
            frame::write_msg(&mut s, &Msg::DataHello { token, stream: i as u16 })?;
            let _ = self.slots[i].set(s);
            self.open.store(i + 1, Ordering::Release);
            joined += 1;
        }
        Ok(joined)
    }

    /// No stream joins from now on; the streams open are the session's.
    pub(crate) fn seal(&self) -> usize {
        *self.sealed.lock().expect("sealed lock") = true;
        self.opened()
    }
}

/// What the tuner saw in one interval.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reading {
    /// Streams open during the interval.
    pub streams: u16,
    /// Bytes per second acknowledged by the receiver, all streams together.
    pub goodput: f64,
    /// Streams that ran within `LOSS_BOUND` of their Mathis rate, and streams that lost anything.
    pub loss_limited: u16,
    pub lossy: u16,
    /// Bytes not yet on any stream.
    pub left: f64,
    /// Whether the kernel's account of the streams could be read (not under TLS, whose relay
    /// hands the engine a Unix socket).
    pub seen: bool,
}

/// The decisions, one interval at a time (pure: tested without sockets).
#[derive(Debug)]
pub(crate) struct Tuner {
    cap: u16,
    /// Goodput before the last step, while its result is awaited.
    before: Option<f64>,
    /// Intervals to let new streams out of slow start before the step is judged.
    settle: u8,
    /// Each step's goodput change, in percent, once judged.
    pub gains: Vec<i64>,
    /// Steps taken (the last may not be judged yet).
    steps: u16,
    pub stopped: Option<&'static str>,
    pub held: &'static str,
}

impl Tuner {
    pub(crate) fn new(cap: u16) -> Tuner {
        Tuner { cap, before: None, settle: 0, gains: Vec::new(), steps: 0, stopped: None, held: "no loss seen" }
    }

    /// How many streams to open after interval `r`; 0 to wait.
    pub(crate) fn next(&mut self, r: Reading) -> u16 {
        if self.stopped.is_some() {
            return 0;
        }
        if self.settle > 0 {
            self.settle -= 1;
            return 0;
        }
        if let Some(before) = self.before.take() {
            let gain = r.goodput / before.max(1.0) - 1.0;
            self.gains.push((gain * 100.0).round() as i64);
            if gain < MEANINGFUL {
                self.stopped = Some("stopped: the last step did not pay");
                return 0;
            }
        }
        if r.streams >= self.cap {
            self.stopped = Some("at the cap");
            return 0;
        }
        // Less left than a second at this pace: new streams would spend it in slow start,
        // and the streams' rates, app-limited now, say nothing of loss.
        if r.left < r.goodput {
            return 0;
        }
        // Most streams held back by loss: more streams add up. Else wait, as loss may come.
        if r.loss_limited * 2 < r.streams.max(1) {
            self.held = match (r.seen, r.lossy) {
                (false, _) => "no TCP_INFO to judge by (TLS)",
                (true, 0) => "no loss seen",
                (true, _) => "streams run above what their loss allows",
            };
            return 0;
        }
        self.before = Some(r.goodput);
        // New streams start in slow start: one interval for that, the next one judges them.
        self.settle = 1;
        self.steps += 1;
        let times = if self.gains.is_empty() { FIRST_STEP } else { 2 };
        (r.streams * (times - 1)).min(self.cap - r.streams)
    }

    /// The summary's account: `auto: goodput +61%, +34%, +4%: stopped ...`.
    pub(crate) fn reason(&self) -> String {
        let gains: Vec<String> = self.gains.iter().map(|g| format!("{g:+}%")).collect();
        let end = self.stopped.unwrap_or("the transfer ended");
        match (self.steps, gains.is_empty()) {
            (0, _) if self.stopped.is_some() => format!("auto: {end}"),
            (0, _) => format!("auto: {}, more streams would not help", self.held),
            (_, true) => format!("auto: streams held back by loss, {end} before a step was judged"),
            (_, false) => format!("auto: goodput {}, {end}", gains.join(", ")),
        }
    }
}

/// Whether a stream ran within `LOSS_BOUND` of what TCP's loss response allows it, by its whole
/// life's loss rate and its goodput `rate` (bytes per second) in the interval from `was` to `t`.
/// A stream that moved nothing in the interval, or was held back mostly by the receiver's window,
/// is not held back by loss whatever it lost: a stalled path or a slow receiver is not helped by
/// more streams (and a stall's zero rate would pass any Mathis bound).
fn loss_limited(was: &TcpStats, t: &TcpStats, rate: f64) -> bool {
    let mss = t.mss.max(536) as f64;
    let segments = (t.bytes_sent as f64 / mss).max(1.0);
    let loss = t.retrans_segs as f64 / segments;
    let rtt = t.rtt_us.max(1) as f64 / 1e6;
    if t.retrans_segs == 0 || loss <= 0.0 || t.bytes_acked <= was.bytes_acked {
        return false;
    }
    let busy = t.busy_us.saturating_sub(was.busy_us);
    if t.rwnd_limited_us.saturating_sub(was.rwnd_limited_us) * 2 > busy {
        return false;
    }
    let mathis = mss / rtt * 1.22 / loss.sqrt();
    rate < LOSS_BOUND * mathis
}

/// `loss_limited`, or a loss-based congestion control (CUBIC, Reno: not BBR) that has lost
/// segments on a long path: it settles at its loss rate once its slow start's overshoot has
/// decayed, which takes seconds at 100 ms (issue 31, profile b: the first step came 1.5-3 s
/// into a 3 s push while the rate fell to 5x Mathis); judged by its first loss, the first
/// step comes while the push is young.
/// (`loss_limited` at a rate of 0 is its other conditions alone: segments lost, bytes
/// acknowledged in the interval, the receiver's window not holding it.)
/// A stream under BBR (or any congestion control that is not loss-based) never is: BBR does not
/// cut its rate at random loss, so more streams do not add up as loss-limited ones do, and in a
/// short push its start-up's burst of losses and recovery made one interval's rate look like
/// one (a LOSF push on profile a, BBR, clean, opened 8 streams).
fn held_by_loss(was: &TcpStats, t: &TcpStats, rate: f64, loss_based: bool) -> bool {
    loss_based && (loss_limited(was, t, rate) || (t.min_rtt_us >= LONG_PATH_US && loss_limited(was, t, 0.0)))
}

/// The interval a reading spans: two round trips, so that a lossy CUBIC stream's sawtooth
/// averages out somewhat, and never so long that a short push is over before a step is judged.
fn interval(sockets: &[&TcpStream]) -> Duration {
    let rtt = sockets.iter().filter_map(|s| tcpinfo::read(s).ok()).map(|t| t.rtt_us).max().unwrap_or(0);
    (Duration::from_micros(rtt as u64) * 2).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Runs the tuner until `done` says the transfer ended: readings every `interval`, and the
/// connections it asks for opened with `open(count)` and joined to `slots`. Returns what the
/// summary says of it.
pub(crate) fn run(
    slots: &Slots,
    token: Token,
    open: &(dyn Fn(u16) -> Result<Vec<TcpStream>> + Sync),
    keep: &dyn Fn(&TcpStream) -> bool,
    done: &dyn Fn() -> bool,
    left: &dyn Fn() -> f64,
) -> String {
    let mut tuner = Tuner::new(slots.cap() as u16);
    let mut last: Vec<TcpStats> = Vec::new();
    let mut at = Instant::now();
    let nap = Duration::from_millis(20);
    'run: while !done() {
        let sockets = slots.open_now();
        let until = at + interval(&sockets);
        while Instant::now() < until {
            if done() {
                break 'run;
            }
            std::thread::sleep(nap);
        }
        let sockets = slots.open_now();
        let secs = at.elapsed().as_secs_f64().max(1e-3);
        at = Instant::now();
        let read: Vec<Option<TcpStats>> = sockets.iter().map(|s| tcpinfo::read(s).ok()).collect();
        let seen = read.iter().any(Option::is_some);
        let stats: Vec<TcpStats> = read.into_iter().map(Option::unwrap_or_default).collect();
        last.resize(stats.len(), TcpStats::default());
        let mut r = Reading { streams: stats.len() as u16, goodput: 0.0, loss_limited: 0, lossy: 0, left: left(), seen };
        let loss_based = sockets.first().and_then(|s| crate::sys::congestion::get(s).ok()).is_some_and(|cc| cc != "bbr");
        for (t, was) in stats.iter().zip(last.iter_mut()) {
            let rate = t.bytes_acked.saturating_sub(was.bytes_acked) as f64 / secs;
            r.goodput += rate;
            r.lossy += u16::from(t.retrans_segs > 0);
            r.loss_limited += u16::from(held_by_loss(was, t, rate, loss_based));
            *was = *t;
        }
        let more = tuner.next(r);
        if more > 0 {
            match open(more) {
                Ok(s) => match slots.join(s, token, keep) {
                    Ok(n) if n == more as usize => {}
                    // Sealed: the transfer ended while they connected.
                    Ok(_) => break,
                    Err(_) => {
                        tuner.stopped = Some("stopped: a new connection failed");
                        break;
                    }
                },
                Err(_) => {
                    tuner.stopped = Some("stopped: the node refused more connections");
                    break;
                }
            }
        }
    }
    tuner.reason()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(streams: u16, goodput: f64, loss_limited: u16) -> Reading {
        Reading { streams, goodput, loss_limited, lossy: loss_limited, left: 1e12, seen: true }
    }

    #[test]
    fn issue_31_loss_limited_streams_double_while_each_step_pays_and_stop_when_one_does_not() {
        let mut t = Tuner::new(16);
        assert_eq!(t.next(reading(2, 3e6, 2)), 6, "2 loss-limited streams: to 8 at once");
        assert_eq!(t.next(reading(8, 4e6, 8)), 0, "the new streams settle first");
        assert_eq!(t.next(reading(8, 5.7e6, 8)), 8, "+90%: double");
        assert_eq!(t.next(reading(16, 8e6, 16)), 0);
        assert_eq!(t.next(reading(16, 6.0e6, 16)), 0, "+5%: stop");
        assert_eq!(t.stopped, Some("stopped: the last step did not pay"));
        assert_eq!(t.reason(), "auto: goodput +90%, +5%, stopped: the last step did not pay");
        let mut t = Tuner::new(16);
        t.next(reading(2, 3e6, 2));
        t.next(reading(8, 1e6, 8));
        assert_eq!(t.next(reading(8, 3.1e6, 8)), 0, "+3%: stop at once");
        assert_eq!(t.next(reading(8, 1e9, 8)), 0, "stopped stays stopped");
        assert_eq!(t.reason(), "auto: goodput +3%, stopped: the last step did not pay");
        let mut t = Tuner::new(16);
        t.next(reading(2, 3e6, 2));
        assert_eq!(t.reason(), "auto: streams held back by loss, the transfer ended before a step was judged");
    }

    #[test]
    fn issue_31_a_clean_path_or_streams_above_their_loss_rate_open_nothing() {
        let mut t = Tuner::new(16);
        for _ in 0..10 {
            assert_eq!(t.next(reading(2, 100e6, 0)), 0);
        }
        assert_eq!(t.reason(), "auto: no loss seen, more streams would not help");
        let mut bbr = Tuner::new(16);
        assert_eq!(bbr.next(Reading { lossy: 2, ..reading(2, 100e6, 0) }), 0);
        assert_eq!(bbr.reason(), "auto: streams run above what their loss allows, more streams would not help");
        let mut tls = Tuner::new(16);
        assert_eq!(tls.next(Reading { seen: false, ..reading(2, 0.0, 0) }), 0);
        assert_eq!(tls.reason(), "auto: no TCP_INFO to judge by (TLS), more streams would not help");
    }

    #[test]
    fn issue_31_the_cap_bounds_the_last_step() {
        let mut t = Tuner::new(12);
        assert_eq!(t.next(reading(2, 1e6, 2)), 6);
        t.next(reading(8, 1e6, 8));
        assert_eq!(t.next(reading(8, 2e6, 8)), 4, "to the cap, not past it");
        t.next(reading(12, 1e6, 12));
        assert_eq!(t.next(reading(12, 3e6, 12)), 0);
        assert_eq!(t.reason(), "auto: goodput +100%, +50%, at the cap");
        assert_eq!(Tuner::new(4).next(reading(2, 1e6, 2)), 2, "a cap of 4: 2 more");
        assert_eq!(Tuner::new(16).next(Reading { left: 0.5e6, ..reading(2, 1e6, 2) }), 0, "half a second left: nothing to gain");
    }

    #[test]
    fn issue_31_a_cubic_stream_at_its_loss_rate_is_loss_limited_and_bbr_far_above_it_is_not() {
        // 0.1% of segments lost, 100 ms: Mathis allows ~560 KB/s.
        let was = TcpStats { busy_us: 1_000_000, ..TcpStats::default() };
        let cubic = TcpStats {
            mss: 1448,
            rtt_us: 100_000,
            bytes_sent: 1448 * 100_000,
            bytes_acked: 1448 * 99_000,
            retrans_segs: 100,
            busy_us: 2_000_000,
            ..TcpStats::default()
        };
        assert!(loss_limited(&was, &cubic, 1.5e6));
        // 0.01% at 50 ms allows ~3.5 MB/s; BBR runs at 60 MB/s.
        let bbr = TcpStats { rtt_us: 50_000, retrans_segs: 10, ..cubic };
        assert!(!loss_limited(&was, &bbr, 60e6));
        assert!(!loss_limited(&was, &TcpStats { retrans_segs: 0, ..cubic }, 1e3), "no loss: not held back by it");
    }

    #[test]
    fn issue_31_a_stalled_stream_or_one_held_by_the_receivers_window_is_not_loss_limited() {
        let was = TcpStats { bytes_acked: 1448 * 99_000, busy_us: 1_000_000, ..TcpStats::default() };
        let lossy = TcpStats {
            mss: 1448,
            rtt_us: 100_000,
            bytes_sent: 1448 * 100_000,
            bytes_acked: 1448 * 99_000,
            retrans_segs: 100,
            busy_us: 2_000_000,
            ..TcpStats::default()
        };
        // Nothing acknowledged in the interval: a rate of 0 is under any Mathis bound, yet a
        // stalled path gains nothing from more streams (it made `auto` open 6 through a stalled
        // relay, whose new connections then swallowed the rest of the push).
        assert!(!loss_limited(&was, &lossy, 0.0), "stalled");
        let moving = TcpStats { bytes_acked: 1448 * 99_500, ..lossy };
        assert!(loss_limited(&was, &moving, 0.7e6));
        let held_by_receiver = TcpStats { rwnd_limited_us: 600_000, ..moving };
        assert!(!loss_limited(&was, &held_by_receiver, 0.7e6), "the receiver's window, not loss");
    }

    #[test]
    fn issue_31_a_loss_based_stream_on_a_long_path_is_held_back_by_loss_from_its_first_loss() {
        let was = TcpStats { busy_us: 1_000_000, ..TcpStats::default() };
        // In slow start's overshoot, 20x its Mathis rate: not yet within LOSS_BOUND.
        let cubic = TcpStats {
            mss: 1448,
            rtt_us: 100_000,
            min_rtt_us: 100_000,
            bytes_sent: 1448 * 1000,
            bytes_acked: 1448 * 900,
            retrans_segs: 1,
            busy_us: 2_000_000,
            ..TcpStats::default()
        };
        assert!(!loss_limited(&was, &cubic, 20e6));
        assert!(held_by_loss(&was, &cubic, 20e6, true));
        assert!(!held_by_loss(&was, &cubic, 20e6, false), "BBR: never");
        assert!(loss_limited(&was, &cubic, 0.5e5) && !held_by_loss(&was, &cubic, 0.5e5, false), "BBR, even at a loss-limited rate");
        assert!(!held_by_loss(&was, &TcpStats { retrans_segs: 0, ..cubic }, 20e6, true), "no loss yet");
        assert!(!held_by_loss(&was, &TcpStats { min_rtt_us: 2_000, ..cubic }, 20e6, true), "a short path");
        // The stall and the receiver's window still count as they do for `loss_limited`.
        let stalled = TcpStats { bytes_acked: 1448 * 900, ..was };
        assert!(!held_by_loss(&stalled, &cubic, 0.0, true), "nothing acknowledged: stalled");
        assert!(!held_by_loss(&was, &TcpStats { rwnd_limited_us: 600_000, ..cubic }, 20e6, true), "the receiver's window");
    }
}
