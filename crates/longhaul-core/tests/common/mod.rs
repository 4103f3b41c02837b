//! Helpers shared by the integration tests.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[path = "../../src/scratch.rs"]
mod scratch_dir;
pub use scratch_dir::Scratch;

/// A fresh, empty directory for one test, `longhaul-<suite>-<name>-<pid>` under the temp dir,
/// deleted when the test passes.
pub fn scratch(suite: &str, name: &str) -> Scratch {
    Scratch::new(&format!("{suite}-{name}"))
}

/// `n` pseudo-random bytes from `seed`.
#[allow(dead_code)]
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

/// Every entry under `root`: path, mode, mtime (not for symlinks) and bytes (a symlink's target).
#[allow(dead_code)]
pub fn snapshot(root: &Path) -> Vec<(String, u32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let content = if m.file_type().is_symlink() {
                fs::read_link(&p).unwrap().display().to_string().into_bytes()
            } else if m.is_dir() {
                stack.push(p.clone());
                Vec::new()
            } else {
                fs::read(&p).unwrap()
            };
            let mtime = if m.file_type().is_symlink() { 0 } else { m.mtime() * 1_000_000_000 + m.mtime_nsec() };
            out.push((rel, m.mode(), mtime, content));
        }
    }
    out.sort();
    out
}

/// Every feature a raw push offers at HELLO: all but deletion and a dry run, which a client
/// offers only when asked for them (with either, MIRROR must follow MANIFEST), pieces, which
/// add HELD frames to the node's answer (tests/pieces.rs asks for them), and streams opened
/// during the session (`--streams auto`: then STREAMS_OPENED must come before DONE), and
/// end-game (a block twice is then no error: tests/endgame.rs asks for it).
#[allow(dead_code)]
pub const PUSH_FEATURES: u64 = longhaul_core::wire::frame::FEATURES
    & !(longhaul_core::wire::frame::FEATURE_DELETE | longhaul_core::wire::frame::FEATURE_DRY_RUN)
    & !longhaul_core::wire::frame::FEATURE_PIECES
    & !longhaul_core::wire::frame::FEATURE_STREAMS_AUTO
    & !longhaul_core::wire::frame::FEATURE_ENDGAME;

/// A raw push of one file, `f.bin` of `data` in `block`-byte blocks: HELLO with
/// `PUSH_FEATURES` less resume, checksums and full verification, plus `extra` (which the node
/// must offer back), MANIFEST offering `streams`; returns the control connection, READY's token
/// and the streams it agreed to. No SUMS.
#[allow(dead_code)]
pub fn offer_one_file(
    n: &longhaul_core::Server,
    dest: &str,
    extra: u64,
    streams: u16,
    block: usize,
    data: &[u8],
) -> (std::net::TcpStream, longhaul_core::wire::frame::Token, u16) {
    use longhaul_core::vfile::index::{Entry, Index, Kind};
    use longhaul_core::wire::frame::{self, Msg};
    let e = Entry {
        path: b"f.bin".as_slice().into(),
        kind: Kind::File,
        mode: 0o644,
        mtime_ns: 0,
        size: data.len() as u64,
        offset: 0,
        target: Box::default(),
    };
    let index = Index::from_entries(vec![e]).unwrap().encode();
    let features = PUSH_FEATURES & !(frame::FEATURE_RESUME | frame::FEATURE_CHECKSUM | frame::FEATURE_VERIFY_FULL) | extra;
    let mut ctl = std::net::TcpStream::connect(n.local_addr()).unwrap();
    ctl.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    frame::write_msg(&mut ctl, &Msg::Hello { min: 1, max: 1, features, nonce: [0; 16] }).unwrap();
    match frame::expect_msg(&mut ctl, 0).unwrap() {
        Msg::HelloOk { features: offered, .. } => assert_eq!(offered & extra, extra, "the node offers the bits asked for"),
        m => panic!("expected HELLO_OK, got {m:?}"),
    }
    frame::write_msg(&mut ctl, &Msg::Manifest { dest: dest.as_bytes().to_vec(), streams, block_size: block as u32, index }).unwrap();
    let Msg::Ready { token, streams: agreed } = frame::expect_msg(&mut ctl, 0).unwrap() else { panic!("no READY") };
    (ctl, token, agreed)
}

/// A data connection to `n`, introduced as stream `i` of the session `token`.
#[allow(dead_code)]
pub fn attach(n: &longhaul_core::Server, token: longhaul_core::wire::frame::Token, i: u16) -> std::net::TcpStream {
    use longhaul_core::wire::frame::{self, Msg};
    let mut s = std::net::TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut s, &Msg::DataHello { token, stream: i }).unwrap();
    s
}

/// `m` is the node's E_PROTOCOL, its message saying `says`.
#[allow(dead_code)]
pub fn protocol_error(m: longhaul_core::wire::frame::Msg, says: &str) {
    match m {
        longhaul_core::wire::frame::Msg::Error { code, message } => {
            assert_eq!(code, "E_PROTOCOL", "{message}");
            assert!(message.contains(says), "{message}");
        }
        m => panic!("expected ERROR, got {m:?}"),
    }
}
