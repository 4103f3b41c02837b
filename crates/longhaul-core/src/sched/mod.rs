//! L3: the schedulers that run a transfer's block work, and the timeline of what its threads
//! were doing.

pub mod adaptive;
pub mod timeline;
