//! Resume on loopback, without Node: a push cut short keeps its journal and temporary files, and
//! the next attempt sends only what the node does not hold; a changed file is sent again whole;
//! a temporary file damaged between attempts is caught by the read-back check. A pull cut short
//! resumes the same way, with the client's journal.

mod common;

use common::{bytes, snapshot};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use longhaul_core::client::{self, GetOptions};
use longhaul_core::{send, SendOptions, SendSummary, ServeOptions, Server};

const BLOCK: u32 = 1 << 20;

/// 24 MiB in one file and 200 small files around it.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b")).unwrap();
    for i in 0..200u64 {
        let dir = if i % 2 == 0 { "a" } else { "a/b" };
        fs::write(root.join(dir).join(format!("s{i}")), bytes(i, ((i * 7919) % 40_000) as usize + 1)).unwrap();
    }
    fs::write(root.join("a/big"), bytes(7, 24 << 20)).unwrap();
}

fn temps(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "part") {
                out.push(p);
            }
        }
    }
    out
}

fn journals(root: &Path) -> usize {
    fs::read_dir(root.join(".longhaul/journal")).map_or(0, |d| d.count())
}

struct Setup {
    src: PathBuf,
    root: PathBuf,
    node: Server,
    /// Last, so the node stops before its directory goes.
    _dir: common::Scratch,
}

/// A node slowed to 40 MB/s so that a cancel lands mid-transfer.
fn setup(name: &str) -> Setup {
    let base = common::scratch("resume", name);
    let (src, root) = (base.join("src"), base.join("root"));
    make_tree(&src);
    let node = Server::start(ServeOptions { root: root.clone(), rate: Some(40_000_000), ..ServeOptions::default() }).unwrap();
    Setup { src, root, node, _dir: base }
}

fn opts(resume: bool) -> SendOptions {
    SendOptions { block_size: BLOCK, resume, ..SendOptions::default() }
}

fn push(s: &Setup, resume: bool) -> SendSummary {
    let addr = s.node.local_addr().to_string();
    send(&s.src, &addr, b"in", &opts(resume), &AtomicBool::new(false), &|_| {}).unwrap()
}

/// Starts a push and cancels it once `after` bytes have left.
fn push_cut(s: &Setup, after: u64) {
    let addr = s.node.local_addr().to_string();
    let cancel = AtomicBool::new(false);
    let e = send(&s.src, &addr, b"in", &opts(true), &cancel, &|p| {
        if p.bytes_done >= after {
            cancel.store(true, Ordering::SeqCst);
        }
    })
    .unwrap_err();
    assert_eq!(e.code(), "E_CANCELLED");
    // The node notices the cancel and ends the session.
    let t = std::time::Instant::now();
    while s.node.counts().active > 0 && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn sent(s: &SendSummary) -> u64 {
    s.per_stream_bytes.iter().sum()
}

#[test]
fn a_cut_push_resumes_and_sends_only_what_the_node_lacks() {
    let s = setup("cut");
    push_cut(&s, 8 << 20);
    assert_eq!(journals(&s.root), 1, "the journal stays after a failed attempt");
    assert!(!temps(&s.root.join("in")).is_empty(), "the temporary files stay for the next attempt");
    // Whatever has a final name is complete.
    for (path, _, _, data) in snapshot(&s.root.join("in/src")) {
        if !path.ends_with(".part") && !data.is_empty() {
            assert_eq!(data, fs::read(s.src.join(&path)).unwrap(), "{path} has its final name but not its bytes");
        }
    }
    let sum = push(&s, true);
    assert!(sum.resumed_bytes >= 4 << 20, "resumed only {} bytes", sum.resumed_bytes);
    assert_eq!(sent(&sum) + sum.resumed_bytes, sum.bytes, "every byte either sent or held, once");
    assert_eq!(snapshot(&s.root.join("in/src")), snapshot(&s.src));
    assert!(temps(&s.root).is_empty(), "no temporary file left");
    assert_eq!(journals(&s.root), 0, "a completed transfer's journal goes");
}

#[test]
fn a_changed_file_is_sent_again_whole_and_no_resume_sends_everything() {
    let s = setup("changed");
    push(&s, true);
    // Same tree again: every file is already there with its size and mtime.
    let again = push(&s, true);
    assert_eq!(again.resumed_bytes, again.bytes);
    assert_eq!(sent(&again), 0);
    // One small file changes (new bytes, new mtime): only the blocks holding it travel.
    let changed = s.src.join("a/s10");
    fs::write(&changed, bytes(1010, 30_000)).unwrap();
    let sum = push(&s, true);
    assert!(sent(&sum) > 0 && sent(&sum) <= 2 * BLOCK as u64, "sent {} bytes for one 30 kB file", sent(&sum));
    assert_eq!(snapshot(&s.root.join("in/src")), snapshot(&s.src));
    // --no-resume sends it all.
    let all = push(&s, false);
    assert_eq!(all.resumed_bytes, 0);
    assert_eq!(sent(&all), all.bytes);
    assert_eq!(snapshot(&s.root.join("in/src")), snapshot(&s.src));
}

#[test]
fn a_damaged_temporary_file_is_caught_on_resume() {
    let s = setup("damaged");
    push_cut(&s, 12 << 20);
    // Flip every byte the earlier attempt wrote: at 12 MiB of 28, at least 8 MiB of the big
    // file were written into its temporary file and journaled.
    let damaged = temps(&s.root.join("in"));
    assert!(!damaged.is_empty());
    for t in &damaged {
        let data: Vec<u8> = fs::read(t).unwrap().iter().map(|b| b ^ 0x40).collect();
        fs::write(t, &data).unwrap();
    }
    let sum = push(&s, true);
    assert_eq!(sent(&sum) + sum.resumed_bytes, sum.bytes);
    assert_eq!(snapshot(&s.root.join("in/src")), snapshot(&s.src), "the damaged blocks were sent again");
}

/// Issue 29 (review): a local user who puts a hard link to a file outside the root under a
/// kept temporary file's name does not get the resume written into it: the node takes over
/// only a part it made (a regular file, one link, its own), and makes a new one otherwise.
#[test]
fn a_hard_link_planted_as_a_kept_part_is_not_written_through() {
    let s = setup("hardlink");
    push_cut(&s, 12 << 20);
    let kept = temps(&s.root.join("in"));
    assert!(!kept.is_empty());
    let victim = s.root.parent().unwrap().join("victim");
    let precious = bytes(99, 3000);
    fs::write(&victim, &precious).unwrap();
    for t in &kept {
        fs::remove_file(t).unwrap();
        fs::hard_link(&victim, t).unwrap();
    }
    let sum = push(&s, true);
    assert_eq!(sum.bytes, 24 * (1 << 20) + (0..200u64).map(|i| (i * 7919) % 40_000 + 1).sum::<u64>());
    assert!(fs::read(&victim).unwrap() == precious, "the file outside the root is untouched");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1, "no name under the root is left linked to it");
    assert_eq!(snapshot(&s.root.join("in/src")), snapshot(&s.src));
}

#[test]
fn a_cut_pull_resumes_and_fetches_only_what_the_client_lacks() {
    let s = setup("pull");
    let total = push(&s, true).bytes;
    let addr = s.node.local_addr().to_string();
    let dest = s.root.parent().unwrap().join("got");
    let g = GetOptions { block_size: BLOCK, ..GetOptions::default() };

    let cancel = AtomicBool::new(false);
    let e = client::get(&addr, b"in/src", &dest, &g, &cancel, &|p| {
        if p.bytes_done >= 8 << 20 {
            cancel.store(true, Ordering::SeqCst);
        }
    })
    .unwrap_err();
    assert_eq!(e.code(), "E_CANCELLED");
    assert_eq!(journals(&dest), 1, "the client keeps its journal after a failed pull");
    assert!(!temps(&dest).is_empty(), "and its temporary files");
    for (path, _, _, data) in snapshot(&dest.join("src")) {
        if !path.ends_with(".part") && !data.is_empty() {
            assert_eq!(data, fs::read(s.src.join(&path)).unwrap(), "{path} has its final name but not its bytes");
        }
    }
    let t = std::time::Instant::now();
    while s.node.counts().active > 0 && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let r = client::get(&addr, b"in/src", &dest, &g, &AtomicBool::new(false), &|_| {}).unwrap();
    assert!(r.summary.bytes + (4 << 20) <= total, "the second pull fetched {} of {total} bytes", r.summary.bytes);
    assert_eq!(snapshot(&dest.join("src")), snapshot(&s.src));
    assert!(temps(&dest).is_empty(), "no temporary file left");
    assert!(!dest.join(".longhaul").exists(), "the finished pull's journal and its directories are gone");

    // Everything is there with its size and mtime: the next pull fetches nothing; without
    // resume it fetches everything.
    let r = client::get(&addr, b"in/src", &dest, &g, &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(r.summary.bytes, 0);
    assert_eq!(r.bytes_total, total, "a pull that moved nothing still names the whole tree");
    let all = GetOptions { resume: false, ..g };
    let r = client::get(&addr, b"in/src", &dest, &all, &AtomicBool::new(false), &|_| {}).unwrap();
    assert_eq!(r.summary.bytes, total);
    assert_eq!(snapshot(&dest.join("src")), snapshot(&s.src));
}
