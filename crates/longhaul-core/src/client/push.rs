//! A push: this side scans a source and sends it to a node (`send`), with the engine of
//! session/send.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use crate::session::mirror::Planned;
use crate::session::progress::{Progress, Watch};
use crate::session::send::{scan_and_send, SendOptions, SendSummary};

/// Sends `source` (a file or a directory) to the node at `addr`, into `dest` under its root.
/// With `opts.dry_run`, use `plan`.
pub fn send(
    source: &Path,
    addr: &str,
    dest: &[u8],
    opts: &SendOptions,
    cancel: &AtomicBool,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<SendSummary> {
    check(dest, opts)?;
    if opts.dry_run {
        return Err(Error::Usage("a dry run returns a plan: call plan".into()));
    }
    scan_and_send(source, addr, dest, opts, Watch { cancel, on_progress }, &|_| Ok(()))
}

/// A dry run of `send` (`opts.dry_run`): what the node would receive, update and delete.
pub fn plan(source: &Path, addr: &str, dest: &[u8], opts: &SendOptions, cancel: &AtomicBool) -> Result<Planned> {
    check(dest, opts)?;
    crate::session::send::plan(source, addr, dest, opts, Watch { cancel, on_progress: &|_| {} })
}

fn check(dest: &[u8], opts: &SendOptions) -> Result<()> {
    if opts.streams == 0 {
        return Err(Error::Usage("streams must be at least 1".into()));
    }
    if !crate::limits::BLOCK_SIZE.contains(opts.block_size as u64) {
        return Err(Error::Usage(format!("block size {} is outside 4 KiB..=64 MiB", opts.block_size)));
    }
    if !dest.is_empty() {
        crate::vfile::index::check_path(dest)?;
    }
    Ok(())
}
