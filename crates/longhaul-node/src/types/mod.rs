//! Types that cross into JavaScript, one small file each; `convert.rs` builds them from core's.
//! Byte counts are `number` (f64): exact up to 2^53, 8 PiB.

mod check;
mod client_options;
mod defaults;
mod difference;
mod list_entry;
mod mirror;
mod network;
mod node_stats;
mod placement;
mod progress;
mod raw_entry;
mod readv;
mod received;
mod receiver_disk;
mod sample;
mod scheduler;
mod send_options;
mod send_summary;
mod serve_options;

pub use check::*;
pub use client_options::*;
pub use defaults::*;
pub use difference::*;
pub use list_entry::*;
pub use mirror::*;
pub use network::*;
pub use node_stats::*;
pub use placement::*;
pub use progress::*;
pub use raw_entry::*;
pub use readv::*;
pub use received::*;
pub use receiver_disk::*;
pub use sample::*;
pub use scheduler::*;
pub use send_options::*;
pub use send_summary::*;
pub use serve_options::*;
