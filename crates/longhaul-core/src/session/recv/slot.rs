//! A file's slot in a receive: how much of it is still to come, its open descriptor, and the
//! stage of its naming (nothing yet, a temporary name, its final name, written and waiting for
//! its digest). Shared by the writers (files.rs), the resume (resume.rs) and the tree's
//! finishing (tree.rs).

use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::{Arc, Mutex};

pub(super) const STAGE_NONE: u8 = 0;
pub(super) const STAGE_TEMP: u8 = 1;
pub(super) const STAGE_FINAL: u8 = 2;
/// `verify: full`: all bytes written, the file read back and hashed; it waits under its
/// temporary name for the sender's digest.
pub(super) const STAGE_WRITTEN: u8 = 3;

pub(super) struct FileSlot {
    pub(super) remaining: AtomicU64,
    pub(super) fd: Mutex<Option<Arc<File>>>,
    pub(super) stage: AtomicU8,
    /// Held while a piece of a file larger than its piece is written (see `write`).
    pub(super) writing: Mutex<()>,
    /// What its temporary file is counted at in the node's account (`UNCOUNTED`: not by this
    /// session).
    pub(super) part: AtomicU64,
}

pub(super) const UNCOUNTED: u64 = u64::MAX;
