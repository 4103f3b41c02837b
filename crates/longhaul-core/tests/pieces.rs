//! Issue 32, pieces (FEATURE_PIECES): a re-run of a push moves the bytes of the files that
//! changed, not every block one of them touches; the node checks each PIECE against the runs
//! it needs, and a hostile one (overlapping, outside the block, covering a held file, of
//! another length, twice) is E_PROTOCOL.

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use longhaul_core::hash::xxh3;
use longhaul_core::vfile::index::{Entry, Index, Kind};
use longhaul_core::wire::frame::{self, Msg};
use longhaul_core::{send, SendOptions, ServeOptions, Server, Verify};

fn node(root: &Path) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), ..Default::default() }).unwrap()
}

const MTIME_NS: i64 = 1_700_000_000_000_000_000;

/// `n` files of `size` bytes in `dir/d`, from seeds `seed + i`.
fn tree(dir: &Path, n: u64, size: usize, seed: u64) {
    fs::create_dir_all(dir.join("d")).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("d/f{i:04}")), bytes(seed + i, size)).unwrap();
    }
}

fn moved(s: &longhaul_core::SendSummary) -> u64 {
    s.per_stream_bytes.iter().sum()
}

/// A file edited keeping its size, its mtime moved on (what an editor leaves).
fn edit(p: &Path, seed: u64) {
    let len = fs::metadata(p).unwrap().len() as usize;
    fs::write(p, bytes(seed, len)).unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options().write(true).open(p).unwrap().set_modified(later).unwrap();
}

#[test]
fn issue_32_a_rerun_moves_the_changed_files_not_the_blocks_they_share() {
    let base = common::scratch("pieces", "rerun");
    let src = base.join("src");
    // 400 files of 3,000 bytes in 64 KiB blocks: ~22 files a block.
    tree(&src, 400, 3000, 0);
    let n = node(&base.join("root"));
    let addr = n.local_addr().to_string();
    let cancel = AtomicBool::new(false);
    let opts = SendOptions { streams: 2, block_size: 64 << 10, ..Default::default() };
    let first = send(&src, &addr, b"in", &opts, &cancel, &|_| {}).unwrap();
    assert_eq!(moved(&first), 400 * 3000);
    // One file in 40 edited, spread over every block.
    for i in (0..400).step_by(40) {
        edit(&src.join(format!("d/f{i:04}")), 10_000 + i);
    }
    let second = send(&src, &addr, b"in", &opts, &cancel, &|_| {}).unwrap();
    assert_eq!(moved(&second), 10 * 3000, "only the edited files' bytes travel");
    assert_eq!(second.receiver.bytes, 10 * 3000);
    assert_eq!(snapshot(&src), snapshot(&base.join("root/in/src")));

    // By content (--checksum): edits that keep size and mtime are found and sent, alone.
    let opts = SendOptions { checksum: true, verify: Verify::Full, ..opts };
    for i in [3u64, 77, 211] {
        let p = src.join(format!("d/f{i:04}"));
        let mtime = fs::metadata(&p).unwrap().modified().unwrap();
        fs::write(&p, bytes(20_000 + i, 3000)).unwrap();
        fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
    }
    let third = send(&src, &addr, b"in", &opts, &cancel, &|_| {}).unwrap();
    assert_eq!(moved(&third), 3 * 3000);
    assert_eq!(third.receiver.verified, 3, "the files received are read back and checked");
    assert_eq!(snapshot(&src), snapshot(&base.join("root/in/src")));
}

/// The node's destination holds `a` and `c` (100 bytes each, with the index's mtime) and an
/// older `b`; the index names all three in one 4 KiB block. Returns the control connection
/// after READY, PLAN, UNCHANGED and HELD (checked), and a data connection introduced.
fn pieced_push(n: &Server, root: &Path, dest: &str) -> (TcpStream, TcpStream) {
    let dir = root.join(dest);
    fs::create_dir_all(&dir).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_nanos(MTIME_NS as u64);
    for (name, seed) in [("a", 1), ("b", 9), ("c", 3)] {
        fs::write(dir.join(name), bytes(seed, 100)).unwrap();
        let stamp = if name == "b" { when - Duration::from_secs(60) } else { when };
        fs::File::options().write(true).open(dir.join(name)).unwrap().set_modified(stamp).unwrap();
    }
    let file = |name: &str| Entry {
        path: name.as_bytes().into(),
        kind: Kind::File,
        mode: 0o644,
        mtime_ns: MTIME_NS,
        size: 100,
        offset: 0,
        target: Box::default(),
    };
    let index = Index::from_entries(vec![file("a"), file("b"), file("c")]).unwrap().encode();
    let mut ctl = TcpStream::connect(n.local_addr()).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Without whole-file verification: each case's error is its piece's.
    let features = (common::PUSH_FEATURES & !frame::FEATURE_VERIFY_FULL) | frame::FEATURE_PIECES;
    frame::write_msg(&mut ctl, &Msg::Hello { min: 1, max: 1, features, nonce: [0; 16] }).unwrap();
    assert!(matches!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::HelloOk { .. }));
    frame::write_msg(&mut ctl, &Msg::Manifest { dest: dest.as_bytes().to_vec(), streams: 1, block_size: 4096, index }).unwrap();
    frame::write_msg(&mut ctl, &Msg::Sums { mode: frame::SUMS_STAMP, digests: vec![] }).unwrap();
    let Msg::Ready { token, .. } = frame::expect_msg(&mut ctl, 0).unwrap() else { panic!("no READY") };
    assert_eq!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::Plan { nblocks: 1, ranges: vec![] });
    assert_eq!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::Unchanged { files: 2, bytes: 200 });
    assert_eq!(frame::expect_msg(&mut ctl, 0).unwrap(), Msg::Held { last: true, ranges: vec![(0, 1), (2, 3)] });
    let mut sock = TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut sock, &Msg::DataHello { token, stream: 0 }).unwrap();
    (ctl, sock)
}

fn piece(sock: &mut TcpStream, offset: u64, data: &[u8]) {
    frame::write_msg(sock, &Msg::Piece { offset, len: data.len() as u32, xxh3: xxh3(data), blake3: None }).unwrap();
    let _ = sock.write_all(data);
}

fn finish(sock: &mut TcpStream, ctl: &mut TcpStream, bytes: u64) -> Msg {
    let _ = frame::write_msg(sock, &Msg::StreamEnd { blocks: 1, bytes });
    let _ = frame::write_msg(ctl, &Msg::Done { blocks: 1, bytes });
    frame::expect_msg(ctl, 0).unwrap()
}

#[test]
fn issue_32_the_node_takes_the_piece_it_lacks_and_keeps_what_it_holds() {
    let base = common::scratch("pieces", "good");
    let root = base.join("root");
    let n = node(&root);
    let (mut ctl, mut sock) = pieced_push(&n, &root, "in");
    let b = bytes(2, 100);
    piece(&mut sock, 100, &b);
    match finish(&mut sock, &mut ctl, 100) {
        Msg::Summary(s) => assert_eq!((s.bytes, s.files, s.blocks), (100, 3, 1)),
        m => panic!("expected SUMMARY, got {m:?}"),
    }
    assert_eq!(fs::read(root.join("in/a")).unwrap(), bytes(1, 100));
    assert_eq!(fs::read(root.join("in/b")).unwrap(), b);
    assert_eq!(fs::read(root.join("in/c")).unwrap(), bytes(3, 100));
}

/// What a hostile sender writes on the data connection.
type Bad<'a> = Box<dyn Fn(&mut TcpStream) + 'a>;

#[test]
fn issue_32_hostile_pieces_are_protocol_errors() {
    let base = common::scratch("pieces", "hostile");
    let root = base.join("root");
    let n = node(&root);
    let b = bytes(2, 100);
    let cases: Vec<(&str, Bad, u64)> = vec![
        ("covering a held file", Box::new(|s| piece(s, 0, &bytes(1, 200))), 200),
        ("overlapping the run", Box::new(|s| piece(s, 50, &bytes(1, 100))), 100),
        ("inside the run", Box::new(|s| piece(s, 120, &b[20..])), 80),
        ("shorter than the run", Box::new(|s| piece(s, 100, &b[..50])), 50),
        ("outside the block", Box::new(|s| piece(s, 8192, &b)), 100),
        ("twice", Box::new(|s| (0..2).for_each(|_| piece(s, 100, &b))), 200),
        (
            "a whole block",
            Box::new(|s| {
                let all = [bytes(1, 100), b.clone(), bytes(3, 100)].concat();
                frame::write_msg(s, &Msg::Block { offset: 0, len: 300, xxh3: xxh3(&all) }).unwrap();
                let _ = s.write_all(&all);
            }),
            300,
        ),
        ("none: the bytes do not add up", Box::new(|_| {}), 100),
    ];
    for (i, (name, send_bad, bytes)) in cases.into_iter().enumerate() {
        let (mut ctl, mut sock) = pieced_push(&n, &root, &format!("case{i}"));
        send_bad(&mut sock);
        match finish(&mut sock, &mut ctl, bytes) {
            Msg::Error { code, message } => {
                eprintln!("{name}: {message}");
                assert_eq!(code, "E_PROTOCOL", "{name}: {message}");
            }
            m => panic!("{name}: expected ERROR, got {m:?}"),
        }
        // What the node held stays as it was.
        assert_eq!(fs::read(root.join(format!("case{i}/a"))).unwrap(), bytes_of(1), "{name}");
    }
}

fn bytes_of(seed: u64) -> Vec<u8> {
    bytes(seed, 100)
}
