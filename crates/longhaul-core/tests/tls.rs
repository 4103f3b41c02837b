//! TLS (the `tls` feature): a push, a pull, a listing and a third-party copy through nodes that
//! require TLS, trusted by a pinned fingerprint or by a CA; what crosses the wire is not the
//! data; every way of getting it wrong (a wrong pin, a name the certificate does not hold, a
//! plaintext client, a TLS client of a plaintext node, a silent client) is refused with its
//! code and nothing written.
#![cfg(feature = "tls")]

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use longhaul_core::client::{self, Connection, CopyOptions, GetOptions};
use longhaul_core::sys::tls::{ClientTls, ServerTls};
use longhaul_core::{send, SendOptions, ServeOptions, Server};

const T: Duration = Duration::from_secs(30);
/// A run of bytes no TLS record would carry in the clear.
const MARKER: &[u8] = b"longhaul-tls-test-plaintext-marker";

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("d")).unwrap();
    for i in 0..30u64 {
        let mut b = bytes(i, ((i * 7919) % 40_000) as usize);
        b.extend_from_slice(MARKER);
        fs::write(root.join("d").join(format!("f{i}")), b).unwrap();
    }
    fs::write(root.join("large"), MARKER.repeat(30_000)).unwrap();
    std::os::unix::fs::symlink("large", root.join("link")).unwrap();
}

fn tls_node(root: &Path, peer_tls: Option<ClientTls>, copy_to: Vec<String>) -> (Server, ClientTls) {
    let tls = ServerTls::generate(vec!["localhost".into()]).unwrap();
    let pin = ClientTls::new(Some(tls.fingerprint()), None).unwrap();
    let opts = ServeOptions { root: root.to_path_buf(), tls: Some(Arc::new(tls)), peer_tls, copy_to, ..Default::default() };
    (Server::start(opts).unwrap(), pin)
}

/// A TCP relay that records what the client sends.
fn recording_relay(to: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut up = TcpStream::connect(&to).unwrap();
            let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut up2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
            let seen = Arc::clone(&s2);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            seen.lock().unwrap().extend_from_slice(&buf[..n]);
                            if up.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = up.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, seen)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn push_pull_list_and_copy_through_tls_nodes() {
    let base = common::scratch("tls", "roundtrip");
    let src = base.join("src");
    make_tree(&src);
    let (b, pin_b) = tls_node(&base.join("b"), None, Vec::new());
    let (a, pin_a) = tls_node(&base.join("a"), Some(pin_b), vec![b.local_addr().to_string()]);
    let cancel = AtomicBool::new(false);

    // Push through a relay that records the wire: the tree arrives whole, the marker every
    // file carries never crossed in the clear.
    let (via, seen) = recording_relay(a.local_addr().to_string());
    let opts = SendOptions { streams: 2, block_size: 64 * 1024, tls: Some(pin_a.clone()), ..Default::default() };
    let s = send(&src, &via, b"in", &opts, &cancel, &|_| {}).unwrap();
    assert_eq!(s.receiver.files, 31);
    assert_eq!(snapshot(&src), snapshot(&base.join("a/in/src")));
    let wire = seen.lock().unwrap().clone();
    assert!(wire.len() as u64 > s.bytes, "the relay saw the transfer ({} bytes)", wire.len());
    assert!(!contains(&wire, MARKER), "plaintext crossed the wire");
    // The same recorder sees the marker when TLS is off: the check above can fail.
    let p =
        Server::start(ServeOptions { root: base.join("plain"), copy_to: vec![b.local_addr().to_string()], ..Default::default() }).unwrap();
    let (via_plain, seen_plain) = recording_relay(p.local_addr().to_string());
    let o = SendOptions { block_size: 64 * 1024, ..Default::default() };
    send(&src, &via_plain, b"in", &o, &cancel, &|_| {}).unwrap();
    assert!(contains(&seen_plain.lock().unwrap(), MARKER));

    // Pull and list over TLS.
    let got = base.join("got");
    let g = GetOptions { block_size: 64 * 1024, tls: Some(pin_a.clone()), ..Default::default() };
    let r = client::get(&a.local_addr().to_string(), b"in/src", &got, &g, &cancel, &|_| {}).unwrap();
    assert_eq!(r.summary.files, 31);
    assert_eq!(snapshot(&src), snapshot(&got.join("src")));
    let mut c = Connection::open(&a.local_addr().to_string(), None, Some(&pin_a), T).unwrap();
    let names: Vec<String> = c.list(b"in/src").unwrap().into_iter().map(|e| String::from_utf8(e.name).unwrap()).collect();
    assert_eq!(names, ["d", "large", "link"]);

    // Copy: the client reaches a with a's pin, a reaches b with b's (its peer TLS setting).
    let copied = client::copy(
        &a.local_addr().to_string(),
        b"in/src",
        &b.local_addr().to_string(),
        b"copied",
        &CopyOptions { streams: 2, block_size: 64 * 1024, secret: None, tls: Some(pin_a.clone()), timeout: T, verify_full: false },
        &cancel,
        &|_| {},
    )
    .unwrap();
    assert_eq!(copied.summary.files, 31);
    assert_eq!(snapshot(&src), snapshot(&base.join("b/copied/src")));
    // A node without the peer setting reaches b in plaintext and b refuses: E_TLS, nothing
    // written.
    let err = client::copy(
        &p.local_addr().to_string(),
        b"in/src",
        &b.local_addr().to_string(),
        b"refused",
        &CopyOptions { streams: 2, block_size: 64 * 1024, secret: None, tls: None, timeout: T, verify_full: false },
        &cancel,
        &|_| {},
    )
    .unwrap_err();
    assert_eq!(err.code(), "E_TLS", "{err}");
    assert!(!base.join("b/refused").exists());
}

/// What a node root holds besides the node's own state directory.
fn stored(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.retain(|n| n != longhaul_core::node::state::STATE_DIR);
    v.sort();
    v
}

#[test]
fn every_mismatch_is_refused_with_e_tls_and_nothing_is_written() {
    let base = common::scratch("tls", "refusals");
    let src = base.join("src");
    make_tree(&src);
    let node_tls = ServerTls::generate(vec!["localhost".into()]).unwrap();
    let fingerprint = node_tls.fingerprint().to_owned();
    let pin = ClientTls::new(Some(&fingerprint), None).unwrap();
    let opts = ServeOptions {
        root: base.join("n"),
        tls: Some(Arc::new(node_tls)),
        handshake_timeout: Duration::from_millis(400),
        ..Default::default()
    };
    let n = Server::start(opts).unwrap();
    let addr = n.local_addr().to_string();
    let cancel = AtomicBool::new(false);

    // The pin of another certificate: the error names the one the node showed.
    let other = ServerTls::generate(vec!["localhost".into()]).unwrap();
    let wrong = ClientTls::new(Some(other.fingerprint()), None).unwrap();
    let e = send(&src, &addr, b"x", &SendOptions { tls: Some(wrong), ..Default::default() }, &cancel, &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_TLS", "{e}");
    assert!(e.to_string().contains(&fingerprint), "{e}");

    // A plaintext client: the node answers E_TLS in plaintext, so the client hears why.
    let e = send(&src, &addr, b"x", &SendOptions::default(), &cancel, &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_TLS", "{e}");
    assert!(e.to_string().contains("requires TLS"), "{e}");

    // A TLS client of a plaintext node never falls back.
    let p = Server::start(ServeOptions { root: base.join("p"), ..Default::default() }).unwrap();
    let e = Connection::open(&p.local_addr().to_string(), None, Some(&pin), T).map(|_| ()).unwrap_err();
    assert_eq!(e.code(), "E_TLS", "{e}");
    assert!(e.to_string().contains("is TLS on at both ends?"), "{e}");
    let e = send(&src, &p.local_addr().to_string(), b"x", &SendOptions { tls: Some(pin.clone()), ..Default::default() }, &cancel, &|_| {})
        .unwrap_err();
    assert_eq!(e.code(), "E_TLS", "{e}");

    // A client that says nothing, and one that starts a handshake and stalls, are dropped
    // after the handshake timeout.
    for first in [&b""[..], &[0x16, 0x03, 0x01][..]] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(first).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = Instant::now();
        // The silent one hears E_TIMEOUT in plaintext, the stalled handshake nothing; both
        // end with the node closing the connection.
        let mut heard = Vec::new();
        s.read_to_end(&mut heard).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "{first:?} held for {:?}", t0.elapsed());
    }

    // Nor one that sends its handshake a byte at a time, slower than the deadline allows.
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..100 {
            if w.write_all(&[0x16]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    assert!(t0.elapsed() < Duration::from_secs(3), "a trickled handshake held for {:?}", t0.elapsed());
    trickle.join().unwrap();

    // Nothing was written by any of them, and the node still serves.
    assert_eq!(stored(&base.join("n")), Vec::<String>::new());
    assert_eq!(stored(&base.join("p")), Vec::<String>::new());
    let s = send(&src, &addr, b"x", &SendOptions { tls: Some(pin), ..Default::default() }, &cancel, &|_| {}).unwrap();
    assert_eq!(s.receiver.files, 31);
    assert_eq!(snapshot(&src), snapshot(&base.join("n/x/src")));
}

#[test]
fn a_ca_signed_node_is_trusted_for_the_names_in_its_certificate() {
    let base = common::scratch("tls", "ca");
    let src = base.join("src");
    make_tree(&src);
    let issuer = |name: &str| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
    };
    let ca = issuer("longhaul test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let pem = base.join("pem");
    fs::create_dir_all(&pem).unwrap();
    fs::write(pem.join("ca.pem"), ca.pem()).unwrap();
    fs::write(pem.join("node.pem"), format!("{}{}", cert.pem(), ca.pem())).unwrap();
    fs::write(pem.join("node.key"), key.serialize_pem()).unwrap();
    fs::write(pem.join("other-ca.pem"), issuer("another CA").pem()).unwrap();

    let tls = ServerTls::from_pem(&pem.join("node.pem"), &pem.join("node.key")).unwrap();
    assert!(!tls.self_signed());
    let n = Server::start(ServeOptions { root: base.join("n"), tls: Some(Arc::new(tls)), ..Default::default() }).unwrap();
    let port = n.local_addr().port();
    let cancel = AtomicBool::new(false);
    let trust = ClientTls::new(None, Some(&pem.join("ca.pem"))).unwrap();
    let opts = SendOptions { tls: Some(trust), ..Default::default() };

    let s = send(&src, &format!("localhost:{port}"), b"ok", &opts, &cancel, &|_| {}).unwrap();
    assert_eq!(s.receiver.files, 31);
    assert_eq!(snapshot(&src), snapshot(&base.join("n/ok/src")));
    // The certificate names localhost, not 127.0.0.1.
    let e = send(&src, &format!("127.0.0.1:{port}"), b"by-ip", &opts, &cancel, &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_TLS", "{e}");
    // Another CA does not vouch for it.
    let other = ClientTls::new(None, Some(&pem.join("other-ca.pem"))).unwrap();
    let o = SendOptions { tls: Some(other), ..Default::default() };
    let e = send(&src, &format!("localhost:{port}"), b"other-ca", &o, &cancel, &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_TLS", "{e}");
    assert_eq!(stored(&base.join("n")), ["ok"]);

    // Files that are not what they should be are usage errors, named.
    let e = ServerTls::from_pem(&pem.join("node.pem"), &pem.join("ca.pem")).unwrap_err();
    assert_eq!(e.code(), "E_USAGE", "{e}");
    let e = ServerTls::from_pem(&pem.join("node.key"), &pem.join("node.key")).unwrap_err();
    assert_eq!(e.code(), "E_USAGE", "{e}");
    assert_eq!(ClientTls::new(None, Some(&pem.join("node.key"))).err().unwrap().code(), "E_USAGE");
}
