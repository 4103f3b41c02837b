//! longhaul's engine. It moves a file or a directory tree from a sender to a storage node over
//! one control connection and N data connections, as one virtual byte stream described by a
//! content index (see docs/ARCHITECTURE.md and docs/PROTOCOL.md). No Node.js in here: the
//! `longhaul-node` crate binds it.

pub mod adaptive;
pub mod auth;
pub mod beneath;
mod blockset;
pub mod budget;
pub mod client;
pub mod compare;
mod conflict;
pub mod conn_limit;
pub mod copy_to;
pub mod doctor;
pub mod error;
pub mod frame;
pub mod hash;
pub mod index;
pub mod journal;
pub mod ledger;
pub mod limits;
pub mod net;
pub mod node_state;
pub mod node_stats;
pub mod panic;
pub mod placement;
pub mod pool;
pub mod probe;
pub mod rate;
pub mod readv;
pub mod receive;
pub mod scan;
#[cfg(test)]
mod scratch;
pub mod sender;
pub mod server;
pub mod state_dir;
pub mod timeline;
pub mod tls;
pub mod topology;
pub mod transfer;

pub use error::{Error, Result};
pub use node_stats::NodeStats;
pub use sender::{send, Digest, SchedulerKind, SendOptions, SendSummary, ThreadPin, Verify};
pub use server::{ServeOptions, Server};
pub use transfer::{FastPaths, Progress};
