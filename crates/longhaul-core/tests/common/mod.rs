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
