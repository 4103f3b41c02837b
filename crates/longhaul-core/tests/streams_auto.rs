//! Issue 31: `--streams auto`. With FEATURE_STREAMS_AUTO, MANIFEST's `streams` is a cap: the
//! node takes data connections up to it at any time before DONE, and STREAMS_OPENED says how
//! many came. More than the cap, a count below those attached, a count never met, DONE without
//! a count, or a count without the bit: E_PROTOCOL. A push with `streams_auto` over loopback
//! opens no more than it starts with.

mod common;

use common::{attach, bytes, protocol_error, snapshot};

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use longhaul_core::hash::xxh3;
use longhaul_core::wire::frame::{self, Msg, Token};
use longhaul_core::{send, SendOptions, ServeOptions, Server};

const BLOCK: usize = 64 << 10;

fn node(root: &Path) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), ..Default::default() }).unwrap()
}

/// HELLO (a push's features, and FEATURE_STREAMS_AUTO when `auto`), MANIFEST of one file of
/// `data` in `BLOCK`-byte blocks offering `streams`, READY's token. No resume, no SUMS.
fn offer(n: &Server, dest: &str, auto: bool, streams: u16, data: &[u8]) -> (TcpStream, Token) {
    let extra = if auto { frame::FEATURE_STREAMS_AUTO } else { 0 };
    let (ctl, token, agreed) = common::offer_one_file(n, dest, extra, streams, BLOCK, data);
    assert_eq!(agreed, streams);
    (ctl, token)
}

/// Sends the blocks `which` of `data` on `s`, then its STREAM_END.
fn blocks(s: &mut TcpStream, data: &[u8], which: &[usize]) {
    let mut bytes = 0;
    for &b in which {
        let piece = &data[b * BLOCK..((b + 1) * BLOCK).min(data.len())];
        frame::write_msg(s, &Msg::Block { offset: (b * BLOCK) as u64, len: piece.len() as u32, xxh3: xxh3(piece) }).unwrap();
        s.write_all(piece).unwrap();
        bytes += piece.len() as u64;
    }
    frame::write_msg(s, &Msg::StreamEnd { blocks: which.len() as u64, bytes }).unwrap();
}

fn done(ctl: &mut TcpStream, data: &[u8]) -> Msg {
    frame::write_msg(ctl, &Msg::Done { blocks: data.len().div_ceil(BLOCK) as u64, bytes: data.len() as u64 }).unwrap();
    frame::expect_msg(ctl, 0).unwrap()
}

#[test]
fn issue_31_a_connection_opened_later_is_taken_up_to_the_cap_and_the_count_ends_the_session() {
    let base = common::scratch("streams_auto", "later");
    let n = node(&base.join("root"));
    let data = bytes(31, 4 * BLOCK + 100);
    let (mut ctl, token) = offer(&n, "in", true, 4, &data);
    let mut first = attach(&n, token, 0);
    blocks(&mut first, &data, &[0, 1]);
    // The second stream joins well after the first has ended: the node still takes it.
    std::thread::sleep(Duration::from_millis(300));
    let mut second = attach(&n, token, 1);
    blocks(&mut second, &data, &[2, 3, 4]);
    frame::write_msg(&mut ctl, &Msg::StreamsOpened { count: 2 }).unwrap();
    match done(&mut ctl, &data) {
        Msg::Summary(s) => assert_eq!(s.bytes, data.len() as u64),
        m => panic!("expected SUMMARY, got {m:?}"),
    }
    assert_eq!(fs::read(base.join("root/in/f.bin")).unwrap(), data);
}

#[test]
fn issue_31_a_connection_past_the_cap_is_a_protocol_error() {
    let base = common::scratch("streams_auto", "cap");
    let n = node(&base.join("root"));
    let data = bytes(32, 2 * BLOCK);
    let (mut ctl, token) = offer(&n, "in", true, 2, &data);
    let _a = attach(&n, token, 0);
    let _b = attach(&n, token, 1);
    std::thread::sleep(Duration::from_millis(100));
    let _c = attach(&n, token, 2);
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "more data connections than the 2 agreed");
}

#[test]
fn issue_31_a_count_that_does_not_match_the_connections_is_a_protocol_error() {
    let base = common::scratch("streams_auto", "count");
    let n = node(&base.join("root"));
    let data = bytes(33, 2 * BLOCK);

    // Fewer than attached.
    let (mut ctl, token) = offer(&n, "fewer", true, 4, &data);
    let mut a = attach(&n, token, 0);
    let mut b = attach(&n, token, 1);
    blocks(&mut a, &data, &[0]);
    blocks(&mut b, &data, &[1]);
    std::thread::sleep(Duration::from_millis(200));
    frame::write_msg(&mut ctl, &Msg::StreamsOpened { count: 1 }).unwrap();
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "STREAMS_OPENED says 1 data connections, 2 attached");

    // More than ever come: refused once the late ones had their grace.
    let (mut ctl, token) = offer(&n, "more", true, 4, &data);
    let mut a = attach(&n, token, 0);
    blocks(&mut a, &data, &[0, 1]);
    frame::write_msg(&mut ctl, &Msg::StreamsOpened { count: 3 }).unwrap();
    protocol_error(done(&mut ctl, &data), "STREAMS_OPENED said 3 data connections, 1 attached");

    // Past the cap.
    let (mut ctl, _) = offer(&n, "past", true, 4, &data);
    frame::write_msg(&mut ctl, &Msg::StreamsOpened { count: 5 }).unwrap();
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "STREAMS_OPENED says 5 data connections, of 1 to 4");

    // DONE without a count.
    let (mut ctl, token) = offer(&n, "uncounted", true, 4, &data);
    let mut a = attach(&n, token, 0);
    blocks(&mut a, &data, &[0, 1]);
    protocol_error(done(&mut ctl, &data), "DONE before STREAMS_OPENED");

    // A count in a session without the bit.
    let (mut ctl, token) = offer(&n, "fixed", false, 1, &data);
    let mut a = attach(&n, token, 0);
    blocks(&mut a, &data, &[0, 1]);
    frame::write_msg(&mut ctl, &Msg::StreamsOpened { count: 1 }).unwrap();
    protocol_error(frame::expect_msg(&mut ctl, 0).unwrap(), "STREAMS_OPENED without FEATURE_STREAMS_AUTO");
}

#[test]
fn issue_31_a_push_with_streams_auto_over_loopback_stays_at_its_start_and_says_why() {
    let base = common::scratch("streams_auto", "loopback");
    let src = base.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), bytes(34, 24 << 20)).unwrap();
    for i in 0..50u64 {
        fs::write(src.join(format!("small{i}")), bytes(i, 3000)).unwrap();
    }
    let n = node(&base.join("root"));
    let cancel = AtomicBool::new(false);
    let opts = SendOptions { streams_auto: true, ..SendOptions::default() };
    let s = send(&src, &n.local_addr().to_string(), b"in", &opts, &cancel, &|_| {}).unwrap();
    assert!(s.streams <= 2, "{} streams: {:?}", s.streams, s.streams_reason);
    assert_eq!(s.per_stream_bytes.len(), s.streams as usize);
    let reason = s.streams_reason.expect("auto says why");
    assert!(reason.starts_with("auto: "), "{reason}");
    assert_eq!(snapshot(&src), snapshot(&base.join("root/in/src")));
    // A fixed count says nothing of a choice.
    let fixed =
        send(&src, &n.local_addr().to_string(), b"fixed", &SendOptions { streams: 3, ..SendOptions::default() }, &cancel, &|_| {}).unwrap();
    assert_eq!((fixed.streams, fixed.streams_reason), (3, None));
}
