//! L5, the client side of every operation: push (`send`), pull (`get`), third-party copy
//! (`copy`), and the requests a connection can repeat (LIST, READV, STATS). It drives the
//! session layer and never imports `node`.

mod copy;
mod pull;
mod push;
mod requests;

pub use copy::{copy, CopyOptions};
pub use pull::{get, GetOptions};
pub use push::send;
pub use requests::{Connection, ReadRequest};
