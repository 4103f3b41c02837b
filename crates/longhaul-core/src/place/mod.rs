//! L2: where threads run — the machine's topology read from sysfs and the placement chosen
//! over it.

pub mod placement;
pub mod topology;
