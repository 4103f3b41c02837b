//! L5, the client side of every operation but a push (`crate::send`, for now in
//! session/send): pull (`get`), third-party copy (`copy`), and the requests a connection can
//! repeat (LIST, READV, STATS). It drives the session layer and never imports `node`.

mod copy;
mod pull;
mod requests;

pub use copy::copy;
pub use pull::{get, GetOptions};
pub use requests::{Connection, ReadRequest};
