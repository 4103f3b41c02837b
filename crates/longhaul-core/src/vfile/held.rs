//! Pieces (FEATURE_PIECES, issue 32): what of a block a receiver still needs when it holds some
//! of the block's files whole, computed alike by both ends from the index and the HELD entries,
//! so that a re-run sends the bytes of the files that changed rather than every block one of
//! them touches.

use crate::error::{Error, Result};
use crate::vfile::blocks::BlockPlan;
use crate::vfile::index::{Entry, Index, Kind};

/// Whether an entry owns bytes of the virtual stream.
fn has_bytes(e: &Entry) -> bool {
    e.kind == Kind::File && e.size > 0
}

/// HELD's ranges for `held` (by entry: the receiver holds that file whole): sorted, disjoint
/// `[first, end)` ranges of entry numbers naming no file with bytes the receiver lacks.
/// Entries without bytes (directories, symlinks, hard links, empty files) join the range
/// around them: a tree with a few changed files is a few ranges.
pub fn held_ranges(index: &Index, held: &[bool]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut open: Option<(u32, u32)> = None;
    for (i, e) in index.entries().iter().enumerate() {
        let i = i as u32;
        match (has_bytes(e), held.get(i as usize).copied().unwrap_or(false), open.as_mut()) {
            (true, true, None) => open = Some((i, i + 1)),
            (true, true, Some(r)) | (false, _, Some(r)) => r.1 = i + 1,
            (true, false, Some(_)) => out.extend(open.take()),
            _ => {}
        }
    }
    out.extend(open);
    out
}

/// A sender's view of HELD frames as they come: each range checked against the one before it
/// (across frames too) and against the index's entries.
pub struct HeldEntries {
    held: Vec<bool>,
    floor: u32,
}

impl HeldEntries {
    pub fn new(entries: usize) -> HeldEntries {
        HeldEntries { held: vec![false; entries], floor: 0 }
    }

    /// One frame's ranges; overlapping or unsorted ranges, or entries past the index, are the
    /// receiver's protocol error.
    pub fn add(&mut self, ranges: &[(u32, u32)]) -> Result<()> {
        for &(first, end) in ranges {
            if first < self.floor || end <= first || end as usize > self.held.len() {
                return Err(Error::Protocol(format!(
                    "HELD range {first}..{end} is empty, overlaps the one before it or is past the index's {} entries",
                    self.held.len()
                )));
            }
            self.held[first as usize..end as usize].iter_mut().for_each(|h| *h = true);
            self.floor = end;
        }
        Ok(())
    }

    pub fn into_held(self) -> Vec<bool> {
        self.held
    }
}

/// What of block `b` a receiver holding the files `held` marks still needs: the block's bytes in
/// other files, as `(offset, len)` runs of the virtual stream, in order, neighbours merged.
/// Empty: it holds the whole block; one run covering the block: it holds none of it.
pub fn needed_runs(index: &Index, plan: BlockPlan, held: &[bool], b: u64) -> Vec<(u64, u64)> {
    let start = plan.offset(b);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for p in index.pieces(start, plan.len(b)) {
        if held.get(p.entry).copied().unwrap_or(false) {
            continue;
        }
        let at = start + p.range_offset;
        match runs.last_mut() {
            Some((o, l)) if *o + *l == at => *l += p.len,
            _ => runs.push((at, p.len)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfile::index::Entry;

    fn entry(path: String, kind: Kind, size: u64) -> Entry {
        Entry { path: path.into_bytes().into(), kind, mode: 0o644, mtime_ns: 0, size, offset: 0, target: Box::default() }
    }

    fn index(sizes: &[u64]) -> Index {
        let mut entries = vec![entry("d".into(), Kind::Dir, 0)];
        entries.extend(sizes.iter().enumerate().map(|(i, &size)| entry(format!("d/f{i:03}"), Kind::File, size)));
        Index::from_entries(entries).unwrap()
    }

    /// Issue 32: a block whose files are partly held needs only the others' bytes, in runs
    /// that neighbouring needed files share; held files around directories make one range.
    #[test]
    fn issue_32_needed_runs_skip_the_held_files_and_held_ranges_span_the_rest() {
        // 8 files of 100 bytes in blocks of 256: block 0 is f0, f1, f2 (first 56).
        let idx = index(&[100; 8]);
        let plan = BlockPlan::new(800, 256);
        let mut held = vec![false; 9];
        for i in [1, 3, 4, 7, 8] {
            held[i] = true;
        }
        // Entry 0 is the directory; file k is entry k + 1.
        assert_eq!(needed_runs(&idx, plan, &held, 0), vec![(100, 100)]);
        assert_eq!(needed_runs(&idx, plan, &held, 1), vec![(400, 112)]);
        held[3] = false;
        assert_eq!(needed_runs(&idx, plan, &held, 0), vec![(100, 156)]);
        assert_eq!(needed_runs(&idx, plan, &held, 1), vec![(256, 44), (400, 112)]);
        held[3] = true;
        assert_eq!(needed_runs(&idx, plan, &held, 3), Vec::<(u64, u64)>::new());
        let none = vec![false; 9];
        assert_eq!(needed_runs(&idx, plan, &none, 1), vec![(256, 256)]);
        assert_eq!(held_ranges(&idx, &held), vec![(1, 2), (3, 5), (7, 9)]);
        let mut got = HeldEntries::new(9);
        got.add(&[(1, 2), (3, 5)]).unwrap();
        got.add(&[(7, 9)]).unwrap();
        assert_eq!(got.into_held().iter().enumerate().filter(|(_, &h)| h).map(|(i, _)| i).collect::<Vec<_>>(), [1, 3, 4, 7, 8]);
        // Entries without bytes (a directory, an empty file) inside a held stretch join it.
        let idx = Index::from_entries(vec![
            entry("a".into(), Kind::File, 5),
            entry("b".into(), Kind::Dir, 0),
            entry("b/e".into(), Kind::File, 0),
            entry("c".into(), Kind::File, 5),
            entry("d".into(), Kind::File, 5),
        ])
        .unwrap();
        assert_eq!(held_ranges(&idx, &[true, false, false, true, false]), vec![(0, 4)]);
    }

    /// Issue 32: HELD ranges that overlap, go back, are empty or name entries past the index
    /// are the receiver's protocol error.
    #[test]
    fn issue_32_hostile_held_ranges_are_protocol_errors() {
        for frames in [vec![vec![(0, 3)], vec![(2, 4)]], vec![vec![(3, 3)]], vec![vec![(5, 10)]], vec![vec![(4, 5), (1, 2)]]] {
            let mut got = HeldEntries::new(9);
            let e = frames.iter().try_for_each(|f| got.add(f)).unwrap_err();
            assert_eq!(e.code(), "E_PROTOCOL", "{frames:?}");
        }
    }
}
