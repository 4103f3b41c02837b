//! issue 29, item 5: a client that asks for a READV and never reads its answer is cut after the
//! node's idle timeout, in plaintext and through the TLS relay (whose socket pair has buffers of
//! its own), and its connection's place is freed; idle sockets cost no thread; a peer past its
//! cap gets E_BUSY.

mod common;

use std::fs;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use longhaul_core::wire::frame::{self, Msg, Segment};
use longhaul_core::{ServeOptions, Server};

/// These tests count the threads of this test process: each runs alone, or another's threads
/// (a stalled reader's, a TLS relay's) would be counted against it.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|p| p.into_inner())
}

fn scratch(name: &str) -> common::Scratch {
    common::scratch("conn_limits", name)
}

/// The node's open-connection count, from its STATS document.
fn open_connections(n: &Server) -> u64 {
    let j = n.stats_json();
    let at = j.find("\"connections\":{\"open\":").expect("connections in stats") + "\"connections\":{\"open\":".len();
    j[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < until, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HELLO and a READV of 1,024 2 MiB segments of `big` (2 GiB), then nothing is read.
fn stall(mut sock: TcpStream) -> TcpStream {
    frame::write_msg(&mut sock, &Msg::Hello { min: 1, max: 1, features: frame::FEATURES, nonce: [0; 16] }).unwrap();
    assert!(matches!(frame::expect_msg(&mut sock, 0).unwrap(), Msg::HelloOk { .. }));
    let segments = (0..1024u64).map(|i| Segment { file: 0, offset: (i % 8) * (2 << 20), len: 2 << 20 }).collect();
    frame::write_msg(&mut sock, &Msg::Readv { paths: vec![b"big".to_vec()], segments }).unwrap();
    sock
}

fn stalled_readers_are_cut(name: &str, tls: bool) {
    let base = scratch(name);
    let root = base.join("root");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("big"), common::bytes(1, 16 << 20)).unwrap();
    let server_tls = tls.then(|| longhaul_core::sys::tls::ServerTls::generate(vec!["localhost".into()]).unwrap());
    let pin = server_tls.as_ref().map(|t| longhaul_core::sys::tls::ClientTls::new(Some(t.fingerprint()), None).unwrap());
    let idle = Duration::from_millis(800);
    let n = Server::start(ServeOptions { root, idle_timeout: idle, tls: server_tls.map(Arc::new), ..Default::default() }).unwrap();
    let addr = n.local_addr().to_string();
    let readers: Vec<TcpStream> =
        (0..4).map(|_| stall(longhaul_core::sys::net::connect(&addr, Duration::from_secs(10), pin.as_ref()).unwrap())).collect();
    wait_until("the readers connected", Duration::from_secs(10), || open_connections(&n) == 4);
    // Cut after the idle timeout, not after 2 GiB.
    wait_until("the stalled readers cut", idle * 3 + Duration::from_secs(5), || open_connections(&n) == 0);
    drop(readers);
    // And the node still answers.
    let mut c = longhaul_core::client::Connection::open(&addr, None, pin.as_ref(), Duration::from_secs(10)).unwrap();
    assert!(c.list(b"").unwrap().iter().any(|e| e.name == b"big"));
}

/// issue 29: a plaintext READV reader that never reads is cut after the idle timeout.
#[test]
fn a_stalled_readv_reader_is_cut_issue_29() {
    let _alone = alone();
    stalled_readers_are_cut("stalled", false);
}

/// issue 29: the same through TLS: the deadline holds on the relay's socket pair.
#[cfg(feature = "tls")]
#[test]
fn a_stalled_readv_reader_is_cut_through_tls_issue_29() {
    let _alone = alone();
    stalled_readers_are_cut("stalled-tls", true);
}

/// issue 29: 300 silent sockets cost the node no thread each; past the per-peer cap a peer gets
/// E_BUSY at once, and a client from another address is served.
#[test]
fn idle_sockets_cost_no_thread_and_the_peer_cap_refuses_issue_29() {
    let _alone = alone();
    let base = scratch("idle");
    let n = Server::start(ServeOptions { root: base.join("root"), max_per_peer: 300, ..Default::default() }).unwrap();
    let addr = n.local_addr();
    let before = threads();
    let idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_until("the node holds them", Duration::from_secs(10), || open_connections(&n) == 300);
    assert!(threads() <= before + 2, "{} threads for 300 idle sockets (from {before})", threads());
    let mut past = TcpStream::connect(addr).unwrap();
    past.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match frame::read_msg(&mut past, 0) {
        Ok(Some(Msg::Error { code, .. })) => assert_eq!(code, "E_BUSY"),
        other => panic!("expected E_BUSY, got {other:?}"),
    }
    // Another address is another peer.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other.bind(&"127.0.0.2:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    other.connect(&addr.into()).unwrap();
    let mut other: TcpStream = other.into();
    frame::write_msg(&mut other, &Msg::Hello { min: 1, max: 1, features: frame::FEATURES, nonce: [0; 16] }).unwrap();
    assert!(matches!(frame::expect_msg(&mut other, 0).unwrap(), Msg::HelloOk { .. }));
    frame::write_msg(&mut other, &Msg::List { path: Vec::new() }).unwrap();
    assert!(matches!(frame::expect_msg(&mut other, 0).unwrap(), Msg::Listing { .. }));
    drop(idle);
    wait_until("places freed", Duration::from_secs(10), || open_connections(&n) == 1);
}

/// issue 29: DATA_HELLO with made-up tokens waits in the lobby (no thread each) for its grace
/// period, then gets E_PROTOCOL; the node goes on serving.
#[test]
fn made_up_data_tokens_cost_no_thread_issue_29() {
    let _alone = alone();
    let base = scratch("tokens");
    let n =
        Server::start(ServeOptions { root: base.join("root"), handshake_timeout: Duration::from_secs(1), ..Default::default() }).unwrap();
    let before = threads();
    let mut socks: Vec<TcpStream> = (0..50u8)
        .map(|i| {
            let mut s = TcpStream::connect(n.local_addr()).unwrap();
            frame::write_msg(&mut s, &Msg::DataHello { token: [i; 16], stream: 0 }).unwrap();
            s
        })
        .collect();
    wait_until("the node holds them", Duration::from_secs(10), || open_connections(&n) == 50);
    assert!(threads() <= before + 2, "{} threads for 50 unknown tokens (from {before})", threads());
    for s in &mut socks {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        match frame::read_msg(s, 0) {
            Ok(Some(Msg::Error { code, .. })) => assert_eq!(code, "E_PROTOCOL"),
            other => panic!("expected E_PROTOCOL, got {other:?}"),
        }
    }
    wait_until("places freed", Duration::from_secs(10), || open_connections(&n) == 0);
    let mut c = longhaul_core::client::Connection::open(&n.local_addr().to_string(), None, None, Duration::from_secs(10)).unwrap();
    assert!(c.list(b"").unwrap().is_empty());
}
