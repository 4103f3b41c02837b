//! A push: this side scans a source and sends it to a node (`send`), with the engine of
//! session/send.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use crate::session::progress::{Progress, Watch};
use crate::session::send::{scan_and_send, SendOptions, SendSummary};

/// Sends `source` (a file or a directory) to the node at `addr`, into `dest` under its root.
pub fn send(
    source: &Path,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SendSummary> {
    if opts.streams == 0 {
        return Err(Error::Usage("streams must be at least 1".into()));
    }
    if !crate::limits::BLOCK_SIZE.contains(opts.block_size as u64) {
        return Err(Error::Usage(format!("block size {} is outside 4 KiB..=64 MiB", opts.block_size)));
    }
    if !dest.is_empty() {
        crate::vfile::index::check_path(dest)?;
    }
    scan_and_send(source, addr, dest, opts, Watch { cancel, on_progress }, &|_| Ok(()))
}
