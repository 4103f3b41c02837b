//! The state the threads of one send share: the first failure wins, tells the receiver when it
//! is this side's own, and stops every other thread by shutting the data connections.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::sys::source::{CHANGED_WHILE_READ, SHRANK};
use crate::wire::frame::{self, Msg};

/// State shared by the threads of one transfer: the first failure wins and stops the others.
pub(super) struct Run {
    pub(super) stop: AtomicBool,
    pub(super) failure: Mutex<Option<Error>>,
    /// The data connections, shut at a failure (streams opened during the run join it).
    pub(super) sockets: Mutex<Vec<TcpStream>>,
    pub(super) control: TcpStream,
    /// Held while a frame is written on `control`: the failing thread's ERROR and the main
    /// thread's DONE or FILE_DIGESTS must not interleave.
    pub(super) control_write: Mutex<()>,
}

/// A failure of this side's own making (the source changed or could not be read), which the
/// receiver is told of in an ERROR and which no error the receiver reports back replaces:
/// what the receiver sees next (a data connection shut inside a block) is its consequence.
pub(super) fn is_local_cause(e: &Error) -> bool {
    matches!(e, Error::SourceChanged { .. } | Error::Io { .. } | Error::NotFound { .. } | Error::Panic { .. })
}

/// Whether failure `new`, coming after `old`, says better what went wrong. A panic is a bug, and
/// says more than the broken stream it may have come after; a source found changed says more
/// than the receiver's checksum failure of a block read from it (sendfile reads a block again
/// after it was hashed).
fn outranks(new: &Error, old: &Error) -> bool {
    match new {
        Error::Panic { .. } => !matches!(old, Error::Cancelled) && !is_local_cause(old),
        Error::SourceChanged { .. } => is_checksum(old),
        _ => false,
    }
}

/// The receiver's verdict on a block: its checksum did not match.
pub(super) fn is_checksum(e: &Error) -> bool {
    matches!(e, Error::Checksum { .. }) || matches!(e, Error::Remote { code, .. } if code == "E_CHECKSUM")
}

/// Whether a changed source, by its reason (or the message a peer's ERROR carried it in), is a
/// file that changed as it was read, which a fresh scan sends whole.
pub(crate) fn resendable(why: &str) -> bool {
    why.contains(CHANGED_WHILE_READ) || why.contains(SHRANK)
}

impl Run {
    pub(super) fn fail(&self, e: Error) {
        let mut f = self.failure.lock().expect("failure lock");
        let first = f.as_ref().is_none_or(|old| outranks(&e, old));
        // A cancel is told too: without it the node sees only its data connections break and
        // logs the user's Ctrl-C as a protocol error.
        let tell = first && (is_local_cause(&e) || matches!(e, Error::Cancelled));
        let msg = tell.then(|| Msg::error(&e));
        if first {
            *f = Some(e);
        }
        drop(f);
        // The receiver learns why before its data connections close under it (a node that
        // fails a pull tells the client so; a client tells the node, for its log and metrics).
        if let Some(m) = msg {
            let _ = self.write_control(&m);
        }
        self.halt();
    }
    /// The node's ERROR: the cause of whatever broke here (a stream it shut after a bad block,
    /// a full disk), so it replaces a local failure unless the user cancelled or the failure
    /// was this side's own (`is_local_cause`).
    pub(super) fn explain(&self, e: Error) {
        let mut f = self.failure.lock().expect("failure lock");
        if !f.as_ref().is_some_and(|f| matches!(f, Error::Cancelled) || is_local_cause(f)) {
            *f = Some(e);
        }
        drop(f);
        self.halt();
    }
    pub(super) fn write_control(&self, msg: &Msg) -> Result<()> {
        let _g = self.control_write.lock().expect("control lock");
        frame::write_msg(&mut &self.control, msg)
    }
    pub(super) fn halt(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            for s in self.sockets.lock().expect("sockets lock").iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
    /// Takes a stream opened during the run into those a failure shuts; false if the run has
    /// stopped already (under the same lock `halt` shuts them by).
    pub(super) fn adopt(&self, sock: &TcpStream) -> bool {
        let mut all = self.sockets.lock().expect("sockets lock");
        match sock.try_clone() {
            Ok(c) if !self.stopped() => {
                all.push(c);
                true
            }
            _ => false,
        }
    }
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
