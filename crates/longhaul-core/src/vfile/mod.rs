//! L2: the virtual file — a tree as one byte stream: its content index, the scan that builds
//! it, and the block arithmetic over it.

pub mod blocks;
pub mod blockset;
pub mod filter;
pub mod held;
pub mod index;
pub mod scan;
pub mod segment;
