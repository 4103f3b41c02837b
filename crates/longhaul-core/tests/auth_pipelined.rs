//! A push sends its offer right after AUTH, without waiting for AUTH_OK (issue 31, item 5: a
//! round trip less on a long link). What that must not change: a wrong token is still E_AUTH
//! and writes nothing, and a node that cannot prove it holds the token gets the offer (names
//! and sizes) but never a byte of file data nor a data connection's DATA_HELLO.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use longhaul_core::wire::auth::Secret;
use longhaul_core::wire::frame::{self, FrameType, Limits, Msg};
use longhaul_core::{send, SendOptions, ServeOptions, Server};

fn secret(t: &str) -> Secret {
    Secret::from_token(t.as_bytes()).unwrap()
}

/// A tree whose offer is larger than the socket buffers take at once: the node's refusal
/// arrives while the client is still writing it.
fn long_named_tree(root: &Path, files: usize) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::write(root.join(format!("{i:06}-{}", "n".repeat(200))), common::bytes(i as u64, 100)).unwrap();
    }
}

/// A node that asks for AUTH and answers it with a made-up proof, recording every byte each
/// connection brings it (the control connection's after AUTH, the others' whole).
fn impostor() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let heard: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let record = Arc::clone(&heard);
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut sock) = conn else { return };
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                if i == 0 {
                    let Ok(Msg::Hello { .. }) = frame::expect_msg(&mut sock, 0) else { return };
                    let limits =
                        Limits { max_streams: 8, max_block: 1 << 20, max_manifest: 64 << 20, max_readv_segments: 1, max_readv_segment: 1 };
                    let ok = Msg::HelloOk { version: frame::VERSION_MAX, features: frame::FEATURES, limits, auth: true, nonce: [3; 16] };
                    frame::write_msg(&mut sock, &ok).unwrap();
                    let Ok(Msg::Auth { .. }) = frame::expect_msg(&mut sock, 0) else { return };
                    frame::write_msg(&mut sock, &Msg::AuthOk { mac: [0; 32] }).unwrap();
                }
                let mut got = Vec::new();
                let _ = sock.read_to_end(&mut got);
                record.lock().unwrap().push(got);
            });
        }
    });
    (addr, heard)
}

#[test]
fn issue_31_a_wrong_token_is_still_e_auth_when_the_offer_follows_auth_and_nothing_is_written() {
    let dir = common::scratch("auth_pipelined", "wrong");
    let src = dir.join("src");
    long_named_tree(&src, 4000);
    let root = dir.join("root");
    let n = Server::start(ServeOptions { root: root.clone(), secret: Some(secret("the right token, long enough")), ..Default::default() })
        .unwrap();
    let opts = SendOptions { secret: Some(secret("a wrong token, also long enough")), ..Default::default() };
    let e = send(&src, &n.local_addr().to_string(), b"in", &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_AUTH", "{e}");
    assert!(!root.join("in").exists());
    // The right token on the same node: the push goes through, in three round trips.
    let opts = SendOptions { secret: Some(secret("the right token, long enough")), ..Default::default() };
    let s = send(&src, &n.local_addr().to_string(), b"in", &opts, &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(s.files, 4000);
    assert_eq!(s.round_trips, 3, "HELLO, the offer (AUTH with it), DONE");
}

#[test]
fn issue_31_a_node_that_cannot_prove_the_token_gets_no_file_data() {
    let dir = common::scratch("auth_pipelined", "impostor");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let marker = b"file data that must never reach an impostor".repeat(100);
    std::fs::write(src.join("secret.bin"), &marker).unwrap();

    let (addr, heard) = impostor();
    let opts = SendOptions { secret: Some(secret("the right token, long enough")), ..Default::default() };
    let e = send(&src, &addr, b"in", &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_AUTH", "{e}");
    assert!(e.to_string().contains("could not prove"), "{e}");
    std::thread::sleep(Duration::from_millis(2500));
    let heard = heard.lock().unwrap();
    // The control connection carried the offer (it went before the proof was read) ...
    let control = heard.iter().find(|b| !b.is_empty()).expect("the offer reached the impostor");
    assert_eq!(control[4], FrameType::Manifest as u8);
    // ... and nothing anywhere carried the file's bytes or a data connection's greeting.
    for bytes in heard.iter() {
        assert!(!bytes.windows(marker.len().min(64)).any(|w| w == &marker[..64]), "file data reached the impostor");
        if bytes.len() > 4 {
            assert_ne!(bytes[4], FrameType::DataHello as u8);
        }
    }
}

/// Review: with `--checksum` the offer carries every file's BLAKE3 (SUMS), which tells whoever
/// reads it whether a file holds a guessed content. They go only after the node's proof: an
/// impostor gets the SUMS mode frame (and keepalives) but no digest.
#[test]
fn issue_31_a_node_that_cannot_prove_the_token_gets_no_file_digests() {
    let dir = common::scratch("auth_pipelined", "impostor-sums");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("password.txt"), b"hunter2\n").unwrap();

    let (addr, heard) = impostor();
    let opts = SendOptions { secret: Some(secret("the right token, long enough")), resume: true, checksum: true, ..Default::default() };
    let e = send(&src, &addr, b"in", &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_AUTH", "{e}");
    std::thread::sleep(Duration::from_millis(2500));
    let heard = heard.lock().unwrap();
    // The control connection is the first to have spoken.
    let control = heard.iter().find(|b| !b.is_empty()).expect("the offer reached the impostor");
    let mut frames = std::io::Cursor::new(&control[..]);
    let mut types = Vec::new();
    while let Ok(Some(m)) = frame::read_msg(&mut frames, 64 << 20) {
        if let Msg::Sums { digests, .. } = &m {
            assert!(digests.is_empty(), "{} digests reached the impostor", digests.len());
        }
        types.push(m.frame_type());
    }
    assert_eq!(types.first(), Some(&FrameType::Manifest), "{types:?}");
    assert!(types.contains(&FrameType::Sums), "the SUMS mode goes with the offer: {types:?}");
    drop(heard);

    // A real node: a wrong token is E_AUTH, the right one sends (twice: the digests decide).
    let root = dir.join("root");
    let n = Server::start(ServeOptions { root: root.clone(), secret: Some(secret("the right token, long enough")), ..Default::default() })
        .unwrap();
    let node = n.local_addr().to_string();
    let wrong = SendOptions { secret: Some(secret("a wrong token, also long enough")), ..opts.clone() };
    assert_eq!(send(&src, &node, b"in", &wrong, &AtomicBool::new(false), &|_| {}).unwrap_err().code(), "E_AUTH");
    assert!(!root.join("in").exists());
    for _ in 0..2 {
        send(&src, &node, b"in", &opts, &AtomicBool::new(false), &|_| {}).unwrap();
    }
    assert_eq!(std::fs::read(root.join("in/src/password.txt")).unwrap(), b"hunter2\n");
}
