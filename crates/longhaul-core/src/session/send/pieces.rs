//! Pieces (FEATURE_PIECES, issue 32), the sender's side: which blocks the node's HELD leaves
//! out whole, and what of the others it already has. The runs themselves are
//! `vfile::held::needed_runs`, which the node computes alike.

use crate::vfile::blocks::BlockPlan;
use crate::vfile::held::needed_runs;
use crate::vfile::index::Index;

/// Adds to `not_sent` (`[first, end)` block ranges: the PLAN's and the holes) the blocks
/// outside it made only of files the node holds (`held`, by entry), and returns the bytes the
/// node holds of the blocks still sent: sent as pieces, those are not moved again.
pub(super) fn held_in_part(index: &Index, plan: BlockPlan, held: &[bool], not_sent: &mut Vec<(u64, u64)>) -> u64 {
    let mut bytes = 0;
    for b in plan.to_send(not_sent) {
        let runs = needed_runs(index, plan, held, b);
        if runs.is_empty() {
            not_sent.push((b, b + 1));
        } else {
            bytes += plan.len(b) - runs.iter().map(|r| r.1).sum::<u64>();
        }
    }
    bytes
}
