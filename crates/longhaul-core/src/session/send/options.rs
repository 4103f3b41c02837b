//! What a send is asked to do: the options and their defaults, and the thread and pool sizes
//! they come to.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::place::placement::{CoreSpec, PinMode};
use crate::sched::cpus;
pub use crate::sched::SchedulerKind;
use crate::sys::congestion::Congestion;
use crate::vfile::blocks::BlockPlan;
use crate::vfile::filter::Filter;

/// 1 MiB: large enough that per-block costs (a header, a syscall, a channel hop, a journal
/// record) stay under 1% of a block's time, small enough that a block stays in a core's L2
/// cache between the node's receiving thread (the copy out of the socket, XXH3) and its writer
/// (the copy into the page cache). Against 4 MiB blocks on the 2-core loopback machines
/// (bench/RESULTS.md, "block size"): never slower; one large file 3-14% faster (the node's CPU
/// 2-22% lower), the mixed tree 2-10%, 100,000 small files the same. It also bounds what an
/// interruption resends (a block per stream) and the sender's pool (6 MiB for 2 streams).
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// Chosen by measurement on the 2-core loopback machines (bench/RESULTS.md): beyond 2 streams
/// the extra threads only add CPU where the cores are already busy; 2 streams keep a writer on
/// the far side busy while one block is in flight on the other.
pub const DEFAULT_STREAMS: u16 = 2;

/// Processing applied to every block besides its XXH3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Digest {
    #[default]
    None,
    /// A BLAKE3 of every block, sent with it and checked by the node. Turns sendfile off: the
    /// bytes must pass through a buffer to be hashed.
    Blake3,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        match s {
            "none" => Ok(Digest::None),
            "blake3" => Ok(Digest::Blake3),
            _ => Err(Error::Usage(format!("digest must be none or blake3, not {s:?}"))),
        }
    }
}

/// How the receiver proves the data arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verify {
    /// XXH3 of every block on arrival (always on).
    #[default]
    Block,
    /// Besides the blocks' XXH3: the sender reads every file once more for a BLAKE3 of it
    /// (FILE_DIGESTS), and the receiver reads every file back after writing it and compares
    /// before the rename (GridFTP's `-verify-checksum`, xrdcp's `--cksum`).
    Full,
    /// No checksum at all (BLOCK_RAW): a bench's `--verify none` only, to measure the path
    /// without the hashing. `parse` does not take it: no transfer of files may go unchecked.
    None,
}

impl Verify {
    pub fn parse(s: &str) -> Result<Verify> {
        match s {
            "block" => Ok(Verify::Block),
            "full" => Ok(Verify::Full),
            _ => Err(Error::Usage(format!("verify must be block or full, not {s:?}"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Verify::Block => "block",
            Verify::Full => "full",
            Verify::None => "none",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SendOptions {
    /// The data streams; with `streams_auto`, those it starts with.
    pub streams: u16,
    /// `--streams auto`: more streams opened during a push while they raise the goodput
    /// (`tune.rs`); a pull, a copy and a bench keep `streams`.
    pub streams_auto: bool,
    pub block_size: u32,
    /// Buffers in the sender's pool; 0 picks what the scheduler needs.
    pub pool_buffers: usize,
    /// Pipelined disk-reader threads; 0 picks `min(streams, 4).max(2)`.
    pub readers: usize,
    /// Pipelined processing threads; 0 picks 1, or one per CPU with a BLAKE3 digest.
    pub processors: usize,
    /// Adaptive worker threads; 0 picks CPUs + 2.
    pub workers: usize,
    pub scheduler: SchedulerKind,
    pub digest: Digest,
    pub cores: Option<CoreSpec>,
    pub pin: PinMode,
    /// Where sysfs and procfs are read from (`/`; tests point it at a fake tree).
    pub sysfs_root: PathBuf,
    pub scan_threads: usize,
    pub connect_timeout: Duration,
    /// The node must answer the handshake, and take each block, within this.
    pub io_timeout: Duration,
    pub progress_interval: Duration,
    pub timeline_interval: Duration,
    /// The shared token's key; `None` talks only to a node that asks for none.
    pub secret: Option<crate::wire::auth::Secret>,
    /// TLS to the node and how to trust it; `None` is plaintext.
    pub tls: Option<crate::sys::tls::ClientTls>,
    /// How long the receiver may take to answer DONE; `None` waits (a client can cancel; a
    /// node sending for a pull cannot, so it sets this).
    pub summary_timeout: Option<Duration>,
    /// Ask the node to resume from its journal of an earlier attempt at this push (PLAN), and
    /// to skip files it already holds with the same size and mtime; `false` sends everything.
    pub resume: bool,
    /// Decide what the node holds already by content (`--checksum`): both ends hash every file
    /// that could be equal and only those that differ are sent. Needs `resume`.
    pub checksum: bool,
    /// Keep the numeric owner (`--owner`) and group (`--group`) of every entry: set by a node
    /// running as root, named as not kept otherwise.
    pub owner: bool,
    pub group: bool,
    /// Keep extended attributes (`--xattrs`): user.* always, the others (ACLs among them)
    /// where the node runs as root; named as not kept otherwise.
    pub xattrs: bool,
    pub verify: Verify,
    /// A node sending from its root (a pull, a copy) names the root here: the source must lie
    /// under it, and the directory holding it is opened from the root one component at a time
    /// without following symlinks, so one swapped in after the node's checks cannot lead it
    /// outside. `None` for a client, which sends what the user named.
    pub confine: Option<PathBuf>,
    /// The TCP congestion control of the data streams (`auto`: BBR where it can be had).
    pub congestion: Congestion,
    /// Entries of the source to leave out (`--exclude`/`--include`); none by default.
    pub filter: Filter,
    /// Bytes per second for all the transfer's streams together (a client's `--rate`); a
    /// node sending for a pull applies its own limits instead.
    pub rate: Option<u64>,
    /// Remove what the destination holds and the source does not, once the transfer verified
    /// (`--delete`; what `filter` leaves out is kept).
    pub delete: bool,
    /// Only ask the node what the transfer would do (`--dry-run`): nothing is sent or written.
    pub dry_run: bool,
    /// `--delete` from a source that lists nothing proceeds (`--force`); else it is refused.
    pub force: bool,
    /// A bench (`client::bench`): blocks come from a pattern in memory, not from the source's
    /// files, and the node (FEATURE_DISCARD) checks and discards them.
    pub generated: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            streams: DEFAULT_STREAMS,
            streams_auto: false,
            block_size: DEFAULT_BLOCK_SIZE,
            pool_buffers: 0,
            readers: 0,
            processors: 0,
            workers: 0,
            scheduler: SchedulerKind::Auto,
            digest: Digest::None,
            cores: None,
            pin: PinMode::Auto,
            sysfs_root: PathBuf::from("/"),
            scan_threads: cpus().min(8),
            connect_timeout: Duration::from_secs(10),
            // As the node's idle timeout: a 4 MiB block must leave within it.
            io_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(100),
            timeline_interval: Duration::from_millis(5),
            secret: None,
            tls: None,
            summary_timeout: None,
            resume: true,
            checksum: false,
            owner: false,
            group: false,
            xattrs: false,
            verify: Verify::Block,
            congestion: Congestion::Auto,
            confine: None,
            filter: Filter::default(),
            rate: None,
            delete: false,
            dry_run: false,
            force: false,
            generated: false,
        }
    }
}

/// The sender's pool for `total` bytes over `streams` streams: (bytes per buffer, buffers).
/// A buffer holds one block, or the whole data when that is less; there are never more
/// buffers than blocks (a 5-byte file gets one page). `transmit` allocates exactly this, and a
/// node reserves it from its memory budget first.
pub(crate) fn pool_shape(opts: &SendOptions, streams: u16, total: u64) -> (usize, usize) {
    let (readers, processors, workers) = thread_counts(opts, streams);
    let wanted = if opts.pool_buffers == 0 { (2 * streams as usize + readers + processors).max(workers + 4) } else { opts.pool_buffers };
    let bs = opts.block_size as u64;
    let blocks = BlockPlan::new(total, bs).count().max(1);
    let page = rustix::param::page_size() as u64;
    let buf = bs.min(total.max(1)).div_ceil(page) * page;
    (buf as usize, wanted.min(usize::try_from(blocks).unwrap_or(usize::MAX)))
}

/// Readers, processors and adaptive workers, as `opts` asks or as picked for `streams`.
pub(super) fn thread_counts(opts: &SendOptions, streams: u16) -> (usize, usize, usize) {
    let readers = if opts.readers == 0 { (streams as usize).clamp(2, 4) } else { opts.readers };
    let processors = match (opts.processors, opts.digest) {
        (0, Digest::None) => 1,
        (0, Digest::Blake3) => cpus(),
        (n, _) => n,
    };
    let workers = if opts.workers == 0 { cpus() + 2 } else { opts.workers };
    (readers, processors, workers)
}
