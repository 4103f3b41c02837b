//! Issue 35: the node returns where its writers' time went (DiskStats) at the end of SUMMARY, to
//! a client that offered FEATURE_DISK_STATS only; an older client's SUMMARY keeps its v1 shape.

mod common;

use common::bytes;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use longhaul_core::hash::xxh3;
use longhaul_core::vfile::index::{Entry, Index, Kind};
use longhaul_core::wire::frame::{self, Msg};
use longhaul_core::{send, SendOptions, ServeOptions, Server};

#[test]
fn issue_35_a_push_gets_the_nodes_disk_figures_and_an_older_client_does_not() {
    let base = common::scratch("disk_stats", "push");
    let src = base.join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..20u64 {
        fs::write(src.join(format!("f{i}")), bytes(i, 50_000 + i as usize)).unwrap();
    }
    let n = Server::start(ServeOptions { root: base.join("root"), ..Default::default() }).unwrap();
    let cancel = AtomicBool::new(false);
    let opts = SendOptions { streams: 2, block_size: 65_536, ..Default::default() };
    let s = send(&src, &n.local_addr().to_string(), b"in", &opts, &cancel, &|_| {}).unwrap();
    let d = s.receiver.disk.expect("the node reports its disk figures");
    assert!(d.writers >= 1);
    assert_eq!(d.bytes_written, s.bytes, "every byte received was written once");
    assert!(d.write_us <= d.busy_us, "writes are part of the writers' busy time: {d:?}");
    assert_eq!(d.rate_us, 0, "no bandwidth limit, no wait on one");

    // A client that does not offer the bit (an older one) gets the SUMMARY it knows.
    let data = bytes(7, 10_000);
    let e = Entry {
        path: b"one.bin".as_slice().into(),
        kind: Kind::File,
        mode: 0o644,
        mtime_ns: 0,
        size: 10_000,
        offset: 0,
        target: Box::default(),
    };
    let index = Index::from_entries(vec![e]).unwrap().encode();
    let mut ctl = TcpStream::connect(n.local_addr()).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    frame::write_msg(&mut ctl, &Msg::Hello { min: 1, max: 1, features: frame::FEATURE_XXH3, nonce: [0; 16] }).unwrap();
    let Msg::HelloOk { features, .. } = frame::expect_msg(&mut ctl, 0).unwrap() else { panic!("no HELLO_OK") };
    assert_ne!(features & frame::FEATURE_DISK_STATS, 0, "the node offers the bit");
    frame::write_msg(&mut ctl, &Msg::Manifest { dest: b"old".to_vec(), streams: 1, block_size: 1 << 20, index }).unwrap();
    let Msg::Ready { token, .. } = frame::expect_msg(&mut ctl, 0).unwrap() else { panic!("no READY") };
    let mut sock = TcpStream::connect(n.local_addr()).unwrap();
    frame::write_msg(&mut sock, &Msg::DataHello { token, stream: 0 }).unwrap();
    frame::write_msg(&mut sock, &Msg::Block { offset: 0, len: data.len() as u32, xxh3: xxh3(&data) }).unwrap();
    sock.write_all(&data).unwrap();
    frame::write_msg(&mut sock, &Msg::StreamEnd { blocks: 1, bytes: data.len() as u64 }).unwrap();
    frame::write_msg(&mut ctl, &Msg::Done { blocks: 1, bytes: data.len() as u64 }).unwrap();
    // Read raw: the frame's length is the v1 SUMMARY's, 1 type byte and 7 u64s.
    let mut len = [0u8; 4];
    std::io::Read::read_exact(&mut ctl, &mut len).unwrap();
    assert_eq!(u32::from_le_bytes(len), 1 + 7 * 8);
}
