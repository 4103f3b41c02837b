//! A push: a client sends, this node receives into a destination under its root, with its
//! capacity reserved first and the session journaled for a resume.

use super::budget;
use super::mirror;
use super::path::{check_request_path, check_session_shape, stat_in};
use super::state::Direction;
use super::{node_placement, Caller, Inner};
use crate::error::{Error, Result};
use crate::session::exchange;
use crate::session::recv::{sums, Receive, ResumeParams, SessionParams};
use crate::sys::beneath::{self, DirCache};
use crate::vfile::index::{Index, Kind};
use crate::wire::auth::{self};
use crate::wire::frame::{self, Msg};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of the files a resumed push will not write: already at the destination with the
/// index's size and mtime (the quick check `receive::carried_over` makes), looked at from their
/// directories, opened beneath the root.
pub(super) fn unchanged_bytes(dest: BorrowedFd<'_>, index: &Index) -> u64 {
    let mut held = crate::session::recv::ExistingDirs::new(dest);
    let mut dirs = DirCache::default();
    index
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::File && e.size > 0 && held.hold(&e.path))
        .filter(|e| {
            stat_in(dest, &mut dirs, &e.path, None).is_some_and(|st| {
                st.st_size as u64 == e.size && st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128 == e.mtime_ns as i128
            })
        })
        .map(|e| e.size)
        .sum()
}

/// Bytes of the temporary files an earlier attempt of this push (journal `key`) kept under
/// `dest`: they count as stored already, and a resume takes them over.
pub(super) fn kept_bytes(inner: &Inner, dest: BorrowedFd<'_>, index: &Index, key: &str) -> u64 {
    let journal = format!("{key}.jnl");
    if rustix::fs::statat(&*inner.journal_dir, journal.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_err() {
        return 0;
    }
    let prefix = crate::session::recv::journal::temp_prefix(key);
    let mut held = crate::session::recv::ExistingDirs::new(dest);
    let mut dirs = DirCache::default();
    index
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 0 && held.hold(&e.path))
        .filter_map(|(i, e)| stat_in(dest, &mut dirs, &e.path, Some(&format!("{prefix}{i}.part"))))
        // What the receiver will take over (receive::own_part), not a link a local user put there.
        .filter(crate::session::recv::own_part)
        .map(|st| st.st_size as u64)
        .sum()
}

/// A push: the client sends, this node receives into `dest` under its root. The session is
/// journaled; with the resume feature the client gets a PLAN of what an earlier attempt left;
/// with whole-file verification every file is read back and checked before its rename.
pub(super) fn push(caller: Caller<'_>, sock: &mut TcpStream, dest: Vec<u8>, streams: u16, block_size: u32, encoded: &[u8]) -> Result<()> {
    let Caller { inner, peer, features } = caller;
    let resume = features & frame::FEATURE_RESUME != 0;
    inner.admit()?;
    check_session_shape(&inner.limits(), streams, block_size)?;
    let index = Index::decode(encoded)?;
    // MIRROR (the sender's rules, for --delete and --dry-run) comes right after MANIFEST.
    let mirror = mirror::read_request(sock, features, inner.opts.handshake_timeout)?;
    let dry_run = mirror.as_ref().is_some_and(|(r, _)| r.dry_run);
    // The pool is the node's, counted at start; the push's own share is its index.
    let _memory = inner.memory.reserve(budget::index_share(encoded.len(), index.entries().len()))?;
    // Checked before anything is created; Receive::prepare checks the rest of the path and the
    // index's top-level entries when the tree lands at the root itself.
    if !dest.is_empty() {
        check_request_path(&dest)?;
    }
    // Capacity is checked before any byte is written.
    // The destination as it is now (nothing is created before the checks below); missing, it
    // holds nothing a resume could keep.
    let dest_dir = beneath::open_dir(inner.root_fd.as_fd(), &dest, beneath::root_refused).ok();
    let total = index.total();
    // The same transfer twice at once would share temporary files: the second waits its turn.
    let key = crate::session::recv::journal::key(&dest, block_size, encoded);
    let journaled = ActiveJournal::claim(inner, &key)?;
    // What the push may hold at once: all its bytes (a file it replaces stays until its
    // replacement, fallocated from the start, is renamed over it), less the files a resume
    // will not write and the temporary files an earlier attempt kept (counted as stored
    // already). Only the admission: what files take and give back is counted as it happens
    // (ledger.rs). (Crediting the replaced files let concurrent pushes that replace the same
    // file each hold a part of its size with nothing reserved.)
    // With FEATURE_CHECKSUM the sender's SUMS come now, while this node hashes its own files
    // that could be equal (`sums.rs`); what they decide replaces the size and mtime check.
    let held = if features & frame::FEATURE_CHECKSUM != 0 {
        // The node's own state is never hashed for a client: a tree naming `.longhaul` is
        // refused before any file is read (Receive::prepare checks it again).
        crate::session::recv::check_state_dir(&dest, &index)?;
        let stop = AtomicBool::new(false);
        let entries = index.entries().len();
        let summed = |i: usize| sums::summed(&index, i);
        // Both ends' digests, 33 bytes an entry each, are held until compared: out of the
        // node's memory like the index, and only when there are digests to hold.
        let ours = |mode| {
            let memory = (mode != frame::SUMS_STAMP).then(|| inner.memory.reserve(entries as u64 * sums::PER_ENTRY)).transpose()?;
            let stopped = || stop.load(Ordering::Relaxed) || inner.closing.load(Ordering::Relaxed);
            // Without resume nothing at the destination is kept: nothing to hash.
            let dest = dest_dir.as_ref().filter(|_| resume).map(|d| d.as_fd());
            Ok::<_, Error>((sums::own_digests(dest, &index, mode, &stopped), memory))
        };
        // Each SUMS (empty ones keep a client that is still hashing alive) within the idle
        // timeout, and all of them within the time hashing the tree can take at a slow disk's
        // pace: keepalives alone do not hold the node's slot and memory for ever.
        let _ = sock.set_read_timeout(Some(inner.opts.idle_timeout));
        let until = Instant::now() + inner.opts.idle_timeout + Duration::from_secs(total / sums::SLOWEST_HASHING);
        let (mode, theirs, ours) = exchange::expect_sums(sock, entries, &summed, until, &stop, ours)?;
        let _ = sock.set_read_timeout(None);
        let (ours, _memory) = ours?;
        Some(sums::Held::matched(mode, &theirs, &ours))
    } else {
        None
    };
    if let Some((req, filter)) = mirror.as_ref().filter(|_| dry_run) {
        // Refused as the push would be, then the plan from the same decisions; nothing written.
        crate::session::recv::check_state_dir(&dest, &index)?;
        crate::session::recv::conflict::check(inner.root_fd.as_fd(), &dest, &index)?;
        let dest = dest_dir.as_ref().map(|d| d.as_fd());
        let _walk_memory = req.delete.then(|| inner.memory.reserve(mirror::walk_share(&index))).transpose()?;
        return mirror::plan(dest, &index, block_size, held.as_ref(), resume, req.delete.then_some(filter), inner.opts.keep_setid)?
            .write(sock);
    }
    // Decided by content, the SUMS say what is held; else size and mtime, one stat a file.
    let unchanged = match (&held, &dest_dir) {
        (Some(h), _) if resume && h.by_content() => h.bytes(&index),
        (_, Some(d)) if resume => unchanged_bytes(d.as_fd(), &index),
        _ => 0,
    };
    let kept = dest_dir.as_ref().map_or(0, |d| kept_bytes(inner, d.as_fd(), &index, &key));
    let grant = inner.state.reserve(total.saturating_sub(unchanged).saturating_sub(kept))?;
    let active = inner.state.begin(peer, Direction::In, &dest, index.total(), index.count(Kind::File) as u64, streams);
    let token = auth::random_bytes::<{ frame::TOKEN_LEN }>()?;
    let placement = node_placement(inner, peer);
    *inner.last_placement.lock().expect("placement lock") = Some(match &placement.fallback {
        Some(f) => format!("{}; not pinned: {f}", placement.reason),
        None => format!("{}; pinned", placement.reason),
    });
    let params = SessionParams {
        dest: dest.clone(),
        streams,
        block_size,
        writers: inner.opts.writers,
        token,
        placement,
        idle_timeout: inner.opts.idle_timeout,
        throttle: inner.throttle(peer),
        counter: Arc::clone(&active.done),
        fsync: inner.opts.fsync,
        verify_full: features & frame::FEATURE_VERIFY_FULL != 0,
        resume: Some(ResumeParams {
            dir: Arc::clone(&inner.journal_dir),
            key: journaled.0.clone(),
            use_previous: resume,
            held,
            pieces: features & frame::FEATURE_PIECES != 0,
        }),
        keep_setid: inner.opts.keep_setid,
        space: Some(Arc::clone(&grant)),
    };
    let recv = match Receive::prepare(inner.root_fd.as_fd(), index, params, Arc::clone(&inner.pool)) {
        Ok(r) => r,
        Err(e) => {
            grant.finish();
            inner.state.save();
            inner.state.end(&active, Err(&e));
            return Err(e);
        }
    };
    // The preallocated parts are in the saved account before data flows: a node killed during
    // the push restarts counting them, as the resume and the sweep expect.
    inner.state.save();
    *inner.last_file_creation.lock().expect("file creation lock") = Some(match recv.tmpfile() {
        Ok(()) => "files in one piece: O_TMPFILE + link; larger files: temporary name + rename".to_owned(),
        Err(why) => format!("temporary name + rename for every file: {why}"),
    });
    if features & frame::FEATURE_STREAMS_AUTO != 0 {
        recv.streams_auto();
    }
    if features & frame::FEATURE_ENDGAME != 0 {
        recv.endgame();
    }
    inner.sessions.lock().expect("sessions lock").insert(token, Arc::clone(&recv));
    if inner.closing.load(Ordering::SeqCst) {
        recv.fail(Error::Busy("the node is shutting down".into()));
    }
    let unchanged = (features & frame::FEATURE_CHECKSUM != 0).then(|| recv.unchanged());
    let held = recv.held_ranges();
    let result = exchange::accept(sock, token, streams, resume.then(|| (recv.nblocks(), recv.plan())), unchanged).and_then(|()| {
        if let Some(ranges) = &held {
            exchange::send_held(sock, ranges)?;
        }
        recv.watch_control(sock)?;
        recv.wait_and_finish()
    });
    // Verified: what the destination holds and the source does not goes now, before the
    // session counts as ended.
    let result = result.and_then(|summary| match mirror.as_ref().filter(|(r, _)| r.delete) {
        Some((_, filter)) => {
            let _walk_memory = inner.memory.reserve(mirror::walk_share(recv.index()))?;
            let dest_dir = beneath::open_dir(inner.root_fd.as_fd(), &dest, beneath::root_refused)?;
            let (gone, stopped) = mirror::extra(dest_dir.as_fd(), recv.index(), filter, true);
            // What went, went, whether or not the walk finished.
            inner.state.release(gone.tally.deleted_bytes);
            active.deleted(gone.tally.deleted_files + gone.tally.deleted_dirs);
            match stopped {
                Some(e) => Err(e),
                None => Ok((summary, Some(gone))),
            }
        }
        None => Ok((summary, None)),
    });
    inner.sessions.lock().expect("sessions lock").remove(&token);
    let (linked, renamed) = recv.files_named();
    inner.files_linked.fetch_add(linked, Ordering::Relaxed);
    inner.files_renamed.fetch_add(renamed, Ordering::Relaxed);
    inner.state.count_bytes(peer, recv.bytes_received(), 0);
    // What the session did not take of its reservation goes back now, not when the last
    // thread holding the session lets go of it.
    grant.finish();
    inner.state.save();
    inner.state.end(&active, result.as_ref().map(|_| ()));
    let (mut summary, deleted) = result?;
    drop(journaled);
    if features & frame::FEATURE_DISK_STATS == 0 {
        summary.disk = None;
    }
    if features & frame::FEATURE_OWNER == 0 {
        summary.owner_not_kept = None;
    }
    if features & frame::FEATURE_XATTRS == 0 {
        summary.xattrs_not_kept = None;
    }
    if let Some(d) = deleted {
        d.write(sock)?;
    }
    frame::write_msg(sock, &Msg::Summary(summary))
}

/// A journal key in use by a running push; released when dropped.
pub(super) struct ActiveJournal<'a>(String, &'a Inner);

impl<'a> ActiveJournal<'a> {
    fn claim(inner: &'a Inner, key: &str) -> Result<ActiveJournal<'a>> {
        if !inner.journals.lock().expect("journals lock").insert(key.to_owned()) {
            return Err(Error::Busy("the same transfer (same tree, same destination) is already running on this node".into()));
        }
        Ok(ActiveJournal(key.to_owned(), inner))
    }
}

impl Drop for ActiveJournal<'_> {
    fn drop(&mut self) {
        self.1.journals.lock().expect("journals lock").remove(&self.0);
    }
}
