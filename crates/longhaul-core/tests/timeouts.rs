//! Peers that stall: a silent client, a client that sends one byte at a time, a sender that
//! stops in the middle of a block, and a node that stops reading. Each ends in E_TIMEOUT
//! without holding threads, buffers or temporary files.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use longhaul_core::vfile::index::{Entry, Index, Kind};
use longhaul_core::wire::frame::{self, Msg};
use longhaul_core::{send, SendOptions, ServeOptions, Server};

fn scratch(name: &str) -> common::Scratch {
    common::scratch("timeouts", name)
}

fn node(base: &std::path::Path) -> Server {
    Server::start(ServeOptions {
        root: base.join("root"),
        handshake_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(600),
        ..Default::default()
    })
    .unwrap()
}

/// Reads frames until an ERROR arrives or the connection closes; returns the error code.
fn error_code(sock: &mut TcpStream) -> Option<String> {
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    loop {
        match frame::read_msg(sock, 1 << 20) {
            Ok(Some(Msg::Error { code, .. })) => return Some(code),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

fn one_file(path: &str, size: u64) -> Vec<u8> {
    let e = Entry { path: path.as_bytes().into(), kind: Kind::File, mode: 0o644, mtime_ns: 0, size, offset: 0, target: Box::default() };
    Index::from_entries(vec![e]).unwrap().encode()
}

/// HELLO, HELLO_OK, MANIFEST on a raw control connection; returns it.
fn open_session(n: &Server, dest: &[u8], streams: u16, block_size: u32, index: Vec<u8>) -> TcpStream {
    let mut ctl = TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut ctl, &Msg::Hello { min: 1, max: 1, features: common::PUSH_FEATURES, nonce: [0; 16] }).unwrap();
    assert!(matches!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::HelloOk { .. }));
    frame::write_msg(&mut ctl, &Msg::Manifest { dest: dest.to_vec(), streams, block_size, index }).unwrap();
    frame::write_msg(&mut ctl, &Msg::Sums { mode: frame::SUMS_STAMP, digests: vec![] }).unwrap();
    ctl
}

#[test]
fn issue_32_a_client_that_never_sends_its_sums_is_timed_out() {
    let base = scratch("nosums");
    let n = node(&base);
    let mut ctl = TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut ctl, &Msg::Hello { min: 1, max: 1, features: common::PUSH_FEATURES, nonce: [0; 16] }).unwrap();
    assert!(matches!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::HelloOk { .. }));
    let index = one_file("f", 10);
    frame::write_msg(&mut ctl, &Msg::Manifest { dest: b"in".to_vec(), streams: 1, block_size: 4096, index }).unwrap();
    // The mode, then not the digest it announces.
    frame::write_msg(&mut ctl, &Msg::Sums { mode: frame::SUMS_CONTENT, digests: vec![] }).unwrap();
    let t = Instant::now();
    assert_eq!(error_code(&mut ctl).as_deref(), Some("E_TIMEOUT"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(n.counts().active, 0);
}

#[test]
fn a_silent_client_is_timed_out() {
    let base = scratch("silent");
    let n = node(&base);
    let t = Instant::now();
    let mut s = TcpStream::connect(n.local_addr()).unwrap();
    assert_eq!(error_code(&mut s).as_deref(), Some("E_TIMEOUT"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn a_client_sending_one_byte_at_a_time_is_timed_out() {
    let base = scratch("slowloris");
    let n = node(&base);
    let hello = Msg::Hello { min: 1, max: 1, features: common::PUSH_FEATURES, nonce: [0; 16] }.encode();
    let mut s = TcpStream::connect(n.local_addr()).unwrap();
    let t = Instant::now();
    // 25 bytes at one per 100 ms would take 2.5 s; each byte would reset a per-read timeout.
    for b in &hello {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t.elapsed() > Duration::from_millis(900) {
            break;
        }
    }
    assert_eq!(error_code(&mut s).as_deref(), Some("E_TIMEOUT"));
    assert!(t.elapsed() < Duration::from_secs(2), "the frame deadline was not enforced: {:?}", t.elapsed());
}

#[test]
fn a_sender_stalling_inside_a_block_fails_its_session_and_frees_everything() {
    let base = scratch("stall");
    let n = node(&base);
    let mut ctl = open_session(&n, b"in", 1, 4 << 20, one_file("victim.bin", 1 << 20));
    let Msg::Ready { token, .. } = frame::expect_msg(&mut ctl, 0).unwrap() else { panic!("no READY") };
    let mut data = TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut data, &Msg::DataHello { token, stream: 0 }).unwrap();
    frame::write_msg(&mut data, &Msg::Block { offset: 0, len: 1 << 20, xxh3: 0 }).unwrap();
    data.write_all(&vec![1u8; 1000]).unwrap();
    let t = Instant::now();
    assert_eq!(error_code(&mut ctl).as_deref(), Some("E_TIMEOUT"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let dir = base.join("root/in");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "a temporary file was left behind");
    assert_eq!(n.pool().available(), n.pool().count(), "the stalled session kept pool buffers");
    assert_eq!(n.counts().failed, 1);
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
}

#[test]
fn a_sender_that_never_opens_its_streams_is_timed_out() {
    let base = scratch("nostreams");
    let n = node(&base);
    let mut ctl = open_session(&n, b"", 2, 4096, one_file("f", 10));
    assert_eq!(error_code(&mut ctl).as_deref(), Some("E_TIMEOUT"));
    assert_eq!(n.counts().active, 0);
}

#[test]
fn a_node_that_stops_reading_gives_the_sender_e_timeout() {
    // A listener that completes the handshake and then never reads a data byte.
    let base = scratch("deafnode");
    fs::write(base.join("big"), vec![3u8; 64 << 20]).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut ctl, _) = l.accept().unwrap();
        frame::expect_msg(&mut ctl, 0).unwrap();
        let limits = frame::Limits {
            max_streams: 4,
            max_block: 4 << 20,
            max_manifest: 1 << 20,
            max_readv_segments: 1024,
            max_readv_segment: 2 << 20,
        };
        frame::write_msg(&mut ctl, &Msg::HelloOk { version: 1, features: frame::FEATURE_XXH3, limits, auth: false, nonce: [0; 16] })
            .unwrap();
        frame::expect_msg(&mut ctl, 1 << 20).unwrap();
        frame::write_msg(&mut ctl, &Msg::Ready { token: [0; 16], streams: 1 }).unwrap();
        let (data, _) = l.accept().unwrap();
        std::thread::sleep(Duration::from_secs(4));
        drop((ctl, data));
    });
    let opts = SendOptions { io_timeout: Duration::from_millis(500), streams: 1, ..Default::default() };
    let t = Instant::now();
    let e = send(&base.join("big"), &addr.to_string(), b"", &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_TIMEOUT", "{e}");
    // The fake node holds its sockets for 4 s: the sender must give up well before.
    assert!(t.elapsed() < Duration::from_millis(3500), "{:?}", t.elapsed());
    fake.join().unwrap();
}
