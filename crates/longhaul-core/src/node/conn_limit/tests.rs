use super::*;
use std::net::{Ipv4Addr, TcpListener};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// issue 29: the per-peer cap refuses one peer's connections past it while another peer
/// still gets in, and the global cap refuses everyone; dropped slots give places back.
#[test]
fn caps_count_and_release_issue_29() {
    let l = Limiter::new(5, 3);
    let a: Vec<Slot> = (0..3).map(|_| l.acquire(ip(1)).unwrap()).collect();
    assert_eq!(l.acquire(ip(1)).err(), Some(Refusal::Peer(3)));
    let b: Vec<Slot> = (0..2).map(|_| l.acquire(ip(2)).unwrap()).collect();
    assert_eq!(l.open(), 5);
    assert_eq!(l.acquire(ip(3)).err(), Some(Refusal::Total(5)));
    // A peer at its own cap is told so, not that the node is full.
    assert_eq!(l.acquire(ip(1)).err(), Some(Refusal::Peer(3)));
    drop(a);
    assert_eq!(l.open(), 2);
    assert_eq!(l.open_from(ip(1)), 0);
    let c = l.acquire(ip(3)).unwrap();
    assert_eq!(l.open_from(ip(3)), 1);
    drop(b);
    drop(c);
    assert_eq!(l.open(), 0);
    assert!(l.counts.lock().unwrap().peers.is_empty(), "no memory kept for addresses gone");
    assert_eq!(Refusal::Peer(3).error().code(), "E_BUSY");
    assert_eq!(Refusal::Total(5).error().code(), "E_BUSY");
}

/// issue 29: an IPv6 host counts as one peer across its /64; IPv4 as itself, mapped or not.
#[test]
fn ipv6_peers_count_by_their_64_issue_29() {
    let l = Limiter::new(100, 2);
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::7".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    let _s = (l.acquire(a).unwrap(), l.acquire(b).unwrap());
    assert_eq!(l.acquire("2001:db8:1:2:dead::beef".parse().unwrap()).err(), Some(Refusal::Peer(2)));
    assert!(l.acquire(other).is_ok());
    let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap();
    let _m = l.acquire(mapped).unwrap();
    assert_eq!(l.open_from(ip(9)), 1);
}

#[test]
fn the_cap_fits_the_descriptor_limit_issue_29() {
    assert_eq!(cap_for_nofile(4096, None, true), 4096);
    assert_eq!(cap_for_nofile(4096, Some(1 << 20), true), 4096);
    assert_eq!(cap_for_nofile(4096, Some(1024), false), 512);
    assert_eq!(cap_for_nofile(4096, Some(4096 + 512), true), 4096 / 3);
    assert_eq!(cap_for_nofile(4096, Some(100), false), 16);
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// issue 29: a handshake frame longer than the lobby takes is refused from its header.
#[test]
fn the_lobby_refuses_a_long_first_frame_from_its_header_issue_29() {
    use std::io::Write;
    let limiter = Limiter::new(10, 10);
    let (mut client, server) = pair();
    server.set_nonblocking(true).unwrap();
    let mut w = Waiting {
        sock: server,
        peer: ip(1),
        slot: limiter.acquire(ip(1)).unwrap(),
        stage: Stage::First,
        until: Instant::now(),
        buf: Vec::new(),
    };
    client.write_all(&crate::wire::frame::MAX_CONTROL_FRAME.to_le_bytes()).unwrap();
    client.write_all(&[0x01]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    match read_frame(&mut w) {
        Ok(Some(Err(e))) => assert_eq!(e.code(), "E_LIMIT"),
        _ => panic!("expected E_LIMIT"),
    }
    assert!(w.buf.capacity() <= 16, "no body buffered");
}

/// issue 29: the lobby reads a frame sent a byte at a time without a thread per socket,
/// stops at the frame's end, and evicts the oldest waiting connection first.
#[test]
fn the_lobby_reads_whole_frames_and_evicts_the_oldest_issue_29() {
    use std::io::Write;
    let lobby = Arc::new(Lobby::new().unwrap());
    let limiter = Limiter::new(10, 10);
    let (mut idle_client, idle) = pair();
    lobby.admit(idle, ip(1), limiter.acquire(ip(1)).unwrap(), Stage::First, Duration::from_secs(30));
    let (mut client, server) = pair();
    lobby.admit(server, ip(1), limiter.acquire(ip(1)).unwrap(), Stage::First, Duration::from_secs(30));
    assert_eq!(lobby.len(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = {
        let (lobby, stop) = (Arc::clone(&lobby), Arc::clone(&stop));
        std::thread::spawn(move || {
            lobby.run(
                &stop,
                |w, msg| {
                    match msg {
                        Ok(Msg::DataHello { token, .. }) => w.stage = Stage::Data { token },
                        _ => return Next::Close,
                    }
                    Next::Leave
                },
                |_| true,
                |w| tx.send(w).unwrap(),
            )
        })
    };
    let mut bytes = Msg::DataHello { token: [5; 16], stream: 0 }.encode();
    // The next frame's first bytes must stay in the socket for the thread that takes it.
    bytes.extend_from_slice(b"NEXT");
    for b in &bytes[..bytes.len() - 4] {
        client.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    client.write_all(b"NEXT").unwrap();
    let mut w = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(w.stage, Stage::Data { token } if token == [5; 16]));
    let mut rest = [0u8; 4];
    w.sock.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"NEXT");
    assert_eq!(lobby.len(), 1);
    assert_eq!(limiter.open(), 2, "the slot travels with the connection");
    drop(w);
    assert!(lobby.evict_oldest());
    assert_eq!(limiter.open(), 0);
    let mut b = [0u8; 1];
    assert_eq!(idle_client.read(&mut b).unwrap_or(0), 0, "the evicted socket is closed");
    assert!(!lobby.evict_oldest());
    stop.store(true, Ordering::SeqCst);
    lobby.wake();
    runner.join().unwrap();
}
