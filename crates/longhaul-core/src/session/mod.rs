//! L4: one transfer, by role. A session never imports `node` or `client`: both drive it.

pub mod progress;
pub mod recv;
pub mod send;
