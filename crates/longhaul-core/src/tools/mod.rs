//! L5: tools beside the transfers — a local tree comparison and the machine's doctor report.

pub mod compare;
pub mod doctor;
