//! The mirror frames (`--delete`, `--dry-run`): MIRROR (the sender's filter rules), CHANGES
//! (marked paths) and TALLY (the counts that close a list).

use super::encode::put_bytes16;

/// A CHANGES mark: a file the receiver does not hold (rsync's `+`).
pub const MARK_NEW: u8 = b'+';
/// A file the receiver holds with other contents, size or mtime (rsync's `>`).
pub const MARK_UPDATE: u8 = b'>';
/// What the receiver's destination holds and the source does not (rsync's `*deleting`).
pub const MARK_DELETE: u8 = b'-';

/// What a plan would do, or what a deletion did. Regular files and symlinks count as files;
/// bytes are regular files' sizes. A dry run fills every field, a deletion the `deleted_*` ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub new_files: u64,
    pub new_bytes: u64,
    pub changed_files: u64,
    pub changed_bytes: u64,
    pub unchanged_files: u64,
    pub unchanged_bytes: u64,
    pub deleted_files: u64,
    pub deleted_dirs: u64,
    pub deleted_bytes: u64,
}

impl Tally {
    pub(super) const FIELDS: usize = 9;

    fn fields(&self) -> [u64; Self::FIELDS] {
        [
            self.new_files,
            self.new_bytes,
            self.changed_files,
            self.changed_bytes,
            self.unchanged_files,
            self.unchanged_bytes,
            self.deleted_files,
            self.deleted_dirs,
            self.deleted_bytes,
        ]
    }

    pub(super) fn from_fields(v: [u64; Self::FIELDS]) -> Tally {
        let [new_files, new_bytes, changed_files, changed_bytes, unchanged_files, unchanged_bytes, deleted_files, deleted_dirs, deleted_bytes] =
            v;
        Tally {
            new_files,
            new_bytes,
            changed_files,
            changed_bytes,
            unchanged_files,
            unchanged_bytes,
            deleted_files,
            deleted_dirs,
            deleted_bytes,
        }
    }

    pub(super) fn encode(&self, b: &mut Vec<u8>) {
        for v in self.fields() {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub(super) fn encode_rules(b: &mut Vec<u8>, delete: bool, dry_run: bool, rules: &[(bool, Vec<u8>)]) {
    b.push(delete as u8 | (dry_run as u8) << 1);
    b.extend_from_slice(&(rules.len() as u16).to_le_bytes());
    for (include, pattern) in rules {
        b.push(*include as u8);
        put_bytes16(b, pattern);
    }
}

pub(super) fn encode_items(b: &mut Vec<u8>, items: &[(u8, Vec<u8>)]) {
    b.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (mark, path) in items {
        b.push(*mark);
        put_bytes16(b, path);
    }
}
