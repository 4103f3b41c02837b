//! What limited a send, in one line with its evidence: the link, loss, the receiver's window,
//! the sender's buffer, disk reads or CPU. Read from the kernel's TCP_INFO of every data stream
//! (how long each was busy, and of that how long the receiver's window or the send buffer held
//! it back, what it retransmitted) and from the thread-state timeline (what the engine was
//! doing while the streams had nothing to send). A receiver that held the streams back may be
//! slow to write or may be rate-limited by its operator; the SDK asks the node which (STATS)
//! and says "rate limit" when it is that.

use crate::sched::timeline::Sample;
use crate::sys::tcpinfo::TcpStats;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `link`, `loss`, `receiver's window`, `sender's buffer`, `disk reads`, `CPU`, `nothing to
    /// send` (a re-run), or `unknown`.
    pub limit: &'static str,
    pub evidence: String,
}

/// A share of the busy time past which a cause is the limit.
const HELD_BACK: f64 = 0.25;
/// Streams idle more than this share of the transfer: the engine, not the network, was slow.
const IDLE: f64 = 0.5;
/// Retransmitted bytes past this share of those sent: loss is what the streams fought.
const LOSSY: f64 = 0.005;

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Reads that fetched less than this share of the bytes sent from storage were served by the
/// page cache: memory copies, CPU time.
const FROM_CACHE: f64 = 0.1;

/// `streams`: TCP_INFO of each data stream at the end; `seconds`: the transfer's time after the
/// scan; `timeline`: the sender's thread states; `from_disk`: the share of the bytes sent that
/// this process fetched from storage meanwhile (`None`: not known).
pub fn verdict(streams: &[TcpStats], seconds: f64, timeline: &[Sample], from_disk: Option<f64>) -> Verdict {
    if streams.is_empty() || seconds <= 0.0 {
        return Verdict { limit: "unknown", evidence: "no TCP_INFO from the data streams (a TLS relay holds them)".into() };
    }
    let n = streams.len() as f64;
    let sum = |f: fn(&TcpStats) -> u64| streams.iter().map(f).sum::<u64>() as f64;
    let busy = sum(|s| s.busy_us);
    let busy_share = (busy / n / (seconds * 1e6)).min(1.0);
    let rwnd = if busy > 0.0 { sum(|s| s.rwnd_limited_us) / busy } else { 0.0 };
    let sndbuf = if busy > 0.0 { sum(|s| s.sndbuf_limited_us) / busy } else { 0.0 };
    let sent = sum(|s| s.bytes_sent);
    let loss = if sent > 0.0 { sum(|s| s.bytes_retrans) / sent } else { 0.0 };
    let rtt_ms = streams.iter().map(|s| s.rtt_us).max().unwrap_or(0) as f64 / 1e3;
    let min_rtt_ms = streams.iter().map(|s| s.min_rtt_us).min().unwrap_or(0) as f64 / 1e3;
    let rate = sum(|s| s.delivery_rate) / 1e6;
    let how = format!(
        "{} stream(s) busy {} of the time, delivering {rate:.1} MB/s at {rtt_ms:.1} ms RTT (min {min_rtt_ms:.1} ms), {} of bytes resent",
        streams.len(),
        pct(busy_share),
        pct(loss)
    );
    if rwnd >= HELD_BACK {
        return Verdict {
            limit: "receiver's window",
            evidence: format!(
                "the receiver's window held the streams back {} of their busy time: it took data slower than the link brought it; {how}",
                pct(rwnd)
            ),
        };
    }
    if sndbuf >= HELD_BACK {
        return Verdict {
            limit: "sender's buffer",
            evidence: format!(
                "the send buffer held the streams back {} of their busy time (raise net.ipv4.tcp_wmem's maximum and net.core.wmem_max); {how}",
                pct(sndbuf)
            ),
        };
    }
    if busy_share < IDLE {
        // While the streams waited, was the engine reading or processing?
        let waiting: Vec<&Sample> = timeline.iter().filter(|s| s.queued == 0).collect();
        let share = |f: fn(&Sample) -> bool| {
            if waiting.is_empty() {
                0.0
            } else {
                waiting.iter().filter(|s| f(s)).count() as f64 / waiting.len() as f64
            }
        };
        let (reading, processing) = (share(|s| s.reading > 0), share(|s| s.processing > 0));
        let cached = from_disk.filter(|&d| d < FROM_CACHE);
        if let Some(d) = cached.filter(|_| reading >= processing) {
            return Verdict {
                limit: "CPU",
                evidence: format!(
                    "the streams had nothing to send {} of the time; the engine was reading in {} of those samples, but only {} of the bytes came from the disk: the reads were copies from the page cache, CPU time; {how}",
                    pct(1.0 - busy_share),
                    pct(reading),
                    pct(d)
                ),
            };
        }
        let (limit, what) = if reading >= processing { ("disk reads", "reading") } else { ("CPU", "processing") };
        return Verdict {
            limit,
            evidence: format!(
                "the streams had nothing to send {} of the time, and while nothing was ready the engine was {what} in {} of its samples; {how}",
                pct(1.0 - busy_share),
                pct(reading.max(processing))
            ),
        };
    }
    // Loss at a full bottleneck (its queue overflowing) comes with a standing queue: the RTT
    // well above its minimum. Random loss on a path with room to spare comes without one, and
    // is what held a loss-based congestion control back.
    let queued_ms = rtt_ms - min_rtt_ms;
    let standing_queue = queued_ms >= (0.1 * min_rtt_ms).max(1.0);
    if loss >= LOSSY && !standing_queue {
        return Verdict {
            limit: "loss",
            evidence: format!("{} of the bytes sent were lost and sent again with no queue building on the path; {how}", pct(loss)),
        };
    }
    Verdict { limit: "link", evidence: how }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(busy_ms: u64, rwnd_ms: u64, sndbuf_ms: u64, sent: u64, resent: u64) -> TcpStats {
        TcpStats {
            rtt_us: 30_000,
            min_rtt_us: 29_000,
            cwnd: 100,
            mss: 1448,
            busy_us: busy_ms * 1000,
            rwnd_limited_us: rwnd_ms * 1000,
            sndbuf_limited_us: sndbuf_ms * 1000,
            bytes_sent: sent,
            bytes_retrans: resent,
            delivery_rate: 12_500_000,
            ..TcpStats::default()
        }
    }

    fn sample(reading: u32, processing: u32, queued: u32) -> Sample {
        Sample { ms: 0.0, reading, processing, sending: 0, writing: 0, blocked: 0, blocked_on: [0; 5], queued }
    }

    #[test]
    fn each_cause_is_named_with_its_evidence() {
        let link = verdict(&[stream(950, 0, 0, 100 << 20, 0); 2], 1.0, &[], None);
        assert_eq!(link.limit, "link");
        assert!(link.evidence.starts_with("2 stream(s) busy 95% of the time, delivering 25.0 MB/s at 30.0 ms RTT"), "{}", link.evidence);
        assert_eq!(verdict(&[stream(950, 600, 0, 100 << 20, 0)], 1.0, &[], None).limit, "receiver's window");
        assert_eq!(verdict(&[stream(950, 0, 500, 100 << 20, 0)], 1.0, &[], None).limit, "sender's buffer");
        let lossy = verdict(&[stream(950, 0, 0, 100 << 20, 2 << 20)], 1.0, &[], None);
        assert_eq!(lossy.limit, "loss");
        assert!(lossy.evidence.starts_with("2% of the bytes sent were lost"), "{}", lossy.evidence);
        // The same loss with the RTT 10 ms over its minimum: a full bottleneck's queue overflowing.
        let full = verdict(&[TcpStats { rtt_us: 40_000, ..stream(950, 0, 0, 100 << 20, 2 << 20) }], 1.0, &[], None);
        assert_eq!(full.limit, "link");
        let reads =
            verdict(&[stream(200, 0, 0, 1 << 20, 0)], 1.0, &[sample(2, 0, 0), sample(1, 0, 0), sample(0, 1, 0), sample(0, 0, 3)], None);
        assert_eq!(reads.limit, "disk reads");
        assert!(
            reads.evidence.contains("nothing to send 80% of the time") && reads.evidence.contains("reading in 67%"),
            "{}",
            reads.evidence
        );
        assert_eq!(verdict(&[stream(200, 0, 0, 1 << 20, 0)], 1.0, &[sample(0, 1, 0), sample(0, 2, 0)], None).limit, "CPU");
        assert_eq!(verdict(&[], 1.0, &[], None).limit, "unknown");
    }

    /// Issue 31: "reading" while the streams wait is disk time only if the bytes came from the
    /// disk; reads served by the page cache are CPU.
    #[test]
    fn reads_from_the_page_cache_are_cpu() {
        let samples = [sample(2, 0, 0), sample(1, 0, 0), sample(0, 1, 0)];
        let cached = verdict(&[stream(200, 0, 0, 1 << 20, 0)], 1.0, &samples, Some(0.0));
        assert_eq!(cached.limit, "CPU");
        assert!(cached.evidence.contains("only 0% of the bytes came from the disk"), "{}", cached.evidence);
        assert_eq!(verdict(&[stream(200, 0, 0, 1 << 20, 0)], 1.0, &samples, Some(0.9)).limit, "disk reads");
    }
}
