//! A bench session's receiver (`longhaul bench`, FEATURE_DISCARD): the data connections run
//! as in any push (each block read into a pooled buffer, hashed as it lands and checked), and
//! the verified block is dropped instead of queued for the writers. Nothing is made under the
//! node's root: no directory, file, temporary name or journal, and no writer thread.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::bounded;

use super::disk::DiskTimes;
use super::files::{Digests, Files, Writers};
use super::resume::{Carried, Resume};
use super::state::Life;
use super::stream::{Receipt, WriteJob};
use super::{Receive, SessionParams};
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::sys::tmpfile::Tmpfile;
use crate::util::hex;
use crate::vfile::blocks::BlockPlan;
use crate::vfile::blockset::BlockSet;
use crate::vfile::index::Index;

impl Receive {
    /// A receiver that checks and discards every block of `index`. Of `params` only the
    /// session's shape, token, placement, timeout, throttle and counter are used: the rest is
    /// about writing, which this session does not do. `base` is held (duplicated) only because
    /// every session holds a destination; nothing is opened beneath it.
    pub fn discarding(base: BorrowedFd<'_>, index: Index, params: SessionParams, pool: Arc<Pool>) -> Result<Arc<Receive>> {
        let SessionParams { streams, block_size, token, placement, idle_timeout, throttle, counter, fsync, .. } = params;
        let dest_fd = rustix::io::fcntl_dupfd_cloexec(base, 0).map_err(|e| Error::io("dup", b"root", e.into()))?;
        let plan = BlockPlan::new(index.total(), block_size as u64);
        // No writer ever takes from it: the receivers drop their blocks (stream.rs).
        let (tx, _rx) = bounded::<WriteJob>(1);
        Ok(Arc::new(Receive {
            token,
            index,
            dest_fd,
            plan,
            streams,
            pool,
            life: Life::new(),
            receipt: Receipt {
                seen: Mutex::new(BlockSet::default()),
                pieces: Mutex::default(),
                bytes: counter,
                blocks: AtomicU64::new(0),
                throttle,
                twice: Default::default(),
            },
            writers: Writers { tx: Mutex::new(Some(tx)), handles: Mutex::new(Vec::new()), failed: AtomicBool::new(false) },
            files: Files {
                slots: Vec::new(),
                tag: hex(&token)[..12].to_owned(),
                tmpfile: Tmpfile::off("a bench session writes no files"),
                linked: AtomicU64::new(0),
                renamed: AtomicU64::new(0),
                mode_mask: 0,
                chown: false,
                owner_missed: AtomicU64::new(0),
                xattrs_missed: AtomicU64::new(0),
                space: None,
                dest_id: [0; 16],
            },
            digests: Digests::new(false, 0),
            resume: Resume { journal: None, carried: Carried::default(), earlier: false, pieces: false },
            started: Instant::now(),
            placement,
            idle_timeout,
            fsync,
            disk: DiskTimes::default(),
            discard: true,
            cpu_us: AtomicU64::new(0),
        }))
    }
}
