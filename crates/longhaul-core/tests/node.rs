//! The storage node's requests end to end on loopback, without Node: authentication, pull,
//! listing, readv, capacity, third-party copy, and a source changed under a running transfer.

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use longhaul_core::client::{self, Connection, CopyOptions, GetOptions, ReadRequest};
use longhaul_core::wire::auth::Secret;
use longhaul_core::{send, SendOptions, ServeOptions, Server};

const T: Duration = Duration::from_secs(10);

fn scratch(name: &str) -> common::Scratch {
    common::scratch("node", name)
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("d/sub")).unwrap();
    for i in 0..40u64 {
        let dir = if i % 3 == 0 { "d/sub" } else { "d" };
        fs::write(root.join(dir).join(format!("f{i}")), bytes(i, ((i * 7919) % 50_000) as usize)).unwrap();
    }
    fs::write(root.join("d/big"), bytes(99, 5 << 20)).unwrap();
}

/// Every file and symlink under `root` with its mode and bytes, by relative path: the shared
/// snapshot without mtimes (a pull or copy sets them, but these tests compare content) or dirs.
fn files(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    snapshot(root).into_iter().filter(|e| e.1 & 0o170000 != 0o040000).map(|(p, mode, _, bytes)| (p, mode, bytes)).collect()
}

fn secret(t: &str) -> Secret {
    Secret::from_token(t.as_bytes()).unwrap()
}

fn node(root: &Path, token: Option<&str>) -> Server {
    Server::start(ServeOptions { root: root.to_path_buf(), secret: token.map(secret), ..ServeOptions::default() }).unwrap()
}

#[test]
fn authentication_is_challenge_response_and_a_wrong_token_gets_e_auth() {
    let dir = scratch("auth");
    let n = node(&dir.join("root"), Some("the right token, long enough"));
    let addr = n.local_addr().to_string();
    let wrong = Connection::open(&addr, Some(&secret("a wrong token, also long enough")), None, T).map(|_| ()).unwrap_err();
    assert_eq!(wrong.code(), "E_AUTH", "{wrong}");
    let none = Connection::open(&addr, None, None, T).map(|_| ()).unwrap_err();
    assert_eq!(none.code(), "E_AUTH", "{none}");
    let mut c = Connection::open(&addr, Some(&secret("the right token, long enough")), None, T).unwrap();
    assert!(c.list(b"").unwrap().is_empty());
    // A client holding a token does not trust a node that does not authenticate.
    let open = node(&dir.join("open"), None);
    let e =
        Connection::open(&open.local_addr().to_string(), Some(&secret("the right token, long enough")), None, T).map(|_| ()).unwrap_err();
    assert_eq!(e.code(), "E_AUTH");
    // An unauthenticated node is for loopback only unless forced.
    let e =
        Server::start(ServeOptions { root: dir.join("x"), listen: "0.0.0.0:0".into(), ..ServeOptions::default() }).map(|_| ()).unwrap_err();
    assert_eq!(e.code(), "E_USAGE");
}

#[test]
fn pull_brings_back_the_tree_byte_for_byte() {
    let dir = scratch("pull");
    let root = dir.join("root");
    make_tree(&root);
    let n = node(&root, Some("pull token, sixteen+"));
    let opts = GetOptions { secret: Some(secret("pull token, sixteen+")), streams: 3, block_size: 64 << 10, ..GetOptions::default() };
    let s = client::get(&n.local_addr().to_string(), b"d", &dir.join("out"), &opts, &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(files(&root.join("d")), files(&dir.join("out/d")));
    assert_eq!(s.summary.files, 41);
    // A missing path and the node's own directory are refused by code.
    let e = client::get(&n.local_addr().to_string(), b"nope", &dir.join("out2"), &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_NOT_FOUND");
    let e = client::get(&n.local_addr().to_string(), b".longhaul", &dir.join("out2"), &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_PATH_ESCAPE");
    // The whole root is no path to pull: it holds the node's own directory.
    let e = client::get(&n.local_addr().to_string(), b"", &dir.join("out3"), &opts, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_BAD_PATH", "{e}");
    assert!(!dir.join("out3/root").exists());
    assert_eq!(n.counts().completed, 1);
}

#[test]
fn list_names_kinds_sizes_and_hides_the_state_directory() {
    let dir = scratch("list");
    let root = dir.join("root");
    make_tree(&root);
    let n = node(&root, None);
    let mut c = Connection::open(&n.local_addr().to_string(), None, None, T).unwrap();
    let top = c.list(b"").unwrap();
    assert_eq!(top.iter().map(|e| e.name.as_slice()).collect::<Vec<_>>(), vec![b"d".as_slice()]);
    let d = c.list(b"d").unwrap();
    assert_eq!(d.len(), 26 + 1 + 1);
    let big = d.iter().find(|e| e.name == b"big").unwrap();
    assert_eq!((big.kind, big.size), (2, 5 << 20));
    assert_eq!(d.iter().find(|e| e.name == b"sub").unwrap().kind, 1);
    assert_eq!(c.list(b"d/big").unwrap().len(), 1);
    assert_eq!(c.list(b"missing").unwrap_err().code(), "E_NOT_FOUND");
    assert_eq!(c.list(b"../etc").unwrap_err().code(), "E_PATH_ESCAPE");
    // The connection survived both refusals.
    assert_eq!(c.list(b"d/sub").unwrap().len(), 14);
}

#[test]
fn readv_returns_what_separate_reads_return_and_keeps_the_connection_over_a_limit() {
    let dir = scratch("readv");
    let root = dir.join("root");
    fs::create_dir_all(root.join("r")).unwrap();
    let contents: Vec<Vec<u8>> = (0..100u64).map(|i| bytes(i + 1000, 20_000 + i as usize * 100)).collect();
    for (i, c) in contents.iter().enumerate() {
        fs::write(root.join(format!("r/{i}")), c).unwrap();
    }
    let n = node(&root, None);
    let mut c = Connection::open(&n.local_addr().to_string(), None, None, T).unwrap();
    let mut seed = 1u64;
    let segs: Vec<ReadRequest> = (0..1024)
        .map(|k| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let f = (seed >> 33) as usize % 100;
            // Some segments run past the end of their file, and runs of adjacent ones.
            let offset = if k % 7 == 1 { 0 } else { (seed >> 20) % 21_000 };
            ReadRequest { path: format!("r/{f}").into_bytes(), offset, len: 1 + (seed >> 50) as u32 % 3000 }
        })
        .collect();
    let vectored = c.readv(&segs).unwrap();
    for (s, got) in segs.iter().zip(&vectored) {
        let one = &c.readv(std::slice::from_ref(s)).unwrap()[0];
        let f: usize = std::str::from_utf8(&s.path[2..]).unwrap().parse().unwrap();
        let data = &contents[f];
        let end = (s.offset + s.len as u64).min(data.len() as u64);
        let want = &data[(s.offset.min(data.len() as u64)) as usize..end as usize];
        assert_eq!(got.as_ref().unwrap().as_slice(), want);
        assert_eq!(one.as_ref().unwrap().as_slice(), want);
    }
    // Adjacent segments are coalesced into one read.
    let adjacent: Vec<ReadRequest> = (0..8).map(|k| ReadRequest { path: b"r/5".to_vec(), offset: k * 1000, len: 1000 }).collect();
    let got: Vec<u8> = c.readv(&adjacent).unwrap().into_iter().flat_map(|r| r.unwrap()).collect();
    assert_eq!(got, contents[5][..8000]);
    let stats = n.stats_json();
    assert!(stats.contains("\"readv\":{\"requests\":1026,\"segments\":2056,"), "{stats}");
    let over: Vec<ReadRequest> = (0..1025).map(|_| ReadRequest { path: b"r/1".to_vec(), offset: 0, len: 1 }).collect();
    assert_eq!(c.readv(&over).unwrap_err().code(), "E_LIMIT");
    let long = [ReadRequest { path: b"r/1".to_vec(), offset: 0, len: (2 << 20) + 1 }];
    assert_eq!(c.readv(&long).unwrap_err().code(), "E_LIMIT");
    // Each segment has its own status. A FIFO someone made under the root is not a file to
    // read (opened without waiting for a writer: the request is answered, not held).
    let fifo = root.join("r/fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink(root.join("r"), root.join("link")).unwrap();
    let mixed = [
        ReadRequest { path: b"r/2".to_vec(), offset: 10, len: 5 },
        ReadRequest { path: b"missing".to_vec(), offset: 0, len: 5 },
        ReadRequest { path: b".longhaul/stored".to_vec(), offset: 0, len: 5 },
        ReadRequest { path: b"r/fifo".to_vec(), offset: 0, len: 5 },
        ReadRequest { path: b"link/2".to_vec(), offset: 0, len: 5 },
        ReadRequest { path: b"r/2/under-a-file".to_vec(), offset: 0, len: 5 },
    ];
    let r = c.readv(&mixed).unwrap();
    assert_eq!(r[0].as_ref().unwrap().as_slice(), &contents[2][10..15]);
    assert_eq!(r[1].as_ref().unwrap_err().code(), "E_NOT_FOUND");
    assert_eq!(r[2].as_ref().unwrap_err().code(), "E_PATH_ESCAPE");
    assert_eq!(r[3].as_ref().unwrap_err().code(), "E_BAD_PATH");
    assert_eq!(r[4].as_ref().unwrap_err().code(), "E_PATH_ESCAPE");
    assert_eq!(r[5].as_ref().unwrap_err().code(), "E_PATH_ESCAPE");
}

#[test]
fn capacity_refuses_before_any_write_and_the_account_survives_a_restart() {
    let dir = scratch("capacity");
    let src = dir.join("src");
    make_tree(&src);
    let root = dir.join("root");
    let n = Server::start(ServeOptions { root: root.clone(), capacity: Some(1 << 20), ..ServeOptions::default() }).unwrap();
    let e =
        send(&src.join("d"), &n.local_addr().to_string(), b"in", &SendOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_CAPACITY");
    assert!(e.to_string().contains("needs") && e.to_string().contains("free"), "{e}");
    assert!(!root.join("in").exists(), "nothing may be written before the capacity check");
    drop(n);
    let n = Server::start(ServeOptions { root: root.clone(), capacity: Some(64 << 20), ..ServeOptions::default() }).unwrap();
    send(&src.join("d"), &n.local_addr().to_string(), b"in", &SendOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap();
    let total: u64 = files(&src.join("d")).iter().map(|f| f.2.len() as u64).sum();
    assert_eq!(n.counts().stored, total);
    // Sending the same tree again replaces it: the account does not double.
    send(&src.join("d"), &n.local_addr().to_string(), b"in", &SendOptions::default(), &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(n.counts().stored, total);
    drop(n);
    let n = Server::start(ServeOptions { root: root.clone(), capacity: Some(64 << 20), ..ServeOptions::default() }).unwrap();
    assert_eq!(n.counts().stored, total);
}

#[test]
fn third_party_copy_moves_a_tree_from_node_to_node() {
    let dir = scratch("copy");
    let a_root = dir.join("a");
    make_tree(&a_root);
    let token = "shared by both nodes, long";
    let b = node(&dir.join("b"), Some(token));
    let a = Server::start(ServeOptions {
        root: a_root.clone(),
        secret: Some(secret(token)),
        copy_to: vec![b.local_addr().to_string()],
        ..ServeOptions::default()
    })
    .unwrap();
    let s = client::copy(
        &a.local_addr().to_string(),
        b"d",
        &b.local_addr().to_string(),
        b"copied",
        &CopyOptions { streams: 2, block_size: 1 << 20, secret: Some(secret(token)), tls: None, timeout: T, verify_full: false },
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap();
    assert_eq!(s.summary.files, 41);
    assert_eq!(files(&a_root.join("d")), files(&dir.join("b/copied/d")));
    assert_eq!(a.counts().completed, 1);
    assert_eq!(b.counts().completed, 1);
}

/// issue 29: a node connects for a copy only to a target its operator listed. Another
/// address gets E_DENIED and no connection at all (a listener there accepts nothing); a node
/// with no list copies nowhere; the listed target still works afterwards.
#[test]
fn a_copy_goes_only_to_a_listed_target_issue_29() {
    use std::net::TcpListener;
    let dir = scratch("copy-to");
    let a_root = dir.join("a");
    make_tree(&a_root);
    let b = node(&dir.join("b"), None);
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let a =
        Server::start(ServeOptions { root: a_root.clone(), copy_to: vec![b.local_addr().to_string()], ..ServeOptions::default() }).unwrap();
    let unlisted = Server::start(ServeOptions { root: dir.join("u"), ..ServeOptions::default() }).unwrap();
    let copy = |from: &Server, to: &str, dest: &[u8]| {
        client::copy(
            &from.local_addr().to_string(),
            b"d",
            to,
            dest,
            &CopyOptions { streams: 2, block_size: 1 << 20, secret: None, tls: None, timeout: T, verify_full: false },
            &AtomicBool::new(false),
            &|_| {},
        )
    };
    let trap_addr = trap.local_addr().unwrap().to_string();
    for (from, to) in [(&a, trap_addr.as_str()), (&a, "localhost:1"), (&unlisted, &b.local_addr().to_string())] {
        let e = copy(from, to, b"x").unwrap_err();
        assert_eq!(e.code(), "E_DENIED", "{to}: {e}");
    }
    assert_eq!(trap.accept().map(|_| ()).unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "the node connected to an unlisted target");
    assert!(!dir.join("b/x").exists());
    assert_eq!(b.counts().active + b.counts().completed + b.counts().failed, 0);
    let s = copy(&a, &b.local_addr().to_string(), b"copied").unwrap();
    assert_eq!(s.summary.files, 41);
    assert_eq!(files(&a_root.join("d")), files(&dir.join("b/copied/d")));
    // The node's own block limit bounds a copy, whatever the receiving node would take.
    let e = client::copy(
        &a.local_addr().to_string(),
        b"d",
        &b.local_addr().to_string(),
        b"big-blocks",
        &CopyOptions { streams: 8, block_size: 64 << 20, secret: None, tls: None, timeout: T, verify_full: false },
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap_err();
    assert_eq!(e.code(), "E_LIMIT", "{e}");
    assert_eq!(b.counts().completed, 1);
}

/// issue 29: with a small memory budget, a pull that does not fit beside a running one gets
/// E_BUSY with a retry-after hint and allocates nothing; the running pull completes and the node
/// takes the next one. The stats show the budget and what is held.
#[test]
fn a_pull_past_the_memory_budget_gets_busy_with_a_hint_issue_29() {
    let dir = scratch("budget");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("slow"), bytes(1, 3 << 20)).unwrap();
    fs::write(root.join("small"), bytes(2, 1000)).unwrap();
    // The push pool is one 4 MiB buffer; 2 MiB are left for pulls: one 1 MiB pool at a time.
    let n = Server::start(ServeOptions {
        root: root.clone(),
        pool_buffers: 1,
        memory: 6 << 20,
        rate: Some(1 << 20),
        ..ServeOptions::default()
    })
    .unwrap();
    assert_eq!(stat(&n.stats_json(), "budget"), 6 << 20);
    assert_eq!(stat(&n.stats_json(), "held"), 4 << 20);
    let addr = n.local_addr().to_string();
    let g = GetOptions { block_size: 1 << 20, ..Default::default() };
    std::thread::scope(|s| {
        let first = s.spawn(|| client::get(&addr, b"slow", &dir.join("got1"), &g, &AtomicBool::new(false), &|_| {}));
        let until = std::time::Instant::now() + T;
        while n.counts().active == 0 {
            assert!(std::time::Instant::now() < until, "the first pull never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(stat(&n.stats_json(), "held") > (5 << 20));
        let e = client::get(&addr, b"slow", &dir.join("got2"), &g, &AtomicBool::new(false), &|_| {}).unwrap_err();
        assert_eq!(e.code(), "E_BUSY", "{e}");
        assert!(e.to_string().contains("retry after 5 s"), "{e}");
        assert!(!dir.join("got2/slow").exists());
        let r = first.join().unwrap().unwrap();
        assert_eq!(r.summary.bytes, 3 << 20);
    });
    assert_eq!(fs::read(dir.join("got1/slow")).unwrap(), fs::read(root.join("slow")).unwrap());
    // The node lets go of a pull's share when its session ends, just after the client has its
    // summary: waited for, not raced.
    let until = std::time::Instant::now() + T;
    while stat(&n.stats_json(), "held") != 4 << 20 {
        assert!(std::time::Instant::now() < until, "the pull gave its memory back");
        std::thread::sleep(Duration::from_millis(5));
    }
    client::get(&addr, b"small", &dir.join("got3"), &g, &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(fs::read(dir.join("got3/small")).unwrap(), bytes(2, 1000));
    // A pull whose pool could never fit is a limit, not a busy node to retry.
    let big = GetOptions { block_size: 4 << 20, ..Default::default() };
    let e = client::get(&addr, b"slow", &dir.join("got4"), &big, &AtomicBool::new(false), &|_| {}).unwrap_err();
    assert_eq!(e.code(), "E_LIMIT", "{e}");
}

/// A number field of the node's stats JSON.
fn stat(stats: &str, key: &str) -> u64 {
    let at = stats.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {stats}")) + key.len() + 3;
    stats[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

#[test]
fn files_in_one_piece_are_linked_in_complete_and_replace_what_is_there() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("tmpfile");
    let src = dir.join("src/t");
    fs::create_dir_all(src.join("a")).unwrap();
    for i in 0..30u64 {
        fs::write(src.join("a").join(format!("s{i}")), bytes(i, 1000 + i as usize * 37)).unwrap();
    }
    // Modes the umask strips at creation (0777, setgid), and a read-only one.
    for (name, mode) in [("s0", 0o777), ("s1", 0o600), ("s2", 0o444), ("s4", 0o2755)] {
        fs::set_permissions(src.join("a").join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    // Larger than a block: written in pieces under a temporary name, then renamed.
    fs::write(src.join("big"), bytes(7, 3 << 20)).unwrap();
    let root = dir.join("root");
    // Files in the way are replaced whole, one by a file of another size, one of the same size
    // and another mtime.
    fs::create_dir_all(root.join("dst/t/a")).unwrap();
    fs::write(root.join("dst/t/a/s3"), b"older, shorter contents").unwrap();
    fs::write(root.join("dst/t/a/s5"), bytes(1234, 1000 + 5 * 37)).unwrap();
    // Keeping set-id bits, so that s4's setgid, which open() does not set, must be chmodded.
    let n = Server::start(ServeOptions { root: root.clone(), keep_setid: true, ..ServeOptions::default() }).unwrap();
    let opts = SendOptions { block_size: 1 << 20, ..SendOptions::default() };
    send(&src, &n.local_addr().to_string(), b"dst", &opts, &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(snapshot(&src), snapshot(&root.join("dst/t")));
    let stats = n.stats_json();
    assert_eq!((stat(&stats, "filesLinked"), stat(&stats, "filesRenamed")), (30, 1), "{stats}");
    assert!(stats.contains("\"lastFileCreation\":\"files in one piece: O_TMPFILE + link"), "{stats}");
    let names: Vec<String> =
        fs::read_dir(root.join("dst/t/a")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with(".lh-")), "temporary names left: {names:?}");
}

/// Bytes no transfer may carry: they lie outside every source.
const OUTSIDE: &[u8] = b"bytes outside the source that a swapped-in symlink points at";

/// A tree whose first file takes about three seconds at 16 MiB/s, so `t/z/late` is read well
/// after the first progress report, when the tests swap it (or its directory) for a symlink.
fn slow_tree(root: &Path) {
    fs::create_dir_all(root.join("t/z")).unwrap();
    fs::write(root.join("t/a-big"), bytes(5, 48 << 20)).unwrap();
    fs::write(root.join("t/z/late"), b"the file as it was scanned").unwrap();
}

/// Whether any file under `dir` holds `OUTSIDE`.
fn holds_outside(dir: &Path) -> bool {
    snapshot(dir).iter().any(|(_, mode, _, data)| mode & 0o170000 == 0o100000 && data.windows(OUTSIDE.len()).any(|w| w == OUTSIDE))
}

#[test]
fn a_source_file_swapped_for_a_symlink_after_the_scan_is_e_source_changed_and_its_target_is_not_sent() {
    let dir = scratch("swap-push");
    let src = dir.join("src");
    slow_tree(&src);
    fs::write(dir.join("outside"), OUTSIDE).unwrap();
    let n = Server::start(ServeOptions { root: dir.join("root"), rate: Some(16 << 20), ..ServeOptions::default() }).unwrap();
    let swapped = std::sync::Once::new();
    let swap = || {
        fs::remove_file(src.join("t/z/late")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), src.join("t/z/late")).unwrap();
    };
    let opts = SendOptions { streams: 2, ..Default::default() };
    let e = send(&src.join("t"), &n.local_addr().to_string(), b"in", &opts, &AtomicBool::new(false), &|p| {
        if p.bytes_done > 0 {
            swapped.call_once(swap);
        }
    })
    .unwrap_err();
    assert!(swapped.is_completed());
    assert_eq!(e.code(), "E_SOURCE_CHANGED", "{e}");
    assert!(e.to_string().contains("t/z/late"), "{e}");
    assert!(!holds_outside(&dir.join("root")));
    // The sender told the node why: its errors carry the same code, not E_PROTOCOL.
    let counted = || n.stats_json().contains("\"E_SOURCE_CHANGED\":1");
    for _ in 0..50 {
        if counted() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(counted(), "{}", n.stats_json());
    assert!(!n.stats_json().contains("E_PROTOCOL"), "{}", n.stats_json());
}

#[test]
fn a_pull_whose_directory_is_swapped_for_a_symlink_after_the_scan_sends_nothing_from_outside_the_root() {
    let dir = scratch("swap-pull");
    let root = dir.join("root");
    slow_tree(&root);
    fs::create_dir(dir.join("elsewhere")).unwrap();
    fs::write(dir.join("elsewhere/late"), OUTSIDE).unwrap();
    let n = Server::start(ServeOptions { root: root.clone(), rate: Some(16 << 20), ..ServeOptions::default() }).unwrap();
    let swapped = std::sync::Once::new();
    let swap = || {
        fs::rename(root.join("t/z"), dir.join("z.old")).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), root.join("t/z")).unwrap();
    };
    let opts = GetOptions { streams: 2, ..GetOptions::default() };
    let out = dir.join("out");
    let e = client::get(&n.local_addr().to_string(), b"t", &out, &opts, &AtomicBool::new(false), &|p| {
        if p.bytes_done > 0 {
            swapped.call_once(swap);
        }
    })
    .unwrap_err();
    assert!(swapped.is_completed());
    assert_eq!(e.code(), "E_SOURCE_CHANGED", "{e}");
    assert!(!holds_outside(&out));
}

/// issue 29: two pushes of different trees (different sizes, names in common, so each replaces
/// files of the other) to the same destination at once leave the stored account equal to the
/// regular files' bytes under the root (it counted both trees: 178 MB for 94 MB on disk).
#[test]
fn concurrent_pushes_to_one_destination_count_each_file_once() {
    let dir = scratch("concurrent");
    let (a, b) = (dir.join("a/t"), dir.join("b/t"));
    for (src, seed, n, big) in [(&a, 1u64, 120u64, 3usize << 20), (&b, 2, 160, 5 << 20)] {
        fs::create_dir_all(src.join("s")).unwrap();
        for i in 0..n {
            let start = if seed == 1 { 0 } else { 60 };
            fs::write(src.join(format!("s/f{}", start + i)), bytes(seed * 1000 + i, ((i * 37 * seed) % 9000) as usize)).unwrap();
        }
        fs::write(src.join("big"), bytes(seed, big + seed as usize)).unwrap();
        fs::write(src.join(format!("only-{seed}")), bytes(seed + 10, 1 << 20)).unwrap();
    }
    let root = dir.join("root");
    let n = Server::start(ServeOptions { root: root.clone(), ..ServeOptions::default() }).unwrap();
    let addr = n.local_addr().to_string();
    let opts = SendOptions { block_size: 256 << 10, ..SendOptions::default() };
    for _ in 0..3 {
        std::thread::scope(|s| {
            for src in [&a, &b] {
                let (addr, opts) = (&addr, &opts);
                s.spawn(move || send(src, addr, b"same", opts, &AtomicBool::new(false), &|_| {}).unwrap());
            }
        });
        let on_disk = longhaul_core::node::state::du(&root, true);
        assert_eq!(n.counts().stored, on_disk);
        assert!(on_disk < longhaul_core::node::state::du(&dir.join("a"), false) + longhaul_core::node::state::du(&dir.join("b"), false));
    }
    let stats = n.stats_json();
    assert!(stats.contains(r#""parts":0,"partsBytes":0"#), "{stats}");
}

/// issue 29: a push that replaces a file needs room for the replacement, which is allocated in
/// full beside the old file until it is renamed over it (crediting the old file let concurrent
/// pushes replacing one file each hold a part of its size with nothing reserved); sending the
/// same file again writes nothing and needs nothing.
#[test]
fn replacing_a_file_needs_room_for_its_replacement() {
    let dir = scratch("replace-room");
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), bytes(1, 6 << 20)).unwrap();
    let root = dir.join("root");
    let n = Server::start(ServeOptions { root: root.clone(), capacity: Some(10 << 20), ..ServeOptions::default() }).unwrap();
    let addr = n.local_addr().to_string();
    let push = || send(&src, &addr, b"in", &SendOptions::default(), &AtomicBool::new(false), &|_| {});
    push().unwrap();
    assert_eq!(n.counts().stored, 6 << 20);
    push().unwrap();
    assert_eq!(n.counts().stored, 6 << 20);
    fs::write(src.join("f"), bytes(2, 6 << 20)).unwrap();
    fs::File::options()
        .write(true)
        .open(src.join("f"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    let e = push().unwrap_err();
    assert_eq!(e.code(), "E_CAPACITY", "{e}");
    assert_eq!(n.counts().stored, 6 << 20);
    assert_eq!(longhaul_core::node::state::du(&root, true), 6 << 20);
}
