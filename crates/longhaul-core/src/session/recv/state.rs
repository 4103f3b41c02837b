//! The session's state machine: data connections attaching, ending and closing, the sender's
//! DONE or ERROR on the control connection, the first failure, and the wait for the end.
//! Owns `Life` (the state, its condvar, the stop flag, the sockets a failure shuts down), whose
//! transitions need nothing else of the session; what needs the journal or the tree stays on
//! `Receive`.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::stream::closed_early;
use super::Receive;
use crate::error::{Error, Result};
use crate::vfile::index::Kind;
use crate::wire::frame::{self, Msg, SummaryMsg};

/// How long a broken data connection waits for the sender's ERROR before failing the session
/// with its own, less telling, error.
const EXPLAIN_GRACE: Duration = Duration::from_secs(1);
/// How long, after DONE, a data connection STREAMS_OPENED counted may take to attach: the
/// lobby's grace for a token it does not know yet.
const LATE_STREAM_GRACE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(super) struct State {
    pub(super) attached: u16,
    pub(super) ended: u16,
    /// Data connections that closed before their STREAM_END (see `stream_closed`).
    pub(super) closed: u16,
    /// The control connection closed without DONE: the sender was killed or cancelled.
    pub(super) sender_gone: bool,
    pub(super) client_done: Option<u64>,
    pub(super) failure: Option<Error>,
    /// FEATURE_STREAMS_AUTO: the sender may attach streams up to the agreed count at any time
    /// before DONE, and says in STREAMS_OPENED how many it opened (`opened`).
    pub(super) auto: bool,
    pub(super) opened: Option<u16>,
    /// FEATURE_ENDGAME: the session ends at DONE once every block is here (`all_here`), whether
    /// or not every stream sent its STREAM_END (the sender shuts those whose blocks all
    /// arrived on others).
    pub(super) endgame: bool,
    pub(super) all_here: bool,
}

impl State {
    /// The data connections whose STREAM_END ends the session: with FEATURE_STREAMS_AUTO
    /// those the sender said it opened (unknown until it says), else the agreed count.
    fn expected(&self, agreed: u16) -> Option<u16> {
        if self.auto {
            self.opened
        } else {
            Some(agreed)
        }
    }

    /// The sender went away and every data connection it attached has closed or ended: nothing
    /// more will arrive, and the session fails (`Cancelled`) with what it has journaled.
    fn sender_finished(&self) -> bool {
        self.sender_gone && self.closed + self.ended >= self.attached
    }

    /// Whether the session is over: DONE came, and every stream ended (or, end-game, every
    /// block is here).
    fn complete(&self, agreed: u16) -> bool {
        self.client_done.is_some() && (self.expected(agreed) == Some(self.ended) || (self.endgame && self.all_here))
    }

    /// End-game: DONE came and some stream closed without STREAM_END, every stream has closed or
    /// ended, and blocks are still missing: they will never come.
    fn short(&self) -> bool {
        self.endgame && self.closed > 0 && !self.all_here && self.client_done.is_some() && self.closed + self.ended >= self.attached
    }
}

/// The session's state and the means to stop it, shared by every thread of the session.
pub(super) struct Life {
    pub(super) state: Mutex<State>,
    /// Wakes whoever waits for `state` to change.
    pub(super) cond: Condvar,
    /// Set at the first failure: every loop of the session looks at it.
    pub(super) stop: AtomicBool,
    /// The data connections, shut down at a failure so that their reads return.
    pub(super) sockets: Mutex<Vec<TcpStream>>,
}

impl Life {
    pub(super) fn new() -> Life {
        Life { state: Mutex::new(State::default()), cond: Condvar::new(), stop: AtomicBool::new(false), sockets: Mutex::new(Vec::new()) }
    }

    /// A data connection of a journaled session closed before its STREAM_END: the sender was
    /// killed or cancelled, and its kernel closes each connection only after delivering what it
    /// had sent. Unless the sender has said DONE (then it had nothing more to deliver, and the
    /// close is an error at once: waiting would be for ever, as the idle timeout stops counting
    /// at DONE), the session fails only once the control connection has closed too and every
    /// other stream has closed or ended, so that the blocks still buffered on the other streams
    /// are read, written and journaled, and a resume need not send them again. (Failing at the
    /// first close shut those streams down and threw their buffers away: up to the socket buffers
    /// of every stream per kill when the node's disk was slow.)
    pub(super) fn stream_closed(&self) {
        let mut st = self.state.lock().expect("state lock");
        st.closed += 1;
        let failure = if st.endgame {
            if st.short() {
                Some(closed_early())
            } else {
                st.sender_finished().then_some(Error::Cancelled)
            }
        } else if st.client_done.is_some() {
            Some(closed_early())
        } else if st.sender_finished() {
            Some(Error::Cancelled)
        } else {
            None
        };
        self.cond.notify_all();
        drop(st);
        if let Some(e) = failure {
            self.fail(e);
        }
    }

    /// Changes the session's state under its lock, wakes its waiters, and fails the session
    /// when the change leaves it with a sender gone and no data connection open.
    pub(super) fn update_state(&self, change: impl FnOnce(&mut State)) {
        let mut st = self.state.lock().expect("state lock");
        change(&mut st);
        let finished = st.sender_finished();
        let short = st.short();
        self.cond.notify_all();
        drop(st);
        if finished {
            self.fail(Error::Cancelled);
        } else if short {
            self.fail(closed_early());
        }
    }

    /// The sender said DONE: it has sent `bytes` in all.
    pub(super) fn client_done(&self, bytes: u64) {
        let mut st = self.state.lock().expect("state lock");
        st.client_done = Some(bytes);
        // DONE after a data connection closed without its STREAM_END: that stream's blocks
        // will never come (end-game: unless they came on others).
        let early = if st.endgame { st.short() } else { st.closed > 0 };
        let uncounted = st.auto && st.opened.is_none();
        self.cond.notify_all();
        drop(st);
        if early {
            self.fail(closed_early());
        } else if uncounted {
            self.fail(Error::Protocol("DONE before STREAMS_OPENED: the data connections were never counted".into()));
        }
    }

    /// The sender's STREAMS_OPENED: `count` data connections in all, of at most `agreed`.
    /// Fewer than have attached already, or a second count, is an error.
    pub(super) fn streams_opened(&self, count: u16, agreed: u16) {
        let mut st = self.state.lock().expect("state lock");
        let wrong = if !st.auto {
            Some("STREAMS_OPENED without FEATURE_STREAMS_AUTO".to_owned())
        } else if st.opened.is_some() || st.client_done.is_some() {
            Some("STREAMS_OPENED twice, or after DONE".to_owned())
        } else if count == 0 || count > agreed {
            Some(format!("STREAMS_OPENED says {count} data connections, of 1 to {agreed}"))
        } else if count < st.attached {
            Some(format!("STREAMS_OPENED says {count} data connections, {} attached", st.attached))
        } else {
            st.opened = Some(count);
            None
        };
        self.cond.notify_all();
        drop(st);
        if let Some(why) = wrong {
            self.fail(Error::Protocol(why));
        }
    }

    /// Records the first failure and stops every thread of the session.
    pub(super) fn fail(&self, e: Error) {
        let mut st = self.state.lock().expect("state lock");
        if st.failure.is_none() {
            st.failure = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.cond.notify_all();
        drop(st);
        for s in self.sockets.lock().expect("sockets lock").iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// A data connection broke: the sender may have stopped for a reason it is sending on the
    /// control connection (a source file that changed, a read that failed), which says more
    /// than the broken connection does. Waits for it (or any other failure) a moment first,
    /// unless the control connection has closed already: then no ERROR is coming, and a retry
    /// of the same push must not find this session still running.
    pub(super) fn fail_unless_explained(&self, e: Error) {
        let st = self.state.lock().expect("state lock");
        let (st, _) = self.cond.wait_timeout_while(st, EXPLAIN_GRACE, |st| st.failure.is_none() && !st.sender_gone).expect("state lock");
        let explained = st.failure.is_some();
        // The control connection closed without DONE: the sender went away (cancelled or
        // killed), and the break is its consequence, not a fault of the protocol or network.
        let gone = st.sender_gone;
        drop(st);
        if !explained {
            // A damaged block stays a damaged block: only a broken connection is the cancel's.
            let cancel = gone && !matches!(e, Error::Checksum { .. });
            self.fail(if cancel { Error::Cancelled } else { e });
        }
    }
}

impl Receive {
    /// The control connection closed without DONE. Without a journal nothing the streams still
    /// hold would be kept: fail at once. With one, let them deliver it first (`stream_closed`).
    fn sender_gone(&self) {
        if self.resume.journal.is_none() {
            return self.fail(Error::Cancelled);
        }
        self.life.update_state(|st| st.sender_gone = true);
    }

    /// FEATURE_STREAMS_AUTO: the agreed streams are a cap, attached at any time before DONE,
    /// and STREAMS_OPENED says how many came. Before READY.
    pub fn streams_auto(&self) {
        self.life.update_state(|st| st.auto = true);
    }

    /// FEATURE_ENDGAME: a block may come twice (stream.rs, `Twice`), and the session ends at
    /// DONE once every block is here. Before READY.
    pub fn endgame(&self) {
        let twice = &self.receipt.twice;
        twice.limit.store(crate::wire::frame::endgame_duplicates(self.streams), Ordering::Relaxed);
        twice.on.store(true, Ordering::Relaxed);
        // A transfer whose blocks are all held already is all here from the start.
        let here = self.receipt.seen.lock().expect("seen lock").len() >= self.plan.count();
        self.life.update_state(|st| {
            st.endgame = true;
            st.all_here = here;
        });
    }

    /// The sender said DONE: it has sent `bytes` in all.
    pub fn client_done(&self, bytes: u64) {
        self.life.client_done(bytes)
    }

    /// Records the first failure and stops every thread of the session.
    pub fn fail(&self, e: Error) {
        self.life.fail(e)
    }

    /// Watches the sender's control connection on a thread of its own while data flows: DONE,
    /// an ERROR, or the sender going away (a cancel).
    pub fn watch_control(self: &Arc<Self>, control: &TcpStream) -> Result<()> {
        let mut sock = control.try_clone().map_err(Error::net("cloning a socket"))?;
        let r = Arc::clone(self);
        std::thread::Builder::new()
            .name("lh-control".into())
            .spawn(move || {
                let watched = crate::panic::catch("control watcher", || loop {
                    match frame::read_msg(&mut sock, 0) {
                        Ok(Some(Msg::FileDigests { digests })) => match r.digests.take(r.index.entries(), digests) {
                            Ok(()) => continue,
                            Err(e) => r.fail(e),
                        },
                        Ok(Some(Msg::Done { bytes, .. })) => r.client_done(bytes),
                        Ok(Some(Msg::StreamsOpened { count })) => {
                            r.life.streams_opened(count, r.streams);
                            continue;
                        }
                        // A cancel is the sender going away, said: its streams still deliver
                        // what they carry, for the resume, and the session ends E_CANCELLED.
                        Ok(Some(Msg::Error { code, .. })) if code == "E_CANCELLED" => r.sender_gone(),
                        Ok(Some(Msg::Error { code, message })) => r.fail(Error::remote(&code, &message)),
                        Ok(Some(m)) => r.fail(Error::Protocol(format!("unexpected {:?} frame on the control connection", m.frame_type()))),
                        Ok(None) => r.sender_gone(),
                        Err(e) => r.fail(e),
                    }
                    break Ok(());
                });
                if let Err(e) = watched {
                    r.fail(e);
                }
            })
            .map_err(|e| Error::io("spawn", b"control watcher", e))?;
        Ok(())
    }

    /// Waits for the end of the session, then either completes the tree or removes every
    /// temporary file it made.
    pub fn wait_and_finish(&self) -> Result<SummaryMsg> {
        {
            // Progress is bytes arriving or streams attaching and ending; none for the idle
            // timeout means the sender is gone or stuck, and the session must not hold its
            // buffers and threads any longer.
            let progress = |st: &State| (self.receipt.bytes.load(Ordering::Relaxed), st.attached, st.ended);
            let mut st = self.life.state.lock().expect("state lock");
            let mut last = (progress(&st), Instant::now());
            while st.failure.is_none() && !st.complete(self.streams) {
                st = self.life.cond.wait_timeout(st, Duration::from_millis(200)).expect("state lock").0;
                let now = progress(&st);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if st.client_done.is_none() && last.1.elapsed() >= self.idle_timeout {
                    drop(st);
                    self.fail(Error::Timeout("no data from the sender within the idle timeout"));
                    st = self.life.state.lock().expect("state lock");
                } else if let Some(expected) = st.expected(self.streams).filter(|&n| n > st.attached && st.client_done.is_some()) {
                    // Agreed (or said opened), and DONE, but not all here: a connection still in
                    // the lobby gets the grace an unknown token gets there, then the count is
                    // wrong. (Without this a sender that attached fewer than agreed held the
                    // session, its reservation and its journal for ever after DONE.)
                    if last.1.elapsed() >= LATE_STREAM_GRACE.min(self.idle_timeout) {
                        let (attached, said) = (st.attached, if st.auto { "STREAMS_OPENED said" } else { "MANIFEST agreed" });
                        drop(st);
                        self.fail(Error::Protocol(format!("{said} {expected} data connections, {attached} attached")));
                        st = self.life.state.lock().expect("state lock");
                    }
                }
            }
        }
        // No more jobs: let the writers drain what is queued, then wait for them. Taken before
        // the sockets are shut, so that a data connection attaching now finds no queue and
        // ends, rather than registering after the shutdown and holding the writers open.
        self.writers.tx.lock().expect("tx lock").take();
        // End-game: streams the sender shut may still be delivering copies nobody needs; their
        // threads hold the writers' queue open until their reads return.
        if self.life.state.lock().expect("state lock").all_here {
            for s in self.life.sockets.lock().expect("sockets lock").iter() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        let handles = std::mem::take(&mut *self.writers.handles.lock().expect("writers lock"));
        for h in handles {
            if let Err(p) = h.join() {
                self.fail(crate::panic::from_payload("writer", p));
            }
        }
        let result = self.check_and_finish();
        if let Err(e) = result {
            self.fail(e);
        }
        let failure = self.life.state.lock().expect("state lock").failure.take();
        if let Some(e) = failure {
            // A source that changed gives the next attempt another index, which this journal
            // cannot serve: its temporary files would only be left behind.
            let stale = e.code() == "E_SOURCE_CHANGED";
            match &self.resume.journal {
                Some(j) if !stale => {
                    // Kept for the next attempt, which the journal tells what they hold; with
                    // none kept, the journal has nothing a next attempt could use.
                    self.close_temps();
                    if !self.keep_temps() {
                        j.remove();
                    }
                }
                _ => self.discard_temps(),
            }
            return Err(e);
        }
        if self.resume.earlier {
            self.remove_leftovers();
        }
        if let Some(j) = &self.resume.journal {
            j.remove();
        }
        Ok(SummaryMsg {
            bytes: self.receipt.bytes.load(Ordering::Relaxed),
            files: self.index.count(Kind::File) as u64,
            dirs: self.index.count(Kind::Dir) as u64,
            symlinks: self.index.count(Kind::Symlink) as u64,
            blocks: self.receipt.blocks.load(Ordering::Relaxed),
            micros: self.started.elapsed().as_micros() as u64,
            verified: self.digests.verified.load(Ordering::Relaxed),
            disk: Some(self.disk.stats()),
            cpu_us: self.discard.then(|| self.cpu_us.load(Ordering::Relaxed)),
            owner_not_kept: self.index.owners().map(|_| self.files.owner_missed.load(Ordering::Relaxed)),
            xattrs_not_kept: self.index.has_xattrs().then(|| self.files.xattrs_missed.load(Ordering::Relaxed)),
        })
    }
}
