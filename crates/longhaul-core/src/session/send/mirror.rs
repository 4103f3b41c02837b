//! The sender's side of a mirror: `delete` and `dry_run` asked of the node (MIRROR), the refusal
//! of a deletion from a source that lists nothing, and what the node answers (CHANGES, TALLY).

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use super::push::{session, Outcome};
use super::{Scanned, SendOptions};
use crate::error::{Error, Result};
use crate::session::mirror::{Listed, Planned, Request};
use crate::session::progress::Watch;
use crate::vfile::index::Kind;
use crate::vfile::scan::{scan_within, Scan};
use crate::wire::frame::{self, Msg};

/// The features a send asks for (and cannot go without) besides the transfer's.
pub(super) fn features(opts: &SendOptions) -> u64 {
    let mut f = 0;
    if opts.delete {
        f |= frame::FEATURE_DELETE;
    }
    if opts.dry_run {
        f |= frame::FEATURE_DRY_RUN;
    }
    f
}

/// MIRROR, when the send asks for a deletion or a dry run.
pub(super) fn request(opts: &SendOptions) -> Result<Option<Msg>> {
    if !opts.delete && !opts.dry_run {
        return Ok(None);
    }
    Request { delete: opts.delete, dry_run: opts.dry_run, rules: opts.filter.rules().to_vec() }.msg().map(Some)
}

/// `delete` mirrors a directory. A source that lists nothing (empty, or everything in it left
/// out or unreadable) would empty the destination's copy: a mount that failed or a filter too
/// wide, more often than a wish, so it takes `force`.
pub(super) fn check_source(scan: &Scan, opts: &SendOptions) -> Result<()> {
    if !opts.delete {
        return Ok(());
    }
    let entries = scan.index.entries();
    let top = &entries[0];
    if top.kind != Kind::Dir {
        return Err(Error::Usage(format!(
            "--delete mirrors a directory, and {} is a file: send its directory, or leave --delete out",
            crate::error::lossy(&top.path)
        )));
    }
    if entries.len() == 1 && !opts.force {
        return Err(Error::Usage(format!(
            "--delete from {}, which lists nothing{}, would empty its copy on the node: check the source, or give --force",
            crate::error::lossy(&top.path),
            if scan.excluded + scan.skipped.len() as u64 > 0 { " (every entry left out or not sendable)" } else { "" }
        )));
    }
    Ok(())
}

/// The node's answer to DONE: with `delete`, CHANGES and TALLY (what it removed, kept in
/// `deleted`) before SUMMARY.
pub(super) fn before_summary(ctl: &mut impl Read, deleted: &Mutex<Option<Listed>>) -> Result<Msg> {
    let m = frame::expect_msg(ctl, 0)?;
    if !matches!(m, Msg::Changes { .. } | Msg::Tally(_)) {
        return Ok(m);
    }
    let listed = Listed::read(m, ctl)?;
    *deleted.lock().expect("deleted lock") = Some(listed);
    frame::expect_msg(ctl, 0)
}

/// A dry run: scans `source` and asks the node at `addr` what sending it into `dest` would do
/// (`opts.dry_run` must be set). Nothing but metadata (and with `checksum`, digests) is read,
/// nothing is written at either end.
pub(crate) fn plan(source: &Path, addr: &str, dest: &[u8], opts: &SendOptions, watch: Watch) -> Result<Planned> {
    if !opts.dry_run {
        return Err(Error::Usage("a plan is a dry run".into()));
    }
    let started = Instant::now();
    let scanned = scan_within(source, opts.scan_threads, opts.confine.as_deref(), &opts.filter)?;
    let scan_seconds = started.elapsed().as_secs_f64();
    check_source(&scanned, opts)?;
    let index = &scanned.index;
    let (plan, round_trips) = match session(Scanned { scan: &scanned, started, scan_seconds, digests: None }, addr, dest, opts, watch)? {
        Outcome::Planned(plan, round_trips) => (plan, round_trips),
        Outcome::Sent(_) => return Err(Error::Protocol("a transfer where a dry run was asked for".into())),
    };
    Ok(Planned {
        plan,
        delete: opts.delete,
        bytes: index.total(),
        files: index.count(Kind::File) as u64,
        dirs: index.count(Kind::Dir) as u64,
        symlinks: index.count(Kind::Symlink) as u64,
        excluded: scanned.excluded,
        skipped: scanned.skipped.clone(),
        seconds: started.elapsed().as_secs_f64(),
        scan_seconds,
        round_trips,
    })
}
