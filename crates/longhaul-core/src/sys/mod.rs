//! L1: the operating system, one operation per file with its fallback beside it. Imports only
//! the L0 modules (error, hash, util, panic) and its own files.

pub mod beneath;
pub mod congestion;
pub mod cputime;
pub mod net;
pub mod probe;
pub mod procio;
pub mod sendfile;
pub mod source;
pub mod state_dir;
pub mod tcpinfo;
pub mod tls;
pub mod tmpfile;
pub mod write;
