//! Whole-file verification (`verify: full`): every file read back after writing and compared
//! with the sender's BLAKE3 before its rename, on a push, a pull and a third-party copy; a
//! wrong digest keeps the file out and answers E_CHECKSUM; FILE_DIGESTS where none was agreed
//! is refused.

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use longhaul_core::client::{self, CopyOptions, GetOptions};
use longhaul_core::hash::xxh3;
use longhaul_core::vfile::index::{Entry, Index, Kind};
use longhaul_core::wire::frame::{self, Msg};
use longhaul_core::{send, SendOptions, ServeOptions, Server, Verify};

fn make_tree(root: &Path) -> u64 {
    fs::create_dir_all(root.join("d/e")).unwrap();
    for i in 0..40u64 {
        let dir = if i % 3 == 0 { "d/e" } else { "d" };
        fs::write(root.join(dir).join(format!("f{i}")), bytes(i, ((i * i * 911) % 30_000) as usize)).unwrap();
    }
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("large"), bytes(99, 200_000)).unwrap();
    std::os::unix::fs::symlink("large", root.join("link")).unwrap();
    42
}

fn node(root: &Path) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), ..Default::default() }).unwrap()
}

#[test]
fn push_pull_and_copy_read_every_file_back_and_say_so() {
    let base = common::scratch("verify", "roundtrip");
    let src = base.join("src");
    let files = make_tree(&src);
    let b = node(&base.join("b"));
    // a copies to b: b is in a's copy targets.
    let a = Server::start(ServeOptions { root: base.join("a"), copy_to: vec![b.local_addr().to_string()], ..Default::default() }).unwrap();
    let cancel = AtomicBool::new(false);

    // 8 KiB blocks: blocks span files and the large file spans blocks and streams.
    let opts = SendOptions { streams: 2, block_size: 8192, verify: Verify::Full, ..Default::default() };
    let s = send(&src, &a.local_addr().to_string(), b"in", &opts, &cancel, &|_| {}).unwrap();
    assert_eq!(s.verify, Verify::Full);
    assert_eq!(s.receiver.verified, files, "every file, the empty one too, read back and checked");
    assert_eq!(snapshot(&src), snapshot(&base.join("a/in/src")));

    // The default checks blocks only and says so.
    let plain = send(&src, &a.local_addr().to_string(), b"plain", &SendOptions::default(), &cancel, &|_| {}).unwrap();
    assert_eq!((plain.verify, plain.receiver.verified), (Verify::Block, 0));

    // Pull: the node sends the digests, the client reads back what it wrote.
    let got = base.join("got");
    let g = GetOptions { block_size: 8192, verify_full: true, ..Default::default() };
    let r = client::get(&a.local_addr().to_string(), b"in/src", &got, &g, &cancel, &|_| {}).unwrap();
    assert_eq!(r.summary.verified, files);
    assert_eq!(snapshot(&src), snapshot(&got.join("src")));

    // Third-party copy: a pushes to b with verification because the client asked a for it.
    let t = Duration::from_secs(30);
    let c = client::copy(
        &a.local_addr().to_string(),
        b"in/src",
        &b.local_addr().to_string(),
        b"copied",
        &CopyOptions { streams: 2, block_size: 8192, secret: None, tls: None, timeout: t, verify_full: true },
        &cancel,
        &|_| {},
    )
    .unwrap();
    assert_eq!(c.summary.verified, files);
    assert_eq!(snapshot(&src), snapshot(&base.join("b/copied/src")));
}

/// A raw push of one file into `dest` with good blocks: HELLO with `features`, MANIFEST (and SUMS), READY (and PLAN,
/// UNCHANGED),
/// the file's bytes on one data connection. Returns the control connection.
fn raw_push(n: &Server, dest: &str, features: u64, data: &[u8]) -> TcpStream {
    let e = Entry {
        path: b"victim.bin".as_slice().into(),
        kind: Kind::File,
        mode: 0o644,
        mtime_ns: 0,
        size: data.len() as u64,
        offset: 0,
        target: Box::default(),
    };
    let index = Index::from_entries(vec![e]).unwrap().encode();
    let mut ctl = TcpStream::connect(n.local_addr()).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    frame::write_msg(&mut ctl, &Msg::Hello { min: 1, max: 1, features, nonce: [0; 16] }).unwrap();
    assert!(matches!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::HelloOk { .. }));
    frame::write_msg(&mut ctl, &Msg::Manifest { dest: dest.as_bytes().to_vec(), streams: 1, block_size: 1 << 20, index }).unwrap();
    if features & frame::FEATURE_CHECKSUM != 0 {
        frame::write_msg(&mut ctl, &Msg::Sums { mode: frame::SUMS_STAMP, digests: vec![] }).unwrap();
    }
    let Msg::Ready { token, .. } = frame::expect_msg(&mut ctl, 0).unwrap() else { panic!("no READY") };
    if features & frame::FEATURE_RESUME != 0 {
        assert!(matches!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::Plan { .. }));
    }
    if features & frame::FEATURE_CHECKSUM != 0 {
        assert!(matches!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::Unchanged { files: 0, bytes: 0 }));
    }
    let mut sock = TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut sock, &Msg::DataHello { token, stream: 0 }).unwrap();
    frame::write_msg(&mut sock, &Msg::Block { offset: 0, len: data.len() as u32, xxh3: xxh3(data) }).unwrap();
    sock.write_all(data).unwrap();
    frame::write_msg(&mut sock, &Msg::StreamEnd { blocks: 1, bytes: data.len() as u64 }).unwrap();
    ctl
}

fn answer(ctl: &mut TcpStream) -> Msg {
    frame::expect_msg(ctl, 0).unwrap()
}

#[test]
fn a_wrong_file_digest_keeps_the_file_out_and_answers_e_checksum() {
    let base = common::scratch("verify", "wrong");
    let n = node(&base.join("root"));
    let data = bytes(5, 300_000);
    let mut ctl = raw_push(&n, "in", common::PUSH_FEATURES, &data);
    let mut wrong = *blake3::hash(&data).as_bytes();
    wrong[31] ^= 1;
    frame::write_msg(&mut ctl, &Msg::FileDigests { digests: vec![(0, wrong)] }).unwrap();
    frame::write_msg(&mut ctl, &Msg::Done { blocks: 1, bytes: data.len() as u64 }).unwrap();
    match answer(&mut ctl) {
        Msg::Error { code, .. } => assert_eq!(code, "E_CHECKSUM"),
        m => panic!("expected ERROR, got {m:?}"),
    }
    // Neither the final name nor the temporary file: the next attempt sends the file again.
    assert_eq!(fs::read_dir(base.join("root/in")).unwrap().count(), 0);

    // The same push with the right digest completes.
    let mut ctl = raw_push(&n, "in", common::PUSH_FEATURES, &data);
    frame::write_msg(&mut ctl, &Msg::FileDigests { digests: vec![(0, *blake3::hash(&data).as_bytes())] }).unwrap();
    frame::write_msg(&mut ctl, &Msg::Done { blocks: 1, bytes: data.len() as u64 }).unwrap();
    match answer(&mut ctl) {
        Msg::Summary(s) => assert_eq!((s.files, s.verified), (1, 1)),
        m => panic!("expected SUMMARY, got {m:?}"),
    }
    assert_eq!(fs::read(base.join("root/in/victim.bin")).unwrap(), data);
}

#[test]
fn file_digests_without_the_feature_or_for_a_missing_file_are_refused() {
    let base = common::scratch("verify", "refused");
    let n = node(&base.join("root"));
    let data = bytes(6, 5_000);
    let d = *blake3::hash(&data).as_bytes();
    // Fresh destinations: a failed push keeps its journal, and the next one's PLAN would differ.
    for (dest, features, digests) in [("a", frame::FEATURE_XXH3, vec![(0, d)]), ("b", common::PUSH_FEATURES, vec![(1, d)])] {
        let mut ctl = raw_push(&n, dest, features, &data);
        frame::write_msg(&mut ctl, &Msg::FileDigests { digests }).unwrap();
        frame::write_msg(&mut ctl, &Msg::Done { blocks: 1, bytes: data.len() as u64 }).unwrap();
        match answer(&mut ctl) {
            Msg::Error { code, .. } => assert_eq!(code, "E_PROTOCOL"),
            m => panic!("expected ERROR, got {m:?}"),
        }
        // Without whole-file verification the file took its final name as soon as its block was
        // written and checked (it may have, before the bad frame arrived): then it is whole.
        // With it, nothing is renamed before every digest is in.
        let landed = base.join("root").join(dest).join("victim.bin");
        if features & frame::FEATURE_VERIFY_FULL == 0 {
            assert!(!landed.exists() || fs::read(&landed).unwrap() == data);
        } else {
            assert!(!landed.exists());
        }
    }
    // And with verification agreed, DONE without any digest fails the same way.
    let mut ctl = raw_push(&n, "c", common::PUSH_FEATURES, &data);
    frame::write_msg(&mut ctl, &Msg::Done { blocks: 1, bytes: data.len() as u64 }).unwrap();
    match answer(&mut ctl) {
        Msg::Error { code, .. } => assert_eq!(code, "E_PROTOCOL"),
        m => panic!("expected ERROR, got {m:?}"),
    }
    assert!(!base.join("root/c/victim.bin").exists());
}
