//! Mirrors (`--delete`, `--dry-run`): the request that follows MANIFEST (MIRROR: the sender's
//! filter rules) and the marked lists the receiver answers with (CHANGES, then TALLY), written
//! and read once for both ends. docs/PROTOCOL.md has the frames.

use std::io::{Read, Write};

use crate::error::{lossy, Error, Result};
use crate::vfile::filter::{Filter, Rule};
use crate::wire::frame::{self, Msg, Tally, MARK_NEW, MARK_UPDATE};

/// Paths of each mark a list carries: the counts in TALLY say how many there were in all.
pub const LISTED: usize = 1000;

/// Bytes of CHANGES items in one frame, well within a control frame.
const ITEMS_PER_FRAME: usize = 48 * 1024;

/// Filter rules a MIRROR may carry. The node matches every path of its walk that the index
/// does not name against all of them: their number bounds the CPU a client's rules cost it
/// per entry (the 64 KiB frame bounds their compilation).
pub const MAX_RULES: usize = 1000;

fn check_rules(n: usize) -> Result<()> {
    if n > MAX_RULES {
        return Err(Error::Limit { what: "filter rules with --delete or --dry-run", limit: MAX_RULES as u64, got: n as u64 });
    }
    Ok(())
}

/// What a sender asks of a push besides the transfer.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Remove what the destination holds and the source does not, once the transfer verified.
    pub delete: bool,
    /// Only say what the transfer would do.
    pub dry_run: bool,
    /// The sender's rules: what they leave out of the source is not deleted at the destination.
    pub rules: Vec<Rule>,
}

impl Request {
    pub fn msg(&self) -> Result<Msg> {
        let rules: Vec<(bool, Vec<u8>)> = self.rules.iter().map(|r| (r.include, r.pattern.as_bytes().to_vec())).collect();
        let msg = Msg::Mirror { delete: self.delete, dry_run: self.dry_run, rules };
        // The node reads it as a control frame: rules past that bound are refused here.
        if msg.encode().len() > frame::MAX_CONTROL_FRAME as usize {
            return Err(Error::Usage("the filter rules are too long to send with --delete or --dry-run (64 KiB at most)".into()));
        }
        check_rules(self.rules.len())?;
        Ok(msg)
    }

    /// The request a MIRROR frame carries, its rules compiled (a bad pattern is the sender's
    /// usage error, answered as such).
    pub fn from_msg(m: Msg) -> Result<(Request, Filter)> {
        let Msg::Mirror { delete, dry_run, rules } = m else { return Err(m.unexpected("MIRROR")) };
        let rules: Vec<Rule> = rules
            .into_iter()
            .map(|(include, p)| String::from_utf8(p).map(|pattern| Rule { include, pattern }))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::Protocol("a MIRROR rule is not UTF-8".into()))?;
        check_rules(rules.len())?;
        let filter = Filter::new(&rules)?;
        Ok((Request { delete, dry_run, rules }, filter))
    }
}

/// A receiver's marked list: the counts, and the first LISTED paths of each mark in the
/// order they were found (a deletion's deepest first; a directory's with a trailing `/`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub tally: Tally,
    pub items: Vec<(u8, Vec<u8>)>,
    /// Items listed per mark (new, update, delete).
    counts: [usize; 3],
}

fn slot(mark: u8) -> usize {
    match mark {
        MARK_NEW => 0,
        MARK_UPDATE => 1,
        _ => 2,
    }
}

impl Listed {
    /// Adds `path` under `mark` unless LISTED of that mark are listed already.
    pub fn note(&mut self, mark: u8, path: Vec<u8>) {
        if self.counts[slot(mark)] < LISTED {
            self.counts[slot(mark)] += 1;
            self.items.push((mark, path));
        }
    }

    /// The paths of one mark, as text.
    pub fn paths(&self, mark: u8) -> Vec<String> {
        self.items.iter().filter(|(m, _)| *m == mark).map(|(_, p)| lossy(p)).collect()
    }

    /// CHANGES frames, then TALLY.
    pub fn write(&self, sock: &mut impl Write) -> Result<()> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (mark, path) in &self.items {
            if bytes + path.len() + 3 > ITEMS_PER_FRAME {
                frame::write_msg(sock, &Msg::Changes { items: std::mem::take(&mut batch) })?;
                bytes = 0;
            }
            bytes += path.len() + 3;
            batch.push((*mark, path.clone()));
        }
        if !batch.is_empty() {
            frame::write_msg(sock, &Msg::Changes { items: batch })?;
        }
        frame::write_msg(sock, &Msg::Tally(self.tally.clone()))
    }

    /// Reads CHANGES frames up to TALLY, `first` being the first of them (already read).
    pub fn read(first: Msg, sock: &mut impl Read) -> Result<Listed> {
        let mut listed = Listed::default();
        let mut m = first;
        loop {
            match m {
                Msg::Tally(tally) => {
                    listed.tally = tally;
                    return Ok(listed);
                }
                Msg::Changes { items } => {
                    for (mark, path) in items {
                        if listed.counts[slot(mark)] >= LISTED {
                            return Err(Error::Protocol(format!("CHANGES lists more than {LISTED} paths of one mark")));
                        }
                        listed.note(mark, path);
                    }
                }
                m => return Err(m.unexpected("CHANGES or TALLY")),
            }
            m = frame::expect_reply(sock, 0)?;
        }
    }
}

/// What a dry run reports: the node's plan and the source it was made for.
#[derive(Clone, Debug)]
pub struct Planned {
    pub plan: Listed,
    /// The plan includes what `delete` would remove.
    pub delete: bool,
    /// The source as scanned: bytes, files, directories and symlinks in its index.
    pub bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Entries the filter left out, and entries that cannot be sent (FIFOs, sockets, devices).
    pub excluded: u64,
    pub skipped: Vec<(String, &'static str)>,
    pub seconds: f64,
    pub scan_seconds: f64,
    /// Control round trips: the handshake's and the offer's.
    pub round_trips: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::MARK_DELETE;

    /// Each rule costs the node's walk a match per entry it meets: past MAX_RULES, E_LIMIT on
    /// both ends (the sender before it sends, the node before it compiles).
    #[test]
    fn issue_32_mirror_rules_are_bounded() {
        let rules: Vec<Rule> = (0..=MAX_RULES).map(|i| Rule::parse(&format!("- r{i}"))).collect();
        let many = Request { delete: true, dry_run: false, rules };
        assert_eq!(many.msg().unwrap_err().code(), "E_LIMIT");
        let wire =
            Msg::Mirror { delete: true, dry_run: false, rules: (0..=MAX_RULES).map(|i| (false, format!("r{i}").into_bytes())).collect() };
        assert_eq!(Request::from_msg(wire).unwrap_err().code(), "E_LIMIT");
        let fine = Request { delete: true, dry_run: false, rules: vec![Rule::parse("- *.tmp")] };
        assert!(Request::from_msg(fine.msg().unwrap()).is_ok());
    }

    #[test]
    fn issue_32_a_long_list_crosses_frames_and_is_bounded() {
        let mut l = Listed::default();
        for i in 0..1500 {
            l.note(MARK_DELETE, format!("d/{i:0>200}").into_bytes());
        }
        l.note(MARK_NEW, b"d/new".to_vec());
        l.tally.deleted_files = 1500;
        assert_eq!(l.items.len(), LISTED + 1);
        let mut wire = Vec::new();
        l.write(&mut wire).unwrap();
        let mut r = &wire[..];
        let first = frame::expect_msg(&mut r, 0).unwrap();
        let back = Listed::read(first, &mut r).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.paths(MARK_NEW), vec!["d/new".to_owned()]);
    }

    #[test]
    fn issue_32_rules_round_trip_and_a_bad_one_is_a_usage_error() {
        let req = Request { delete: true, dry_run: true, rules: vec![Rule::parse("+ keep/"), Rule::parse("- *.tmp")] };
        let (back, filter) = Request::from_msg(req.msg().unwrap()).unwrap();
        assert_eq!((back.delete, back.dry_run, back.rules), (true, true, req.rules));
        assert!(filter.excludes(b"a.tmp", false));
        let bad = Msg::Mirror { delete: true, dry_run: false, rules: vec![(false, b" ".to_vec())] };
        assert_eq!(Request::from_msg(bad).unwrap_err().code(), "E_USAGE");
    }
}
