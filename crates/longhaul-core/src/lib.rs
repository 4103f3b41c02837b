//! longhaul's engine. It moves a file or a directory tree from a sender to a storage node over
//! one control connection and N data connections, as one virtual byte stream described by a
//! content index (see docs/ARCHITECTURE.md and docs/PROTOCOL.md). No Node.js in here: the
//! `longhaul-node` crate binds it.
//!
//! Layers (docs/ARCHITECTURE.md; `scripts/layers.mjs` checks them): each module imports only
//! from layers below it and from inside its own folder.
//! L0 error, hash, util, panic · L1 sys · L2 wire, vfile, place · L3 pool, rate, ledger, sched ·
//! L4 session · L5 node, client, tools.

pub mod error;
pub mod hash;
pub mod limits;
pub mod panic;
pub mod util;

pub mod sys;

pub mod place;
pub mod vfile;
pub mod wire;

pub mod ledger;
pub mod pool;
pub mod rate;
pub mod sched;

pub mod session;

pub mod client;
pub mod node;
pub mod tools;

#[cfg(test)]
mod scratch;

pub use client::bench;
pub use client::send;
pub use error::{Error, Result};
pub use node::stats::NodeStats;
pub use node::{ServeOptions, Server};
pub use session::progress::{FastPaths, Progress};
pub use session::send::{Digest, SchedulerKind, SendOptions, SendSummary, ThreadPin, Verify};
