//! L5, the client side of every operation: push (`send`), pull (`get`), third-party copy
//! (`copy`), a network-only bench (`bench`), and the requests a connection can repeat (LIST,
//! READV, STATS). It drives the session layer and never imports `node`.

mod bench;
mod copy;
mod pull;
mod push;
mod requests;

use crate::wire::frame::SummaryMsg;

pub use bench::bench;
pub use copy::{copy, CopyOptions};
pub use pull::{get, GetOptions};
pub use push::{plan, send};
pub use requests::{Connection, ReadRequest};

/// What a pull or a copy reports: the receiving side's summary (the bytes it received this
/// time) and the size of the whole tree, so that bytes already there can be told from bytes
/// that travelled.
#[derive(Clone, Debug)]
pub struct Received {
    pub summary: SummaryMsg,
    pub bytes_total: u64,
    /// A pull's entries whose owner or group was asked for (`--owner`, `--group`) and not
    /// set here, and why; 0 and "" for a copy.
    pub owner_not_kept: (u64, &'static str),
    /// A pull's entries with an extended attribute (`--xattrs`) not set here, and why.
    pub xattrs_not_kept: (u64, &'static str),
}

impl Received {
    pub fn new(summary: SummaryMsg, bytes_total: u64) -> Received {
        Received { summary, bytes_total, owner_not_kept: (0, ""), xattrs_not_kept: (0, "") }
    }
}
