//! What a storage node knows about itself: the table of active and recent transfers, bytes
//! per peer, errors by code, and the stored-bytes account checked against its capacity. The
//! account is kept in `<root>/.longhaul/stored` so that it survives a restart; without that
//! file (a new root, or `rescan`) the root is walked once at start. The file is written and
//! read through the state directory's descriptor (state_dir.rs), never by path. How the
//! account is kept while transfers run is ledger.rs's.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::ledger::{Grant, Ledger, Saved};
use crate::sys::state_dir::StateDir;
pub use crate::sys::state_dir::STATE_DIR;

/// The stored-bytes account's file in the state directory.
const STORED: &str = "stored";
/// Finished transfers kept in the table.
const RECENT: usize = 100;
/// Refused connections kept until the node's owner takes them (a flood of bad logins keeps the
/// newest).
const REFUSALS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A client pushed to this node.
    In,
    /// A client pulled from this node.
    Out,
    /// This node pushed to another node for a client (third-party copy).
    Copy,
    /// A client's bench: generated data checked and discarded (`longhaul bench`).
    Bench,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Copy => "copy",
            Direction::Bench => "bench",
        }
    }
}

/// One live transfer; `done` is updated by the threads moving its bytes.
pub struct Active {
    pub id: u64,
    pub peer: String,
    pub direction: Direction,
    pub path: String,
    pub bytes_total: AtomicU64,
    pub files_total: AtomicU64,
    pub streams: u16,
    pub started_unix_ms: u64,
    started: Instant,
    pub done: Arc<AtomicU64>,
    /// Entries a push with `--delete` removed from its destination.
    deleted: AtomicU64,
}

/// A row of the table, live or finished.
#[derive(Clone, Debug)]
pub struct TransferRow {
    pub id: u64,
    pub peer: String,
    pub direction: &'static str,
    pub path: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_total: u64,
    pub streams: u16,
    pub started_unix_ms: u64,
    pub seconds: f64,
    /// Bytes per second over the transfer so far.
    pub rate: f64,
    /// `None` while active; `ok` or `failed`.
    pub outcome: Option<&'static str>,
    pub code: Option<String>,
    /// The error's message, when failed.
    pub message: Option<String>,
    /// Entries `--delete` removed (files, symlinks and directories).
    pub deleted: u64,
}

impl Active {
    /// Counts `n` entries removed by `--delete`.
    pub fn deleted(&self, n: u64) {
        self.deleted.fetch_add(n, Ordering::Relaxed);
    }

    fn row(&self) -> TransferRow {
        let seconds = self.started.elapsed().as_secs_f64();
        let done = self.done.load(Ordering::Relaxed);
        TransferRow {
            id: self.id,
            peer: self.peer.clone(),
            direction: self.direction.name(),
            path: self.path.clone(),
            bytes_done: done,
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            streams: self.streams,
            started_unix_ms: self.started_unix_ms,
            seconds,
            rate: if seconds > 0.0 { done as f64 / seconds } else { 0.0 },
            outcome: None,
            code: None,
            message: None,
            deleted: self.deleted.load(Ordering::Relaxed),
        }
    }
}

/// A connection refused before it became a session: a failed login (E_AUTH, E_TLS), a
/// handshake that timed out or broke the protocol. The node's owner logs these (`take_refusals`).
#[derive(Clone, Debug)]
pub struct Refusal {
    pub peer: String,
    pub code: String,
    pub message: String,
    pub unix_ms: u64,
}

#[derive(Default, Clone, Copy)]
pub struct PeerBytes {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub struct NodeState {
    state_dir: StateDir,
    ledger: Arc<Ledger>,
    /// What the account file holds now.
    last_saved: Mutex<String>,
    next_id: AtomicU64,
    active: Mutex<Vec<Arc<Active>>>,
    recent: Mutex<VecDeque<TransferRow>>,
    peers: Mutex<BTreeMap<String, PeerBytes>>,
    errors: Mutex<BTreeMap<String, u64>>,
    refusals: Mutex<VecDeque<Refusal>>,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
}

impl NodeState {
    /// Opens the state directory under `root_fd` (the root at `root`), and loads the
    /// stored-bytes account, or walks the root when there is none (or `rescan`).
    pub fn open(root: &Path, root_fd: BorrowedFd<'_>, capacity: Option<u64>, rescan: bool) -> Result<NodeState> {
        let state_dir = StateDir::open(root_fd)?;
        let saved = if rescan {
            None
        } else {
            state_dir.read_small(STORED, 256).and_then(|b| String::from_utf8(b).ok()).and_then(|s| Saved::parse(&s))
        };
        let saved = match saved {
            Some(v) => v,
            None => tally(root),
        };
        let s = NodeState {
            state_dir,
            ledger: Ledger::new(capacity, saved),
            last_saved: Mutex::new(String::new()),
            next_id: AtomicU64::new(1),
            active: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::new()),
            peers: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            refusals: Mutex::new(VecDeque::new()),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        };
        s.persist();
        Ok(s)
    }

    /// Saves the account, unless it is what was saved last (a push refused before it made
    /// anything); a failure (a full disk) leaves the last saved one, which a restart with
    /// `rescan` corrects.
    fn persist(&self) {
        let text = self.ledger.saved();
        let mut last = self.last_saved.lock().expect("saved lock");
        if *last != text && self.state_dir.write_atomic(STORED, text.as_bytes()).is_ok() {
            *last = text;
        }
    }

    /// The node's state directory, held open.
    pub fn state_dir(&self) -> &StateDir {
        &self.state_dir
    }

    /// Saves the account (after a transfer ended, or parts were reclaimed).
    pub fn save(&self) {
        let _one = self.ledger.saving();
        self.persist();
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn stored(&self) -> u64 {
        self.ledger.stored()
    }

    pub fn capacity(&self) -> Option<u64> {
        self.ledger.capacity()
    }

    pub fn reserved(&self) -> u64 {
        self.ledger.reserved()
    }

    /// Temporary files counted in `stored` (those of running pushes and those kept for a
    /// resume), and their bytes.
    pub fn parts(&self) -> (u64, u64) {
        self.ledger.parts()
    }

    /// Reserves `needed` bytes for a push, or refuses with E_CAPACITY naming needed and free
    /// bytes.
    pub fn reserve(&self, needed: u64) -> Result<Arc<Grant>> {
        self.ledger.reserve(needed)
    }

    /// Bytes of files replaced or removed under the root (they no longer count as stored).
    pub fn release(&self, bytes: u64) {
        self.ledger.release(bytes);
    }

    pub fn begin(&self, peer: IpAddr, direction: Direction, path: &[u8], bytes_total: u64, files_total: u64, streams: u16) -> Arc<Active> {
        let a = Arc::new(Active {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer: peer.to_string(),
            direction,
            path: String::from_utf8_lossy(path).into_owned(),
            bytes_total: AtomicU64::new(bytes_total),
            files_total: AtomicU64::new(files_total),
            streams,
            started_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            started: Instant::now(),
            done: Arc::new(AtomicU64::new(0)),
            deleted: AtomicU64::new(0),
        });
        self.active.lock().expect("active lock").push(Arc::clone(&a));
        a
    }

    /// Moves a transfer to the recent table and counts it as completed or failed. Its error is
    /// counted by code where it is answered (`count_error`), once.
    pub fn end(&self, a: &Arc<Active>, result: std::result::Result<(), &Error>) {
        self.active.lock().expect("active lock").retain(|x| !Arc::ptr_eq(x, a));
        let mut row = a.row();
        row.outcome = Some(if result.is_ok() { "ok" } else { "failed" });
        row.code = result.err().map(|e| e.code().to_owned());
        row.message = result.err().map(|e| e.to_string());
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = self.recent.lock().expect("recent lock");
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(row);
    }

    pub fn count_bytes(&self, peer: IpAddr, bytes_in: u64, bytes_out: u64) {
        let mut p = self.peers.lock().expect("peers lock");
        let e = p.entry(peer.to_string()).or_default();
        e.bytes_in += bytes_in;
        e.bytes_out += bytes_out;
    }

    pub fn count_error(&self, code: &str) {
        *self.errors.lock().expect("errors lock").entry(code.to_owned()).or_default() += 1;
    }

    /// Remembers a connection refused in its handshake, for `take_refusals`.
    pub fn note_refusal(&self, peer: IpAddr, e: &Error) {
        let mut r = self.refusals.lock().expect("refusals lock");
        if r.len() == REFUSALS {
            r.pop_front();
        }
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        r.push_back(Refusal { peer: peer.to_string(), code: e.code().to_owned(), message: e.to_string(), unix_ms });
    }

    /// The refusals since the last call, oldest first.
    pub fn take_refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().expect("refusals lock").drain(..).collect()
    }

    pub fn active_count(&self) -> usize {
        self.active.lock().expect("active lock").len()
    }

    pub fn active_rows(&self) -> Vec<TransferRow> {
        self.active.lock().expect("active lock").iter().map(|a| a.row()).collect()
    }

    pub fn recent_rows(&self) -> Vec<TransferRow> {
        self.recent.lock().expect("recent lock").iter().cloned().collect()
    }

    /// Bytes per peer, with the live transfers' bytes so far included.
    pub fn peer_bytes(&self) -> BTreeMap<String, PeerBytes> {
        let mut p = self.peers.lock().expect("peers lock").clone();
        for a in self.active.lock().expect("active lock").iter() {
            let e = p.entry(a.peer.clone()).or_default();
            let d = a.done.load(Ordering::Relaxed);
            match a.direction {
                Direction::In | Direction::Bench => e.bytes_in += d,
                Direction::Out | Direction::Copy => e.bytes_out += d,
            }
        }
        p
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("errors lock").clone()
    }
}

/// Bytes in regular files under `root` (not following links), skipping the node's own
/// directory at the top.
pub fn du(root: &Path, top: bool) -> u64 {
    let mut s = Saved::default();
    walk(root, top, &mut s);
    s.stored
}

/// The account of a root walked: its bytes, and the temporary files among them.
fn tally(root: &Path) -> Saved {
    let mut s = Saved::default();
    walk(root, true, &mut s);
    s
}

fn walk(root: &Path, top: bool, into: &mut Saved) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(root) else { return };
    for e in rd.flatten() {
        if top && e.file_name() == STATE_DIR {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            walk(&e.path(), false, into);
        } else if m.is_file() {
            into.stored += m.size();
            if e.file_name().to_str().is_some_and(|n| n.starts_with(".lh-") && n.ends_with(".part")) {
                into.parts += 1;
                into.parts_bytes += m.size();
            }
        }
    }
}

/// A small JSON writer: enough for the node's stats document, with strings escaped.
pub struct Json(String);

impl Default for Json {
    fn default() -> Self {
        Json(String::with_capacity(1024))
    }
}

impl Json {
    pub fn raw(&mut self, s: &str) -> &mut Self {
        self.0.push_str(s);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.push('"');
        for c in s.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }
    pub fn key(&mut self, k: &str) -> &mut Self {
        if !matches!(self.0.chars().last(), Some('{' | '[') | None) {
            self.0.push(',');
        }
        self.str(k).raw(":")
    }
    pub fn num(&mut self, k: &str, v: impl std::fmt::Display) -> &mut Self {
        self.key(k);
        let _ = write!(self.0, "{v}");
        self
    }
    pub fn float(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        let _ = if v.is_finite() { write!(self.0, "{v}") } else { write!(self.0, "null") };
        self
    }
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        self.key(k);
        match v {
            Some(s) => self.str(s),
            None => self.raw("null"),
        }
    }
    /// Separates array items.
    pub fn item(&mut self) -> &mut Self {
        if !matches!(self.0.chars().last(), Some('[') | None) {
            self.0.push(',');
        }
        self
    }
    pub fn finish(self) -> String {
        self.0
    }
}

pub fn row_json(j: &mut Json, r: &TransferRow) {
    j.item().raw("{");
    j.num("id", r.id)
        .key("peer")
        .str(&r.peer)
        .key("direction")
        .str(r.direction)
        .key("path")
        .str(&r.path)
        .num("bytesDone", r.bytes_done)
        .num("bytesTotal", r.bytes_total)
        .num("filesTotal", r.files_total)
        .num("streams", r.streams)
        .num("startedUnixMs", r.started_unix_ms)
        .float("seconds", r.seconds)
        .float("rate", r.rate)
        .opt_str("outcome", r.outcome)
        .opt_str("code", r.code.as_deref())
        .opt_str("message", r.message.as_deref())
        .num("deleted", r.deleted);
    j.raw("}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn capacity_is_checked_against_stored_and_reserved_bytes() {
        let dir = crate::scratch::Scratch::new("state");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/f"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.join("a/.lh-0123456789ab-3.part"), vec![0u8; 500]).unwrap();
        let fd = rustix::fs::open(&*dir, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap();
        let s = NodeState::open(&dir, fd.as_fd(), Some(5000), false).unwrap();
        assert_eq!((s.stored(), s.parts()), (1500, (1, 500)));
        let r = s.reserve(2500).unwrap();
        let e = s.reserve(1001).map(|_| ()).unwrap_err();
        assert_eq!(e.code(), "E_CAPACITY");
        assert!(e.to_string().contains("1001") && e.to_string().contains("1000"), "{e}");
        r.named(None, 2500, 0);
        drop(r);
        s.save();
        assert_eq!((s.stored(), s.reserved()), (4000, 0));
        drop(s);
        std::fs::remove_file(dir.join("a/.lh-0123456789ab-3.part")).unwrap();
        // The account survives a restart, even when the files are not there to count.
        std::fs::remove_file(dir.join("a/f")).unwrap();
        let s = NodeState::open(&dir, fd.as_fd(), Some(5000), false).unwrap();
        assert_eq!((s.stored(), s.parts()), (4000, (1, 500)));
        let s = NodeState::open(&dir, fd.as_fd(), Some(5000), true).unwrap();
        assert_eq!((s.stored(), s.parts()), (0, (0, 0)));
    }

    #[test]
    fn json_is_escaped_and_separated() {
        let mut j = Json::default();
        j.raw("{").key("a").str("q\"\\\n\u{1}").num("b", 2).key("c").raw("[");
        j.item().raw("1").item().raw("2");
        j.raw("]}");
        assert_eq!(j.finish(), r#"{"a":"q\"\\\n\u0001","b":2,"c":[1,2]}"#);
    }
}
