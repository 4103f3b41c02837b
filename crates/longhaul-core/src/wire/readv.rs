//! A READV request checked against the node's limits, and the plan of file reads that answers
//! it: adjacent segments of one file are coalesced into one run. Pure functions, so that the
//! fuzz target and the property tests reach every line the node runs on a request.

use crate::error::{Error, Result};
use crate::wire::frame::{Limits, Segment};

/// Runs longer than this are cut, so that one request cannot ask for one unbounded read.
pub const COALESCE: u64 = 8 << 20;

/// Refuses a request over the node's limits or naming a file it does not list. A refusal is
/// answered with its code and the connection goes on.
pub fn check(paths: usize, segments: &[Segment], limits: &Limits) -> Result<()> {
    if segments.len() as u64 > limits.max_readv_segments as u64 {
        return Err(Error::Limit { what: "readv segments", limit: limits.max_readv_segments as u64, got: segments.len() as u64 });
    }
    if let Some(s) = segments.iter().find(|s| s.len > limits.max_readv_segment) {
        return Err(Error::Limit { what: "readv segment length", limit: limits.max_readv_segment as u64, got: s.len as u64 });
    }
    if let Some(s) = segments.iter().find(|s| s.file as usize >= paths) {
        return Err(Error::Protocol(format!("readv segment names file {} of {}", s.file, paths)));
    }
    Ok(())
}

/// What a segment yields from a file of `size` bytes: the bytes asked for, fewer at the end of
/// the file, none past it.
pub fn available(s: &Segment, size: u64) -> u32 {
    (s.len as u64).min(size.saturating_sub(s.offset)) as u32
}

/// One read of a file that answers `segments[first..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub file: u16,
    pub offset: u64,
    pub len: u64,
    pub first: usize,
    pub end: usize,
}

/// The reads that answer the segments in order, given what each yields (`lens`, 0 for a
/// segment that failed or lies past its file's end): a segment that starts where the run
/// before it ends, in the same file, joins that run, up to `COALESCE` bytes. Segments that
/// yield nothing get no run.
pub fn plan(segments: &[Segment], lens: &[u32]) -> Vec<Run> {
    assert_eq!(segments.len(), lens.len(), "one length per segment");
    let mut runs = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let s = segments[i];
        let mut run = lens[i] as u64;
        let mut j = i + 1;
        while j < segments.len()
            && run > 0
            && segments[j].file == s.file
            && s.offset.checked_add(run) == Some(segments[j].offset)
            && lens[j] > 0
            && run + lens[j] as u64 <= COALESCE
        {
            run += lens[j] as u64;
            j += 1;
        }
        if run > 0 {
            runs.push(Run { file: s.file, offset: s.offset, len: run, first: i, end: j });
        }
        i = j;
    }
    runs
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: Limits =
        Limits { max_streams: 64, max_block: 4 << 20, max_manifest: 1 << 20, max_readv_segments: 1024, max_readv_segment: 2 << 20 };

    #[test]
    fn limits_and_file_indexes_are_checked() {
        let seg = |file, len| Segment { file, offset: 0, len };
        assert!(check(1, &[seg(0, 2 << 20)], &LIMITS).is_ok());
        assert_eq!(check(1, &vec![seg(0, 1); 1025], &LIMITS).unwrap_err().code(), "E_LIMIT");
        assert_eq!(check(1, &[seg(0, (2 << 20) + 1)], &LIMITS).unwrap_err().code(), "E_LIMIT");
        assert_eq!(check(1, &[seg(1, 1)], &LIMITS).unwrap_err().code(), "E_PROTOCOL");
        assert!(check(0, &[], &LIMITS).is_ok());
    }

    #[test]
    fn adjacent_segments_coalesce_and_others_do_not() {
        let s = |file, offset, len| Segment { file, offset, len };
        let segs = [s(0, 0, 4), s(0, 4, 4), s(1, 8, 4), s(0, 8, 4), s(0, 100, 4)];
        let runs = plan(&segs, &[4, 4, 4, 4, 0]);
        assert_eq!(
            runs,
            vec![
                Run { file: 0, offset: 0, len: 8, first: 0, end: 2 },
                Run { file: 1, offset: 8, len: 4, first: 2, end: 3 },
                Run { file: 0, offset: 8, len: 4, first: 3, end: 4 },
            ]
        );
        // A segment at the very end of the offset space does not overflow the comparison.
        assert_eq!(plan(&[s(0, u64::MAX - 1, 1), s(0, 0, 1)], &[1, 1]).len(), 2);
    }

    fn segments() -> impl Strategy<Value = Vec<(Segment, u32)>> {
        proptest::collection::vec(
            (0u16..3, prop_oneof![0u64..64, any::<u64>()], 0u32..(3 << 20), any::<bool>()).prop_map(|(file, offset, len, ok)| {
                let s = Segment { file, offset, len };
                (s, if ok { available(&s, 1 << 40) } else { 0 })
            }),
            0..200,
        )
    }

    proptest! {
        #[test]
        fn prop_runs_cover_the_yielding_segments_in_order(items in segments()) {
            let (segs, lens): (Vec<Segment>, Vec<u32>) = items.into_iter().unzip();
            let runs = plan(&segs, &lens);
            let mut next = 0;
            for r in &runs {
                // Runs follow one another; what lies between them yields nothing.
                prop_assert!(r.first >= next && r.end > r.first);
                prop_assert!(lens[next..r.first].iter().all(|&l| l == 0));
                prop_assert!(r.len <= COALESCE.max(lens[r.first] as u64));
                let mut at = r.offset;
                for k in r.first..r.end {
                    prop_assert_eq!(segs[k].file, r.file);
                    prop_assert_eq!(segs[k].offset, at);
                    prop_assert!(lens[k] > 0);
                    at += lens[k] as u64;
                }
                prop_assert_eq!(at - r.offset, r.len);
                next = r.end;
            }
            prop_assert!(lens[next..].iter().all(|&l| l == 0));
            let total: u64 = lens.iter().map(|&l| l as u64).sum();
            prop_assert_eq!(runs.iter().map(|r| r.len).sum::<u64>(), total);
        }

        #[test]
        fn prop_available_never_passes_the_end(offset in any::<u64>(), len in any::<u32>(), size in any::<u64>()) {
            let n = available(&Segment { file: 0, offset, len }, size) as u64;
            prop_assert!(n <= len as u64);
            prop_assert!(n == 0 || offset + n <= size);
        }
    }
}
