//! The manifest exchange that opens every transfer, written once per role: the side with the
//! data OFFERS (MANIFEST out; READY and, when resuming, PLAN back) — a pushing client, a node
//! answering a pull; the side that stores it ACCEPTS (READY and PLAN out) — a node taking a
//! push, a pulling client. docs/PROTOCOL.md has the frames.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::session::turns::Turns;
use crate::vfile::blocks::BlockPlan;
use crate::wire::frame::{self, Msg, Token};

/// What the offering side proposes.
pub struct Offer<'a> {
    /// Where the receiver puts the tree (a push), or what was asked for (a pull).
    pub dest: &'a [u8],
    pub streams: u16,
    pub block_size: u32,
    /// The encoded content index.
    pub index: Vec<u8>,
    /// Bytes of the virtual file the index describes.
    pub total: u64,
    /// Resume was agreed at the handshake: a PLAN follows READY.
    pub resume: bool,
    /// FEATURE_CHECKSUM was agreed: SUMS follow MANIFEST, UNCHANGED follows READY and PLAN.
    pub sums: Option<Sums<'a>>,
    /// FEATURE_DELETE or FEATURE_DRY_RUN was agreed: MIRROR follows MANIFEST.
    pub mirror: Option<Msg>,
    /// A bench: BENCH (the size alone: the node makes the one-entry index) instead of MANIFEST.
    pub bench: bool,
    /// FEATURE_PIECES was agreed (with resume): HELD frames, for an index of this many
    /// entries, end the answer.
    pub pieces: Option<usize>,
    /// The node's proof still to be read (handshake::open_pipelined): AUTH_OK comes before
    /// the answer to the offer.
    pub proof: Option<[u8; 32]>,
}

/// What the offering side tells the receiver about change detection (SUMS): the mode
/// (`frame::SUMS_*`) and, for a mode that compares content, the digests of every non-empty file
/// entry. They are computed after MANIFEST has gone, while the receiver hashes its own files.
pub struct Sums<'a> {
    pub mode: u8,
    pub digests: &'a (dyn Fn() -> Result<Vec<(u32, [u8; 32])>> + Sync),
}

/// How often a side that is hashing sends an empty SUMS, so that the other's read timeout
/// (1 s at the least) measures a silent peer, not the size of the tree.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_millis(400);

/// Runs `work` on a thread of its own, sending an empty SUMS of `mode` every KEEPALIVE until
/// it is done.
fn while_hashing<T: Send>(sock: &mut impl Write, mode: u8, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        s.spawn(move || {
            let _ = tx.send(crate::panic::catch("digester", work));
        });
        keep_alive(sock, mode, &rx)
    })
}

/// Waits for what `rx` brings, sending an empty SUMS every KEEPALIVE meanwhile.
fn keep_alive<T>(sock: &mut impl Write, mode: u8, rx: &crossbeam_channel::Receiver<Result<T>>) -> Result<T> {
    loop {
        match rx.recv_timeout(KEEPALIVE) {
            Ok(r) => return r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => frame::write_msg(sock, &Msg::Sums { mode, digests: Vec::new() })?,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Err(Error::Protocol("the digester is gone".into())),
        }
    }
}

/// The receiver's answer: the session token the data connections name, how many there are
/// (at most the offer's), and the `[first, end)` block ranges it already holds.
#[derive(Debug)]
pub struct Accepted {
    /// The round trips the exchange took (1: MANIFEST out, READY and PLAN back).
    pub round_trips: u32,
    pub token: Token,
    pub streams: u16,
    pub skip: Vec<(u64, u64)>,
    /// The receiver's UNCHANGED (files, bytes), when SUMS were sent.
    pub unchanged: Option<(u64, u64)>,
    /// With pieces: by entry, whether the receiver holds the file whole (HELD).
    pub held: Option<Vec<bool>>,
}

/// The offering side: sends MANIFEST and reads READY (and PLAN), or the receiver's ERROR.
pub fn offer(sock: &mut (impl Read + Write), mut o: Offer<'_>) -> Result<Accepted> {
    let sock = &mut Turns::new(sock);
    let (offered, nblocks) = (o.streams, BlockPlan::new(o.total, o.block_size as u64).count());
    let ready = propose(sock, &mut o)?;
    let (token, streams) = match ready {
        Msg::Ready { token, streams } if (1..=offered).contains(&streams) => (token, streams),
        Msg::Ready { streams, .. } => return Err(Error::Protocol(format!("READY for {streams} streams, {offered} were offered"))),
        m => return Err(m.unexpected("READY")),
    };
    let skip = if o.resume { frame::expect_plan(sock, nblocks)? } else { Vec::new() };
    let unchanged = match o.sums {
        None => None,
        Some(_) => match frame::expect_reply(sock, 0)? {
            Msg::Unchanged { files, bytes } => Some((files, bytes)),
            m => return Err(m.unexpected("UNCHANGED")),
        },
    };
    let held = match o.pieces {
        None => None,
        Some(entries) => Some(expect_held(sock, entries)?),
    };
    Ok(Accepted { token, streams, skip, unchanged, held, round_trips: sock.count() })
}

/// HELD frames up to the last one: by entry, whether the receiver holds the file whole. A
/// frame holds at most MAX_HELD_RANGES ranges, and they name each entry once at most, so the
/// frames are bounded by the index the sender made.
fn expect_held(sock: &mut impl Read, entries: usize) -> Result<Vec<bool>> {
    let mut held = crate::vfile::held::HeldEntries::new(entries);
    loop {
        match frame::expect_reply(sock, 0)? {
            Msg::Held { last, ranges } => {
                // Each frame but the last names something: the frames stay bounded.
                if ranges.is_empty() && !last {
                    return Err(Error::Protocol("an empty HELD frame before the last".into()));
                }
                held.add(&ranges)?;
                if last {
                    return Ok(held.into_held());
                }
            }
            m => return Err(m.unexpected("HELD")),
        }
    }
}

/// The accepting side with pieces, after `accept`: the entries it holds whole, as HELD frames.
pub fn send_held(sock: &mut impl Write, ranges: &[(u32, u32)]) -> Result<()> {
    let mut chunks = ranges.chunks(frame::MAX_HELD_RANGES).peekable();
    if chunks.peek().is_none() {
        return frame::write_msg(sock, &Msg::Held { last: true, ranges: Vec::new() });
    }
    while let Some(c) = chunks.next() {
        frame::write_msg(sock, &Msg::Held { last: chunks.peek().is_none(), ranges: c.to_vec() })?;
    }
    Ok(())
}

/// A dry run's offer (MIRROR with `dry_run`): the receiver answers with its plan (CHANGES,
/// TALLY) where READY would come, and the session ends there. The plan and the round trips.
pub fn offer_dry(sock: &mut (impl Read + Write), mut o: Offer<'_>) -> Result<(crate::session::mirror::Listed, u32)> {
    let sock = &mut Turns::new(sock);
    let first = propose(sock, &mut o)?;
    let plan = crate::session::mirror::Listed::read(first, sock)?;
    Ok((plan, sock.count()))
}

/// MANIFEST, MIRROR and SUMS out; the receiver's first answer that is not a keepalive back.
fn propose(sock: &mut (impl Read + Write), o: &mut Offer<'_>) -> Result<Msg> {
    let mut confirmed = None;
    let sent = send_offer(sock, o, &mut confirmed);
    if let Some(Err(e)) = confirmed {
        return Err(e);
    }
    // The node's proof first: nothing it says is believed before it.
    if let Some(proof) = o.proof.as_ref().filter(|_| confirmed.is_none()) {
        if let Err(e) = crate::session::handshake::confirm(sock, proof) {
            return Err(match (e, sent) {
                (remote @ Error::Remote { .. }, _) => remote,
                (_, Err(e)) => e,
                (e, Ok(())) => e,
            });
        }
    }
    if let Err(e) = sent {
        // A receiver that refused (an ERROR, then closed) before reading the whole offer breaks
        // the pipe under the writes: its ERROR, still there to read, says why; the write's
        // error only when there is none.
        return Err(match frame::expect_reply(sock, 0) {
            Err(remote @ Error::Remote { .. }) => remote,
            _ => e,
        });
    }
    // While the receiver hashes its files it keeps the connection alive with empty SUMS.
    loop {
        match frame::expect_reply(sock, 0)? {
            Msg::Sums { digests, .. } if o.sums.is_some() && digests.is_empty() => continue,
            m => return Ok(m),
        }
    }
}

/// With the node's proof still unread (`o.proof`), SUMS digests wait for it (`confirmed`
/// says how it went): a file's BLAKE3 tells whether it holds a guessed content, more than the
/// names and sizes an impostor may read (docs/SECURITY.md §11).
fn send_offer(sock: &mut (impl Read + Write), o: &mut Offer<'_>, confirmed: &mut Option<Result<()>>) -> Result<()> {
    if o.bench {
        // A bench's offer is BENCH alone: no MIRROR, no SUMS.
        return frame::write_msg(sock, &Msg::Bench { streams: o.streams, block_size: o.block_size, size: o.total });
    }
    frame::write_msg(
        sock,
        &Msg::Manifest { dest: o.dest.to_vec(), streams: o.streams, block_size: o.block_size, index: std::mem::take(&mut o.index) },
    )?;
    if let Some(m) = &o.mirror {
        frame::write_msg(sock, m)?;
    }
    if let Some(sums) = &o.sums {
        // The mode first, alone: the receiver starts hashing its own files while these are
        // computed.
        frame::write_msg(sock, &Msg::Sums { mode: sums.mode, digests: Vec::new() })?;
        if sums.mode != frame::SUMS_STAMP {
            let digests = while_hashing(sock, sums.mode, || (sums.digests)())?;
            if let Some(proof) = &o.proof {
                let proven = crate::session::handshake::confirm(sock, proof);
                let failed = proven.is_err();
                *confirmed = Some(proven);
                if failed {
                    return Ok(());
                }
            }
            for chunk in digests.chunks(frame::MAX_DIGESTS_PER_FRAME) {
                frame::write_msg(sock, &Msg::Sums { mode: sums.mode, digests: chunk.to_vec() })?;
            }
        }
    }
    Ok(())
}

/// The accepting side: READY, then the PLAN of what it holds when resume was agreed, then
/// UNCHANGED when the offer came with SUMS.
pub fn accept(
    sock: &mut impl Write,
    token: Token,
    streams: u16,
    plan: Option<(u64, Vec<(u64, u64)>)>,
    unchanged: Option<(u64, u64)>,
) -> Result<()> {
    frame::write_msg(sock, &Msg::Ready { token, streams })?;
    if let Some((nblocks, ranges)) = plan {
        frame::write_msg(sock, &Msg::Plan { nblocks, ranges })?;
    }
    if let Some((files, bytes)) = unchanged {
        frame::write_msg(sock, &Msg::Unchanged { files, bytes })?;
    }
    Ok(())
}

/// The sender's digests by entry number (None: an entry SUMS carry none for).
pub type ByEntry = Vec<Option<[u8; 32]>>;

/// The accepting side with FEATURE_CHECKSUM: the mode of the offer's first SUMS, then
/// `digests`, which the receiver runs (its own hashing) while the rest of the SUMS come in
/// (empty ones keep the connection alive); the sender's digests by entry, exactly one for
/// every entry `wanted` names. Until its own are done it sends empty SUMS itself.
///
/// `until`: when the sender's digests must all be in (keepalives or not); `stop` is raised when
/// this side gives up, so that `digests` (this side's own hashing) can stop early rather than
/// read on for a peer that is gone.
pub fn expect_sums<T: Send>(
    sock: &mut (impl Read + Write),
    entries: usize,
    wanted: &(dyn Fn(usize) -> bool + Sync),
    until: Instant,
    stop: &AtomicBool,
    digests: impl FnOnce(u8) -> T + Send,
) -> Result<(u8, ByEntry, T)> {
    let (mode, first) = match frame::expect_reply(sock, 0)? {
        Msg::Sums { mode, digests } => (mode, digests),
        m => return Err(m.unexpected("SUMS")),
    };
    if mode == frame::SUMS_STAMP {
        if !first.is_empty() {
            return Err(Error::Protocol("SUMS by size and mtime carry no digests".into()));
        }
        return Ok((mode, Vec::new(), digests(mode)));
    }
    std::thread::scope(|s| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        s.spawn(move || {
            let _ = tx.send(crate::panic::catch("digester", || Ok(digests(mode))));
        });
        let r = their_sums(sock, entries, wanted, mode, first, until).and_then(|theirs| Ok((theirs, keep_alive(sock, mode, &rx)?)));
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let (theirs, ours) = r?;
        Ok((mode, theirs, ours))
    })
}

/// The sender's digests, from `first` on: every entry `wanted` names once, before `until`.
fn their_sums(
    sock: &mut (impl Read + Write),
    entries: usize,
    wanted: &(dyn Fn(usize) -> bool + Sync),
    mode: u8,
    first: Vec<(u32, [u8; 32])>,
    until: Instant,
) -> Result<ByEntry> {
    let expected = (0..entries).filter(|&i| wanted(i)).count();
    {
        let mut theirs = vec![None; entries];
        let mut got = 0;
        let mut batch = first;
        loop {
            for (entry, d) in batch {
                let i = entry as usize;
                if i >= entries || !wanted(i) {
                    return Err(Error::Protocol(format!("SUMS names entry {entry}, which is not a non-empty file")));
                }
                if theirs[i].replace(d).is_some() {
                    return Err(Error::Protocol(format!("SUMS names entry {entry} twice")));
                }
                got += 1;
            }
            if got == expected {
                break;
            }
            // Keepalives prove the sender alive, not that it will ever finish.
            if Instant::now() >= until {
                return Err(Error::Timeout("the sender's SUMS did not all come within the time its tree allows"));
            }
            batch = match frame::expect_reply(sock, 0)? {
                Msg::Sums { mode: m, digests } if m == mode => digests,
                Msg::Sums { .. } => return Err(Error::Protocol("SUMS frames of one offer changed mode".into())),
                m => return Err(m.unexpected("SUMS")),
            };
        }
        Ok(theirs)
    }
}

/// A pulling client's wait for the node's MANIFEST after its GET: the streams (at most those
/// asked for) and the encoded index, or the node's ERROR.
pub fn expect_offer(sock: &mut impl Read, streams: u16, block_size: u32, max_manifest: u32) -> Result<(u16, Vec<u8>)> {
    match frame::expect_reply(sock, max_manifest)? {
        Msg::Manifest { streams: s, block_size: b, index, .. } if (1..=streams).contains(&s) && b == block_size => Ok((s, index)),
        Msg::Manifest { streams: s, block_size: b, .. } => {
            Err(Error::Protocol(format!("the node offered {s} streams of {b}-byte blocks for {streams} of {block_size}")))
        }
        m => Err(m.unexpected("MANIFEST")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deadline no test reaches.
    fn far() -> Instant {
        Instant::now() + std::time::Duration::from_secs(3600)
    }

    /// Both halves over an in-memory pipe: what one side writes the other reads.
    struct Pipe {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_offer_is_accepted_with_fewer_streams_and_a_plan() {
        let mut receiver = Vec::new();
        accept(&mut receiver, [7; frame::TOKEN_LEN], 2, Some((3, vec![(0, 1)])), None).unwrap();
        let mut sender = Pipe { input: std::io::Cursor::new(receiver), output: Vec::new() };
        let o = Offer {
            dest: b"d",
            streams: 4,
            block_size: 4096,
            index: vec![1, 2, 3],
            total: 3 * 4096 - 1,
            resume: true,
            sums: None,
            mirror: None,
            bench: false,
            pieces: None,
            proof: None,
        };
        let a = offer(&mut sender, o).unwrap();
        assert_eq!((a.token, a.streams, a.skip), ([7; frame::TOKEN_LEN], 2, vec![(0, 1)]));
        match frame::expect_msg(&mut std::io::Cursor::new(sender.output), 0).unwrap() {
            Msg::Manifest { dest, streams, block_size, index } => {
                assert_eq!((dest, streams, block_size, index), (b"d".to_vec(), 4, 4096, vec![1, 2, 3]))
            }
            m => panic!("{:?}", m.frame_type()),
        }
    }

    #[test]
    fn more_streams_than_offered_or_a_plan_of_another_size_is_a_protocol_error() {
        let o = || Offer {
            dest: b"",
            streams: 2,
            block_size: 4096,
            index: vec![],
            total: 4096,
            resume: true,
            sums: None,
            mirror: None,
            bench: false,
            pieces: None,
            proof: None,
        };
        let mut r = Vec::new();
        accept(&mut r, [1; frame::TOKEN_LEN], 3, None, None).unwrap();
        let e = offer(&mut Pipe { input: std::io::Cursor::new(r), output: vec![] }, o()).unwrap_err();
        assert_eq!(e.code(), "E_PROTOCOL");
        let mut r = Vec::new();
        accept(&mut r, [1; frame::TOKEN_LEN], 2, Some((9, vec![])), None).unwrap();
        let e = offer(&mut Pipe { input: std::io::Cursor::new(r), output: vec![] }, o()).unwrap_err();
        assert_eq!(e.code(), "E_PROTOCOL");
        let mut r = Vec::new();
        frame::write_msg(&mut r, &Msg::error(&Error::Busy("full".into()))).unwrap();
        let e = offer(&mut Pipe { input: std::io::Cursor::new(r), output: vec![] }, o()).unwrap_err();
        assert_eq!(e.code(), "E_BUSY");
    }

    #[test]
    fn issue_32_sums_follow_the_manifest_and_unchanged_follows_the_plan() {
        let mut receiver = Vec::new();
        accept(&mut receiver, [3; frame::TOKEN_LEN], 1, Some((1, vec![])), Some((2, 10))).unwrap();
        let mut sender = Pipe { input: std::io::Cursor::new(receiver), output: Vec::new() };
        // 1500 digests: more than one frame after the mode's.
        let digests = || Ok((0..1500u32).map(|i| (i, [i as u8; 32])).collect());
        let sums = Some(Sums { mode: frame::SUMS_CONTENT, digests: &digests });
        let o = Offer {
            dest: b"d",
            streams: 1,
            block_size: 4096,
            index: vec![],
            total: 10,
            resume: true,
            sums,
            mirror: None,
            bench: false,
            pieces: None,
            proof: None,
        };
        let a = offer(&mut sender, o).unwrap();
        assert_eq!(a.unchanged, Some((2, 10)));
        let mut wire = Pipe { input: std::io::Cursor::new(sender.output), output: Vec::new() };
        assert!(matches!(frame::expect_msg(&mut wire, 0).unwrap(), Msg::Manifest { .. }));
        let wanted = |i: usize| i != 1500;
        let (mode, theirs, ours) = expect_sums(&mut wire, 1501, &wanted, far(), &AtomicBool::new(false), |m| m).unwrap();
        assert_eq!((mode, ours), (frame::SUMS_CONTENT, frame::SUMS_CONTENT));
        assert_eq!(theirs.iter().filter(|d| d.is_some()).count(), 1500);
        assert_eq!(theirs[7], Some([7; 32]));
        // A digest of an entry that is no non-empty file, or the same entry twice, is refused.
        let mut bad = Vec::new();
        frame::write_msg(&mut bad, &Msg::Sums { mode: frame::SUMS_CONTENT, digests: vec![(0, [0; 32]), (1, [1; 32])] }).unwrap();
        let e = expect_sums(
            &mut Pipe { input: std::io::Cursor::new(bad), output: Vec::new() },
            2,
            &|i| i == 0,
            far(),
            &AtomicBool::new(false),
            |_| (),
        )
        .unwrap_err();
        assert_eq!(e.code(), "E_PROTOCOL");
    }

    /// Review: a HELD frame that names nothing and is not the last (which `send_held` never
    /// sends) is the node's protocol error, so a hostile node cannot keep a pushing client
    /// reading HELD frames for ever.
    #[test]
    fn issue_32_an_empty_held_frame_before_the_last_is_a_protocol_error() {
        let mut receiver = Vec::new();
        accept(&mut receiver, [3; frame::TOKEN_LEN], 1, Some((1, vec![])), None).unwrap();
        for _ in 0..3 {
            frame::write_msg(&mut receiver, &Msg::Held { last: false, ranges: Vec::new() }).unwrap();
        }
        frame::write_msg(&mut receiver, &Msg::Held { last: true, ranges: Vec::new() }).unwrap();
        let o = Offer {
            dest: b"d",
            streams: 1,
            block_size: 4096,
            index: vec![],
            total: 10,
            resume: true,
            sums: None,
            mirror: None,
            bench: false,
            pieces: Some(3),
            proof: None,
        };
        let e = offer(&mut Pipe { input: std::io::Cursor::new(receiver), output: Vec::new() }, o).unwrap_err();
        assert_eq!(e.code(), "E_PROTOCOL");
    }

    /// Issue 32: with pieces, HELD frames (more than one when the ranges need it) end the
    /// answer, and the sender has the entries they name; a range past the index is refused.
    #[test]
    fn issue_32_held_follows_unchanged_over_as_many_frames_as_it_takes() {
        let ranges: Vec<(u32, u32)> = (0..5000).map(|i| (2 * i, 2 * i + 1)).collect();
        let o = |pieces| Offer {
            dest: b"d",
            streams: 1,
            block_size: 4096,
            index: vec![],
            total: 10,
            resume: true,
            sums: None,
            mirror: None,
            bench: false,
            pieces: Some(pieces),
            proof: None,
        };
        let mut receiver = Vec::new();
        accept(&mut receiver, [3; frame::TOKEN_LEN], 1, Some((1, vec![])), None).unwrap();
        send_held(&mut receiver, &ranges).unwrap();
        let a = offer(&mut Pipe { input: std::io::Cursor::new(receiver.clone()), output: Vec::new() }, o(10_000)).unwrap();
        let held = a.held.unwrap();
        assert_eq!(held.iter().filter(|&&h| h).count(), 5000);
        assert!(held[9998] && !held[9999]);
        let e = offer(&mut Pipe { input: std::io::Cursor::new(receiver), output: Vec::new() }, o(9000)).unwrap_err();
        assert_eq!(e.code(), "E_PROTOCOL");
        let mut empty = Vec::new();
        accept(&mut empty, [3; frame::TOKEN_LEN], 1, Some((1, vec![])), None).unwrap();
        send_held(&mut empty, &[]).unwrap();
        let a = offer(&mut Pipe { input: std::io::Cursor::new(empty), output: Vec::new() }, o(3)).unwrap();
        assert_eq!(a.held, Some(vec![false; 3]));
    }

    #[test]
    fn issue_32_a_side_still_hashing_keeps_the_connection_alive_with_empty_sums() {
        let slow = std::time::Duration::from_millis(1000);
        let mut r = Vec::new();
        frame::write_msg(&mut r, &Msg::Sums { mode: frame::SUMS_CONTENT, digests: vec![(0, [0; 32])] }).unwrap();
        let mut pipe = Pipe { input: std::io::Cursor::new(r), output: Vec::new() };
        expect_sums(&mut pipe, 1, &|_| true, far(), &AtomicBool::new(false), |_| std::thread::sleep(slow)).unwrap();
        let mut sent = std::io::Cursor::new(pipe.output);
        let mut keepalives = 0;
        while let Some(m) = frame::read_msg(&mut sent, 0).unwrap() {
            assert!(matches!(m, Msg::Sums { digests, .. } if digests.is_empty()));
            keepalives += 1;
        }
        assert!(keepalives >= 1, "{keepalives}");
    }

    /// Review of issue 32: a sender that only ever sends keepalives is cut off at the deadline,
    /// and this side's own hashing is told to stop when it gives up.
    #[test]
    fn issue_32_endless_keepalives_meet_the_deadline_and_stop_the_hashing() {
        let mut r = Vec::new();
        for _ in 0..3 {
            frame::write_msg(&mut r, &Msg::Sums { mode: frame::SUMS_CONTENT, digests: vec![] }).unwrap();
        }
        let stop = AtomicBool::new(false);
        let saw_stop = AtomicBool::new(false);
        let past = Instant::now();
        let e = expect_sums(&mut Pipe { input: std::io::Cursor::new(r), output: Vec::new() }, 1, &|_| true, past, &stop, |_| {
            // The hashing side: works until told to stop.
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < std::time::Duration::from_secs(10) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            saw_stop.store(stop.load(Ordering::Relaxed), Ordering::Relaxed);
        })
        .unwrap_err();
        assert_eq!(e.code(), "E_TIMEOUT");
        assert!(saw_stop.load(Ordering::Relaxed), "the digester was told to stop");
    }
}
