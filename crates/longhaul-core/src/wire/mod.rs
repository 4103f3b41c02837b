//! L2: the protocol as data — the frame codec, features and limits, authentication, the readv
//! codec. No sockets or files here: callers hand it bytes and readers.

pub mod auth;
pub mod frame;
pub mod readv;
