//! Which entries of a source a send leaves out: `--exclude` and `--include` patterns in
//! gitignore syntax (`*.tmp`, `/build/`, `**/cache`, a trailing `/` for directories only, a
//! leading `/` anchored at the source), matched against each entry's path below the source
//! while the scan walks, so an excluded directory is never listed.
//!
//! Rules apply in the order given and the first that matches decides, as rsync's and
//! rclone's do (`--include '*.c' --exclude '*.o'`); an entry no rule matches is sent. The
//! matcher is `ignore`'s gitignore one, whose own rule is "the last match wins": the rules go
//! into it reversed, which makes its last match our first.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::error::{Error, Result};

/// One filter rule: a pattern, and whether a match leaves the entry in or out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub include: bool,
    pub pattern: String,
}

impl Rule {
    /// `- PATTERN` (exclude) or `+ PATTERN` (include), as rsync's filter files write them; a
    /// bare pattern excludes.
    pub fn parse(line: &str) -> Rule {
        match line.split_at_checked(2) {
            Some(("+ ", p)) => Rule { include: true, pattern: p.to_owned() },
            Some(("- ", p)) => Rule { include: false, pattern: p.to_owned() },
            _ => Rule { include: false, pattern: line.to_owned() },
        }
    }
}

/// The compiled rules; the default leaves everything in.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    matcher: Option<Gitignore>,
    /// The rules as given: `--delete` sends them to the node, which protects what they leave out.
    rules: Vec<Rule>,
}

impl Filter {
    pub fn new(rules: &[Rule]) -> Result<Filter> {
        if rules.is_empty() {
            return Ok(Filter::default());
        }
        // Rooted at "/": entry paths are given relative to the source, so `/x` anchors there.
        let mut b = GitignoreBuilder::new("/");
        for r in rules.iter().rev() {
            let p = r.pattern.trim_end_matches(['\r', '\n']);
            if p.trim().is_empty() {
                return Err(Error::Usage(format!("an empty filter pattern ({:?})", r.pattern)));
            }
            // gitignore's `!` marks a re-include (an include rule here) and `#` a comment: a
            // pattern's own leading `!` or `#` is a literal character.
            let literal = if p.starts_with(['!', '#']) { format!("\\{p}") } else { p.to_owned() };
            let line = if r.include { format!("!{literal}") } else { literal };
            b.add_line(None, &line).map_err(|e| Error::Usage(format!("filter pattern {:?}: {e}", r.pattern)))?;
        }
        let matcher = b.build().map_err(|e| Error::Usage(format!("filter patterns: {e}")))?;
        Ok(Filter { matcher: Some(matcher), rules: rules.to_vec() })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the entry at `path` (below the source, `/`-separated, no leading `/`) is left
    /// out. A directory left out is not walked: nothing under it is sent.
    pub fn excludes(&self, path: &[u8], is_dir: bool) -> bool {
        let Some(m) = &self.matcher else { return false };
        matches!(m.matched(Path::new(OsStr::from_bytes(path)), is_dir), Match::Ignore(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rules: &[&str]) -> Filter {
        Filter::new(&rules.iter().map(|l| Rule::parse(l)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn no_rules_keep_everything() {
        assert!(!Filter::default().excludes(b"a/b", false));
        assert!(!filter(&[]).excludes(b"x", true));
    }

    #[test]
    fn gitignore_patterns() {
        let f = filter(&["- *.tmp", "- /build/", "- **/cache"]);
        assert!(f.excludes(b"a.tmp", false));
        assert!(f.excludes(b"deep/er/a.tmp", false));
        assert!(f.excludes(b"build", true));
        assert!(!f.excludes(b"build", false), "a trailing / matches directories only");
        assert!(!f.excludes(b"sub/build", true), "a leading / anchors at the source");
        assert!(f.excludes(b"x/y/cache", true));
        assert!(!f.excludes(b"a.tmpx", false));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let f = filter(&["+ keep.tmp", "- *.tmp"]);
        assert!(!f.excludes(b"keep.tmp", false));
        assert!(f.excludes(b"other.tmp", false));
        // The other order: the exclude comes first and wins.
        let f = filter(&["- *.tmp", "+ keep.tmp"]);
        assert!(f.excludes(b"keep.tmp", false));
    }

    #[test]
    fn bad_patterns_are_usage_errors() {
        assert_eq!(Filter::new(&[Rule::parse("")]).unwrap_err().code(), "E_USAGE");
    }
}
