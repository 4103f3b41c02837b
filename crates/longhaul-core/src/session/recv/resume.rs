//! Resume: what an earlier attempt left (its journal, its temporary files, complete files at
//! the destination) and what a failed or completed session keeps or removes of its own.
//! Owns `Resume` (the journal, what was carried over); `ExistingDirs` and `own_part` serve the
//! node's stale-journal sweep too.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use rustix::fs::{Mode, OFlags};

use super::journal::{Journal, Previous};
use super::slot::{STAGE_FINAL, STAGE_NONE, STAGE_TEMP, STAGE_WRITTEN, UNCOUNTED};
use super::sums::Held;
use super::unchanged::{MetaSync, Outcome};
use super::{dest_refused, Receive};
use crate::error::Result;
use crate::hash::xxh3;
use crate::sys::beneath::{self, DirCache};
use crate::vfile::blocks::BlockPlan;
use crate::vfile::held::needed_runs;
use crate::vfile::index::{Index, Kind};

/// What the session takes up of earlier attempts, and what it leaves for later ones.
pub(super) struct Resume {
    /// Records each block written, for a later attempt (a push to a node); None: nothing is
    /// remembered, and temporary files are removed on failure.
    pub(super) journal: Option<Journal>,
    pub(super) carried: Carried,
    /// An earlier attempt's journal was there when the session began.
    pub(super) earlier: bool,
    /// FEATURE_PIECES was agreed (with resume): HELD follows PLAN, and blocks held in part
    /// come as PIECEs.
    pub(super) pieces: bool,
}

/// What an earlier attempt left that this session will not receive again.
#[derive(Default)]
pub(super) struct Carried {
    /// Blocks already held, as sorted `[first, end)` ranges (what PLAN tells the sender).
    pub(super) ranges: Vec<(u64, u64)>,
    pub(super) blocks: u64,
    pub(super) bytes: u64,
    /// Per file: bytes still to come.
    pub(super) remaining: Vec<u64>,
    pub(super) stages: Vec<u8>,
    /// Blocks wholly in holes of sparse files (not in `ranges`): never sent, left as holes.
    pub(super) hole_blocks: Vec<u64>,
    pub(super) hole_bytes: u64,
    /// With pieces: blocks outside `ranges` made only of complete files (a PLAN cut at its
    /// range limit), which the sender finds from HELD and does not send; counted in `blocks`.
    pub(super) all_held: Vec<u64>,
}

impl Carried {
    /// Takes the blocks wholly in holes of sparse files as held: the sender computes the
    /// same from the index and never sends them, and the files' bytes still to come are less
    /// them (a file that is holes only is complete from the start).
    pub(super) fn add_holes(&mut self, index: &Index, plan: BlockPlan) {
        let holes = index.hole_blocks(plan);
        if holes.is_empty() {
            return;
        }
        if self.remaining.is_empty() {
            self.remaining = index.entries().iter().map(|e| e.size).collect();
        }
        let final_ = |i: usize| self.stages.get(i).is_some_and(|&s| s == STAGE_FINAL);
        let mut remaining = std::mem::take(&mut self.remaining);
        for (first, end) in holes {
            for b in first..end {
                let k = self.ranges.partition_point(|&(_, e)| e <= b);
                if self.ranges.get(k).is_some_and(|&(f, _)| f <= b) {
                    continue;
                }
                for p in index.pieces(plan.offset(b), plan.len(b)) {
                    if !final_(p.entry) {
                        remaining[p.entry] -= p.len;
                    }
                }
                self.hole_blocks.push(b);
                self.hole_bytes += plan.len(b);
            }
        }
        self.remaining = remaining;
    }

    /// With pieces (FEATURE_PIECES): of the blocks neither held nor holes, those that hold
    /// complete files are received as their needed runs only (`needed_runs`, which the sender
    /// computes alike from HELD), and those made only of complete files not at all. Their
    /// held bytes count as carried, so that what is received adds up. The pieced blocks' runs.
    pub(super) fn add_pieces(&mut self, index: &Index, plan: BlockPlan) -> HashMap<u64, Vec<(u64, u64)>> {
        let held = self.held();
        let mut pieced = HashMap::new();
        if !held.contains(&true) {
            return pieced;
        }
        let mut skip = vec![false; plan.count() as usize];
        for &(first, end) in &self.ranges {
            skip[first as usize..end as usize].iter_mut().for_each(|s| *s = true);
        }
        for &b in &self.hole_blocks {
            skip[b as usize] = true;
        }
        for b in (0..plan.count()).filter(|&b| !skip[b as usize]) {
            let runs = needed_runs(index, plan, &held, b);
            let needed: u64 = runs.iter().map(|r| r.1).sum();
            if needed == plan.len(b) {
                continue;
            }
            self.bytes += plan.len(b) - needed;
            if runs.is_empty() {
                self.blocks += 1;
                self.all_held.push(b);
            } else {
                pieced.insert(b, runs);
            }
        }
        pieced
    }

    /// By entry, whether the destination held the file whole when the session began (what
    /// HELD says).
    pub(super) fn held(&self) -> Vec<bool> {
        self.stages.iter().map(|&s| s == STAGE_FINAL).collect()
    }
}

impl Receive {
    /// Files an earlier attempt wrote in full but was stopped before renaming.
    pub(super) fn finish_carried(&self) -> Result<()> {
        let mut dirs = DirCache::default();
        for (i, slot) in self.files.slots.iter().enumerate() {
            let stage = slot.stage.load(Ordering::SeqCst);
            // A sparse file that is holes only receives nothing: made here, at its size.
            let holes_only = stage == STAGE_NONE && self.index.extents_of(i).is_some() && self.index.entries()[i].size > 0;
            if (stage == STAGE_TEMP || holes_only) && slot.remaining.load(Ordering::SeqCst) == 0 {
                self.finalize(i, &mut dirs)?;
            }
        }
        Ok(())
    }

    /// Closes the temporary files a failed journaled session keeps for its next attempt.
    pub(super) fn close_temps(&self) {
        for slot in &self.files.slots {
            slot.fd.lock().expect("slot lock").take();
        }
    }

    /// A journaled session failed: of its temporary files, those that hold data stay for the
    /// next attempt, counted at their size on disk; those that hold none (a session that ended
    /// before its data came) are removed and leave the account. Whether any stayed.
    pub(super) fn keep_temps(&self) -> bool {
        let mut dirs = DirCache::default();
        let mut kept = false;
        for (i, (slot, e)) in self.files.slots.iter().zip(self.index.entries()).enumerate() {
            let stage = slot.stage.load(Ordering::SeqCst);
            if !matches!(stage, STAGE_TEMP | STAGE_WRITTEN) {
                continue;
            }
            let holds = stage == STAGE_WRITTEN || slot.remaining.load(Ordering::SeqCst) < e.size;
            let Ok((dir, _)) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused) else {
                kept = true;
                continue;
            };
            let temp = self.temp_name(i);
            let on_disk = rustix::fs::statat(dir, temp.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok().map(|st| st.st_size as u64);
            if holds {
                kept = true;
                let counted = slot.part.swap(UNCOUNTED, Ordering::SeqCst);
                if let (Some(g), Some(size), true) = (&self.files.space, on_disk, counted != UNCOUNTED) {
                    g.part_resized(counted, size);
                }
            } else if rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty()).is_ok() {
                self.count_removed(i, on_disk);
                slot.stage.store(STAGE_NONE, Ordering::SeqCst);
            }
        }
        kept
    }

    /// The session completed after an earlier attempt: temporary files of that attempt that
    /// this one did not take up would have no journal left to find them by. Removed, and out
    /// of the account.
    pub(super) fn remove_leftovers(&self) {
        let mut dirs = DirCache::default();
        for (i, e) in self.index.entries().iter().enumerate().filter(|(_, e)| e.kind == Kind::File) {
            let Ok((dir, _)) = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused) else { continue };
            let temp = self.temp_name(i);
            let Ok(st) = rustix::fs::statat(dir, temp.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
                && rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty()).is_ok()
            {
                self.count_removed(i, Some(st.st_size as u64));
            }
        }
    }

    /// Removes every temporary file of the session, and its journal, and gives their space
    /// back to the account.
    pub(super) fn discard_temps(&self) {
        if self.files.space.is_some() {
            let mut dirs = DirCache::default();
            for (i, (slot, e)) in self.files.slots.iter().zip(self.index.entries()).enumerate() {
                if matches!(slot.stage.load(Ordering::SeqCst), STAGE_TEMP | STAGE_WRITTEN) {
                    let on_disk = dirs.parent(self.dest_fd.as_fd(), &e.path, dest_refused).ok().and_then(|(dir, _)| {
                        rustix::fs::statat(dir, self.temp_name(i).as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()
                    });
                    self.count_removed(i, on_disk.map(|st| st.st_size as u64));
                }
            }
        }
        self.remove_temps();
        if let Some(j) = &self.resume.journal {
            j.remove();
        }
    }

    /// Removes every temporary file of the session; files already under their final name are
    /// complete and stay.
    fn remove_temps(&self) {
        let mut dirs = DirCache::default();
        for (i, slot) in self.files.slots.iter().enumerate() {
            if matches!(slot.stage.load(Ordering::SeqCst), STAGE_TEMP | STAGE_WRITTEN) {
                slot.fd.lock().expect("slot lock").take();
                let _ = self.remove_temp(i, &mut dirs);
            }
        }
    }
}

/// What an earlier attempt (its journal, its temporary files) and the destination already hold
/// of this transfer. A file already at the destination with the index's size and mtime is
/// complete (rsync's quick check); a journaled block counts when every file it touches is
/// complete or has its temporary file, and its bytes, read back, still have the recorded XXH3.
/// Blocks made only of complete files count too, so the sender skips them.
/// With SUMS (`sums`) the sender's BLAKE3 decides instead: by content, a file of the entry's
/// size with the sender's digest is complete whatever its mtime (which is then set to the
/// index's, as rsync -c does); confirmed, the quick check must pass and the digest match too.
/// A file found complete gets the index's metadata (`meta`, unchanged.rs), or is received
/// again where that cannot be done in place. A dry run (`meta` None) decides by the bytes and
/// sets nothing.
pub(super) fn carried_over(
    index: &Index,
    dest: BorrowedFd<'_>,
    tag: &str,
    plan: BlockPlan,
    previous: &Previous,
    sums: Option<&Held>,
    mut meta: Option<&mut MetaSync>,
) -> Carried {
    let touch = meta.is_some();
    let entries = index.entries();
    let temp_name = |i: usize| format!(".lh-{tag}-{i}.part");
    let mut stages = vec![STAGE_NONE; entries.len()];
    // A file whose directory is missing has neither name: one open per directory, for the
    // common push into a new destination.
    let mut held = ExistingDirs::new(dest);
    let mut dirs = DirCache::default();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.kind == Kind::File && e.size > 0) {
        if !held.hold(&e.path) {
            continue;
        }
        let Ok((dir, name)) = dirs.parent(dest, &e.path, dest_refused) else { continue };
        let stat = |name: &OsStr| rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok();
        let regular = |st: &rustix::fs::Stat| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        let same_mtime = |st: &rustix::fs::Stat| st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128 == e.mtime_ns as i128;
        let found = stat(name);
        let complete = found.as_ref().is_some_and(|st| {
            let quick = regular(st) && st.st_size as u64 == e.size;
            match sums.filter(|h| h.by_content()) {
                None => quick && same_mtime(st),
                Some(h) if h.mode == crate::wire::frame::SUMS_CONFIRM => quick && same_mtime(st) && h.same[i],
                Some(h) => {
                    // Its mtime is set only on a file the receiver could have made: one name,
                    // its own user. A hard link to someone else's file, swapped in after the
                    // hashing, is sent again instead (the rename replaces the name, not the file).
                    let own = st.st_nlink == 1 && st.st_uid == rustix::process::geteuid().as_raw();
                    let same = quick && h.same[i] && (own || same_mtime(st));
                    if same && touch && !same_mtime(st) {
                        let t = rustix::fs::Timespec {
                            tv_sec: e.mtime_ns.div_euclid(1_000_000_000),
                            tv_nsec: e.mtime_ns.rem_euclid(1_000_000_000) as _,
                        };
                        let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
                        let _ = rustix::fs::utimensat(dir, name, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
                    }
                    same
                }
            }
        });
        // Its bytes are the source's; its mode, owner, attributes and mtime are set now, or it
        // comes again.
        let complete = complete
            && match (meta.as_deref_mut(), &found) {
                (Some(m), Some(st)) => m.file(index, i, dir, name, st) == Outcome::Held,
                _ => true,
            };
        stages[i] = if complete {
            STAGE_FINAL
        } else if stat(OsStr::new(&temp_name(i))).is_some_and(|st| own_part(&st) && st.st_size as u64 <= e.size) {
            STAGE_TEMP
        } else {
            STAGE_NONE
        };
    }
    let recorded: std::collections::HashMap<u64, u64> = previous.blocks.iter().copied().collect();
    let mut buf = Vec::new();
    let mut done = Vec::new();
    for b in 0..plan.count() {
        let pieces: Vec<_> = index.pieces(plan.offset(b), plan.len(b)).collect();
        if pieces.iter().all(|p| stages[p.entry] == STAGE_FINAL) {
            done.push(b);
            continue;
        }
        let Some(&want) = recorded.get(&b) else { continue };
        if pieces.iter().any(|p| stages[p.entry] == STAGE_NONE) {
            continue;
        }
        buf.resize(plan.len(b) as usize, 0);
        let read_back = pieces.iter().all(|p| {
            let Ok((dir, name)) = dirs.parent(dest, &entries[p.entry].path, dest_refused) else { return false };
            let temp = temp_name(p.entry);
            let from = if stages[p.entry] == STAGE_FINAL { name } else { OsStr::new(&temp) };
            let at = p.range_offset as usize;
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            rustix::fs::openat(dir, from, flags, Mode::empty())
                .map(File::from)
                .is_ok_and(|f| f.read_exact_at(&mut buf[at..at + p.len as usize], p.file_offset).is_ok())
        });
        if read_back && xxh3(&buf) == want {
            done.push(b);
        }
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &b in &done {
        match ranges.last_mut() {
            Some((_, end)) if *end == b => *end = b + 1,
            _ => ranges.push((b, b + 1)),
        }
    }
    // PLAN fits one control frame; blocks past its last range are simply sent again.
    if ranges.len() > crate::wire::frame::MAX_PLAN_RANGES {
        ranges.truncate(crate::wire::frame::MAX_PLAN_RANGES);
        let end = ranges[ranges.len() - 1].1;
        done.retain(|&b| b < end);
    }
    let mut remaining: Vec<u64> = entries.iter().zip(&stages).map(|(e, &st)| if st == STAGE_FINAL { 0 } else { e.size }).collect();
    let mut bytes = 0;
    for &b in &done {
        for p in index.pieces(plan.offset(b), plan.len(b)) {
            if stages[p.entry] == STAGE_TEMP {
                remaining[p.entry] -= p.len;
            }
        }
        bytes += plan.len(b);
    }
    Carried { blocks: done.len() as u64, ranges, bytes, remaining, stages, ..Carried::default() }
}

/// Whether the directories that index paths name under `dest` exist: one open per directory
/// (beneath `dest`, no symlink followed), from the index's bytes, remembered (a tree of
/// 100,000 files in 1,000 directories made a path and hashed it for every file: 70-120 ms
/// before the first byte could flow).
pub(crate) struct ExistingDirs<'a, 'f> {
    dest: BorrowedFd<'f>,
    seen: std::collections::HashMap<&'a [u8], bool>,
    last: Option<(&'a [u8], bool)>,
}

impl<'a, 'f> ExistingDirs<'a, 'f> {
    pub(crate) fn new(dest: BorrowedFd<'f>) -> Self {
        ExistingDirs { dest, seen: std::collections::HashMap::new(), last: None }
    }

    /// Whether the directory holding `path` (relative to `dest`) is a real directory, reached
    /// without a symlink.
    pub(crate) fn hold(&mut self, path: &'a [u8]) -> bool {
        let parent = crate::vfile::index::parent_of(path).unwrap_or(b"");
        if let Some((last, there)) = self.last {
            if last == parent {
                return there;
            }
        }
        let dest = self.dest;
        let there = *self.seen.entry(parent).or_insert_with(|| beneath::open_dir(dest, parent, dest_refused).is_ok());
        self.last = Some((parent, there));
        there
    }
}

/// Whether `st` is a temporary file a receiver made and may take over: a regular file with one
/// link, owned by this process's user. A local user who put a hard link to another file (or a
/// FIFO) under a `.part` name would otherwise have the receiver write into it and chmod it.
pub(crate) fn own_part(st: &rustix::fs::Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        && st.st_nlink == 1
        && st.st_uid == rustix::process::geteuid().as_raw()
}
