//! Issue 31: end-game (FEATURE_ENDGAME). A push may send a block still in flight on a slow
//! stream once more on another: the node keeps the first verified copy and drops a later one
//! whose checksum is the first's, and ends at DONE once every block is here, without the
//! STREAM_END of a stream the sender shut. Without the bit a block twice stays E_PROTOCOL; with
//! it, a copy that differs, more copies than allowed, or blocks missing once every stream has
//! closed or ended are E_PROTOCOL too.

mod common;

use common::{attach, bytes, protocol_error};

use std::fs;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

use longhaul_core::hash::xxh3;
use longhaul_core::wire::frame::{self, Msg, Token};
use longhaul_core::{ServeOptions, Server};

const BLOCK: usize = 64 << 10;

fn node(root: &Path) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), ..Default::default() }).unwrap()
}

/// HELLO (a push's features, FEATURE_ENDGAME when `endgame`), MANIFEST of one file of `data`
/// in `BLOCK`-byte blocks over `streams` fixed streams, READY's token. No SUMS.
fn offer(n: &Server, dest: &str, endgame: bool, streams: u16, data: &[u8]) -> (TcpStream, Token) {
    let extra = if endgame { frame::FEATURE_ENDGAME } else { 0 };
    let (ctl, token, _) = common::offer_one_file(n, dest, extra, streams, BLOCK, data);
    (ctl, token)
}

/// Block `b` of `data` on `s`, its bytes `bytes` (`data`'s own unless a test changes them).
fn block_with(s: &mut TcpStream, b: usize, bytes: &[u8]) {
    frame::write_msg(s, &Msg::Block { offset: (b * BLOCK) as u64, len: bytes.len() as u32, xxh3: xxh3(bytes) }).unwrap();
    s.write_all(bytes).unwrap();
}

fn piece(data: &[u8], b: usize) -> &[u8] {
    &data[b * BLOCK..((b + 1) * BLOCK).min(data.len())]
}

fn blocks(s: &mut TcpStream, data: &[u8], which: &[usize]) {
    for &b in which {
        block_with(s, b, piece(data, b));
    }
}

fn end(s: &mut TcpStream) {
    frame::write_msg(s, &Msg::StreamEnd { blocks: 0, bytes: 0 }).unwrap();
}

fn done(ctl: &mut TcpStream, data: &[u8]) -> Msg {
    frame::write_msg(ctl, &Msg::Done { blocks: data.len().div_ceil(BLOCK) as u64, bytes: data.len() as u64 }).unwrap();
    frame::expect_msg(ctl, 0).unwrap()
}

#[test]
fn issue_31_with_endgame_a_block_twice_is_kept_once_and_a_shut_stream_needs_no_stream_end() {
    let base = common::scratch("endgame", "twice");
    let n = node(&base.join("root"));
    let data = bytes(311, 5 * BLOCK + 100);
    let (mut ctl, token) = offer(&n, "in", true, 2, &data);
    let mut fast = attach(&n, token, 0);
    let mut slow = attach(&n, token, 1);
    // The slow stream carries block 2 and half of block 5, then is shut (what the sender does
    // once every block arrived on another); the fast one carries everything, 2 and 5 again.
    blocks(&mut slow, &data, &[2]);
    let last = piece(&data, 5);
    frame::write_msg(&mut slow, &Msg::Block { offset: (5 * BLOCK) as u64, len: last.len() as u32, xxh3: xxh3(last) }).unwrap();
    slow.write_all(&last[..last.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    blocks(&mut fast, &data, &[0, 1, 2, 3, 4, 5]);
    end(&mut fast);
    std::thread::sleep(Duration::from_millis(100));
    slow.shutdown(Shutdown::Write).unwrap();
    match done(&mut ctl, &data) {
        // Each block's bytes once: the second copy is not counted.
        Msg::Summary(s) => assert_eq!((s.bytes, s.blocks), (data.len() as u64, 6)),
        m => panic!("expected SUMMARY, got {m:?}"),
    }
    assert_eq!(fs::read(base.join("root/in/f.bin")).unwrap(), data);

    // The session also ends while a shut stream's connection stays open, once all is here.
    let (mut ctl, token) = offer(&n, "open", true, 2, &data);
    let mut fast = attach(&n, token, 0);
    let mut slow = attach(&n, token, 1);
    blocks(&mut slow, &data, &[0]);
    frame::write_msg(&mut slow, &Msg::Block { offset: BLOCK as u64, len: BLOCK as u32, xxh3: xxh3(piece(&data, 1)) }).unwrap();
    blocks(&mut fast, &data, &[1, 2, 3, 4, 5]);
    end(&mut fast);
    match done(&mut ctl, &data) {
        Msg::Summary(s) => assert_eq!(s.bytes, data.len() as u64),
        m => panic!("expected SUMMARY, got {m:?}"),
    }
    assert_eq!(fs::read(base.join("root/open/f.bin")).unwrap(), data);
}

#[test]
fn issue_31_without_endgame_a_block_twice_is_a_protocol_error() {
    let base = common::scratch("endgame", "without");
    let n = node(&base.join("root"));
    let data = bytes(312, 3 * BLOCK);
    let (mut ctl, token) = offer(&n, "in", false, 1, &data);
    let mut s = attach(&n, token, 0);
    blocks(&mut s, &data, &[0, 1, 1]);
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "received twice");
    assert!(!base.join("root/in/f.bin").exists());
}

#[test]
fn issue_31_with_endgame_a_second_copy_that_differs_is_a_protocol_error() {
    let base = common::scratch("endgame", "differs");
    let n = node(&base.join("root"));
    let data = bytes(313, 3 * BLOCK);
    let (mut ctl, token) = offer(&n, "in", true, 2, &data);
    let mut a = attach(&n, token, 0);
    let mut b = attach(&n, token, 1);
    blocks(&mut a, &data, &[0]);
    std::thread::sleep(Duration::from_millis(100));
    // Checksummed right, but other bytes than the first copy's.
    let mut other = piece(&data, 0).to_vec();
    other[7] ^= 1;
    block_with(&mut b, 0, &other);
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "received twice, and the copies differ");
}

#[test]
fn issue_31_with_endgame_more_copies_than_allowed_is_a_protocol_error() {
    let base = common::scratch("endgame", "bounded");
    let n = node(&base.join("root"));
    let data = bytes(314, 2 * BLOCK);
    let (mut ctl, token) = offer(&n, "in", true, 1, &data);
    let mut s = attach(&n, token, 0);
    let limit = frame::endgame_duplicates(1) as usize;
    // The first copy and `limit` more are taken; one past is refused.
    blocks(&mut s, &data, &vec![0; limit + 2]);
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), &format!("more than {limit} blocks received twice"));
}

#[test]
fn issue_31_with_endgame_blocks_missing_once_every_stream_closed_is_a_protocol_error() {
    let base = common::scratch("endgame", "missing");
    let n = node(&base.join("root"));
    let data = bytes(315, 3 * BLOCK);
    let (mut ctl, token) = offer(&n, "in", true, 2, &data);
    let mut a = attach(&n, token, 0);
    let b = attach(&n, token, 1);
    blocks(&mut a, &data, &[0, 1]);
    end(&mut a);
    // Block 2 never comes: the other stream is shut without it.
    b.shutdown(Shutdown::Write).unwrap();
    protocol_error(done(&mut ctl, &data), "closed before its STREAM_END");
}

/// A second reader's finding: a sender that attached fewer data connections than agreed and said
/// DONE held the node's session (its slot, reservation and journal) for ever, the idle timeout
/// no longer counting after DONE; with or without end-game. Now E_PROTOCOL after the grace a
/// late connection gets, and the session ends.
#[test]
fn issue_31_fewer_connections_than_agreed_then_done_fails_instead_of_holding_the_session() {
    for endgame in [false, true] {
        let base = common::scratch("endgame", if endgame { "short-eg" } else { "short-plain" });
        let n =
            Server::start(ServeOptions { root: base.join("root"), idle_timeout: Duration::from_secs(2), ..Default::default() }).unwrap();
        let data = bytes(400, 3 * BLOCK);
        let (mut ctl, token) = offer(&n, "in", endgame, 2, &data);
        let mut s = attach(&n, token, 0);
        blocks(&mut s, &data, &[0, 1]);
        end(&mut s);
        frame::write_msg(&mut ctl, &Msg::Done { blocks: 3, bytes: data.len() as u64 }).unwrap();
        let started = std::time::Instant::now();
        protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "MANIFEST agreed 2 data connections, 1 attached");
        assert!(started.elapsed() < Duration::from_secs(10), "ended after {:?}", started.elapsed());
        for _ in 0..50 {
            if n.counts().active == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(n.counts().active, 0, "endgame {endgame}: the session still holds the node");
        assert!(!base.join("root/in/f.bin").exists());
    }
}
