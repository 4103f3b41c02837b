//! A client's push (and a node's copy, which pushes the same way): the handshake, the offer
//! (MANIFEST, MIRROR, SUMS), the data connections, then `transmit`; or with `dry_run` the
//! node's plan where READY would come.

use super::*;

/// How long data connections opened during the manifest exchange may wait for their
/// DATA_HELLO: well within a node's handshake timeout (30 s by default); a longer exchange
/// opens new ones.
const STILL_FRESH: Duration = Duration::from_secs(5);

/// One attempt: a session with the node for a source already scanned.
pub(super) fn send_scanned(src: Scanned, addr: &str, dest: &[u8], opts: &SendOptions, watch: Watch) -> Result<SendSummary> {
    match session(src, addr, dest, opts, watch)? {
        Outcome::Sent(s) => Ok(*s),
        Outcome::Planned(..) => Err(Error::Protocol("a dry run's plan where a transfer was asked for".into())),
    }
}

/// How a session ended: a transfer, or a dry run's plan (and its round trips).
pub(super) enum Outcome {
    Sent(Box<SendSummary>),
    Planned(crate::session::mirror::Listed, u32),
}

/// A session with the node for a source already scanned: the transfer, or with `dry_run`
/// the node's plan for it (the same offer, answered where READY would come).
pub(super) fn session(src: Scanned, addr: &str, dest: &[u8], opts: &SendOptions, watch: Watch) -> Result<Outcome> {
    let mut scanned = src.scan;
    // Before the node hears of the transfer: a name the kernel refuses fails here.
    let cc = congestion::choose(&opts.congestion)?;
    if opts.verify == Verify::None && !opts.generated {
        return Err(Error::Usage("verify none is for a bench only: files are always checked".into()));
    }
    if !dest.is_empty() {
        crate::vfile::index::check_path(dest)?;
    }
    if watch.cancelled() {
        return Err(Error::Cancelled);
    }

    let dial = crate::session::handshake::Dial {
        addr,
        secret: opts.secret.as_ref(),
        tls: opts.tls.as_ref(),
        connect_timeout: opts.connect_timeout,
        io_timeout: opts.io_timeout,
    };
    // Change detection is the node's, and only with resume: without it every file is sent.
    let detect = if opts.resume { frame::FEATURE_CHECKSUM } else { 0 };
    let bench = if opts.generated { frame::FEATURE_DISCARD } else { 0 };
    let grows = if opts.streams_auto && !opts.generated { frame::FEATURE_STREAMS_AUTO } else { 0 };
    // A bench's node discards: nothing there to keep a first copy of.
    let endgame = if opts.generated { 0 } else { frame::FEATURE_ENDGAME };
    // Pieces need a PLAN: only with resume.
    let pieces = if opts.resume && !opts.generated { frame::FEATURE_PIECES } else { 0 };
    let wanted = crate::session::handshake::wanted(opts.resume, opts.verify == Verify::Full)
        | detect
        | bench
        | pieces
        | grows
        | endgame
        | mirror::features(opts);
    let (mut control, peer, hello) = crate::session::handshake::open_pipelined(&dial, wanted)?;
    let mut required = mirror::features(opts) | bench;
    if opts.checksum && opts.resume {
        required |= frame::FEATURE_CHECKSUM;
    }
    if opts.digest == Digest::Blake3 {
        required |= frame::FEATURE_BLAKE3;
    }
    if opts.verify == Verify::Full {
        required |= frame::FEATURE_VERIFY_FULL;
    }
    crate::session::handshake::require(&hello, required)?;
    let flat = if hello.features & frame::FEATURE_HARD_LINKS == 0 { scanned.for_peer_without_links()? } else { None };
    if let Some(flat) = &flat {
        scanned = flat;
    }
    let whole = if hello.features & frame::FEATURE_SPARSE == 0 { scanned.for_peer_without_sparse()? } else { None };
    if let Some(whole) = &whole {
        scanned = whole;
    }
    let which = (u8::from(opts.owner) * OWNER_UID) | (u8::from(opts.group) * OWNER_GID);
    let owners_unsent = which != 0 && hello.features & frame::FEATURE_OWNER == 0;
    let owned = if which != 0 && !owners_unsent { Some(scanned.with_owners(which)?) } else { None };
    if let Some(owned) = &owned {
        scanned = owned;
    }
    // Read now, so that a node that cannot take them is told how many it misses.
    let read = if opts.xattrs { Some(scanned.with_xattrs()?) } else { None };
    let mut xattrs_not_kept = (0, "");
    let with_xattrs = match read {
        Some((s, left_out)) if hello.features & frame::FEATURE_XATTRS == 0 => {
            xattrs_not_kept = (left_out + s.index.without_xattrs().1, "the node cannot set them");
            None
        }
        Some((s, left_out)) => {
            xattrs_not_kept = (left_out, "over 64 KiB or unreadable");
            Some(s)
        }
        None => None,
    };
    if let Some(x) = &with_xattrs {
        scanned = x;
    }
    let src = Scanned { scan: scanned, ..src };
    let index = &scanned.index;
    let limits = hello.limits;
    if opts.block_size > limits.max_block {
        return Err(Error::Limit { what: "block size", limit: limits.max_block as u64, got: opts.block_size as u64 });
    }
    let encoded = index.encode();
    if encoded.len() as u64 > limits.max_manifest as u64 {
        return Err(Error::Limit { what: "content index size", limit: limits.max_manifest as u64, got: encoded.len() as u64 });
    }
    // With SUMS the node decides what it holds by the digests of the source, computed here
    // while it hashes its own files: by content with `checksum`, or its size and mtime check
    // confirmed by them with `verify: full`, so that nothing is called verified that differs.
    let mode = match (opts.checksum, opts.verify) {
        (true, _) => frame::SUMS_CONTENT,
        (false, Verify::Full) => frame::SUMS_CONFIRM,
        (false, Verify::Block | Verify::None) => frame::SUMS_STAMP,
    };
    let computed = std::sync::OnceLock::new();
    let digests = || digests::summed(scanned, &computed, &|| watch.cancelled());
    let start = opts.streams.min(limits.max_streams).max(1);
    // With `auto` and a node that takes streams during the session, MANIFEST offers the cap.
    let auto = hello.features & frame::FEATURE_STREAMS_AUTO != 0;
    let offered = if auto { tune::AUTO_CAP.min(limits.max_streams).max(start) } else { start };
    let offer = crate::session::exchange::Offer {
        dest,
        streams: offered,
        block_size: opts.block_size,
        index: encoded,
        total: index.total(),
        resume: hello.features & frame::FEATURE_RESUME != 0,
        sums: (hello.features & frame::FEATURE_CHECKSUM != 0).then_some(crate::session::exchange::Sums { mode, digests: &digests }),
        mirror: mirror::request(opts)?,
        bench: opts.generated,
        pieces: (hello.features & frame::FEATURE_PIECES != 0 && hello.features & frame::FEATURE_RESUME != 0)
            .then_some(index.entries().len()),
        proof: hello.proof,
    };
    if opts.dry_run {
        let (plan, round_trips) = crate::session::exchange::offer_dry(&mut control, offer)?;
        return Ok(Outcome::Planned(plan, hello.round_trips + round_trips));
    }
    let connect = || {
        let s = net::connect_data(addr, opts.connect_timeout, opts.tls.as_ref(), cc.set.as_deref())?;
        s.set_write_timeout(Some(opts.io_timeout)).map_err(Error::net("setting a timeout"))?;
        Ok(s)
    };
    // The data connections' handshakes (TCP, and TLS) run during the manifest exchange rather
    // than after it: a round trip less before the first block. Not while the node may hash its
    // files first (SUMS by content): connections idle past its handshake timeout are closed.
    let overlap = mode == frame::SUMS_STAMP || hello.features & frame::FEATURE_CHECKSUM == 0;
    let exchanged = Instant::now();
    let (accepted, opened) = std::thread::scope(|s| {
        let opening = overlap.then(|| s.spawn(|| crate::session::handshake::open_streams(start, &connect)));
        let accepted = crate::session::exchange::offer(&mut control, offer);
        (accepted, opening.and_then(|t| t.join().ok()))
    });
    let crate::session::exchange::Accepted { token, streams, skip, round_trips, unchanged, held } = accepted?;
    let sockets = match opened {
        // Opened early and still fresh for the node's lobby; the node may take fewer streams.
        Some(Ok(mut early)) if exchanged.elapsed() < STILL_FRESH => {
            early.truncate(start.min(streams) as usize);
            crate::session::handshake::introduce(early, token)?
        }
        _ => crate::session::handshake::attach_streams(start.min(streams), token, &connect)?,
    };
    let open_more = |n: u16| crate::session::handshake::open_streams(n, &connect);
    let grow = auto.then_some(Grow { cap: streams, token, open: &open_more });
    // Read back from a data socket (the kernel's word); under TLS the engine holds the relay's
    // end, a Unix socket, and the choice is what was set on the TCP socket behind it.
    let running = sockets.first().and_then(|s| congestion::get(s).ok());
    let src = Scanned { digests: computed.into_inner(), ..src };
    let mut summary = transmit(
        src,
        Attached { control, peer, sockets, grow, endgame: hello.features & frame::FEATURE_ENDGAME != 0 },
        opts,
        client_throttle(opts),
        &skip,
        held.as_deref(),
        watch,
    )?;
    if opts.streams_auto && !auto && !opts.generated {
        summary.streams_reason = Some("auto: the node cannot add streams during a push (an older node): fixed".into());
    }
    let on_node = summary.xattrs_not_kept;
    if xattrs_not_kept.0 > 0 || on_node > 0 {
        summary.xattrs_not_kept = xattrs_not_kept.0 + on_node;
        summary.xattrs_not_kept_why = if on_node > 0 {
            "the node sets only user.* unless it runs as root, file capabilities only with --keep-setid"
        } else {
            xattrs_not_kept.1
        };
    }
    if which == 0 && !opts.generated {
        // Not asked for, but said: entries of other users arrive as the node's.
        let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        let others = index.entries().iter().zip(&scanned.stamps).filter(|(e, s)| e.kind != Kind::HardLink && (s.uid, s.gid) != (uid, gid));
        summary.owner_not_kept = others.count() as u64;
        summary.owner_not_kept_why = "not asked for (--owner, --group or -a keeps it)";
    }
    if owners_unsent {
        summary.owner_not_kept = (index.entries().len() - index.count(Kind::HardLink)) as u64;
        summary.owner_not_kept_why = "the node cannot set owners";
    }
    summary.congestion = running.unwrap_or_else(|| cc.effective());
    summary.congestion_note = cc.note;
    summary.unchanged = unchanged.map(|(files, bytes)| Unchanged {
        files,
        bytes,
        by: match mode {
            frame::SUMS_CONTENT => "BLAKE3",
            frame::SUMS_CONFIRM => "size+mtime+BLAKE3",
            _ => "size+mtime",
        },
    });
    // The handshake's and the exchange's, counted on the connection, and DONE answered by the
    // SUMMARY that came back: no wait per file or per block.
    summary.round_trips = hello.round_trips + round_trips + 1;
    Ok(Outcome::Sent(Box::new(summary)))
}

/// A client's own limit (`rate`): one bucket all its streams share.
fn client_throttle(opts: &SendOptions) -> Throttle {
    Throttle::new(opts.rate.map(Bucket::new).into_iter().collect())
}
