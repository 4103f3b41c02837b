//! Writes the fuzz targets' seed corpus (fuzz/corpus/{frame,index,readv,segment}) from the
//! protocol vectors and a small index: `cargo test --release -p longhaul-core --test fuzz_seeds -- --ignored`.
//! Run by hand when a frame or the index format changes; the corpus is committed.

use std::path::Path;

use longhaul_core::vfile::index::{Entry, Index, Kind};
use longhaul_core::vfile::segment::{encode_segments, entries_of};
use longhaul_core::wire::frame::{FrameType, Msg, Segment};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn entry(path: &str, kind: Kind, size: u64, offset: u64, target: &str) -> Entry {
    Entry {
        path: path.as_bytes().into(),
        kind,
        mode: 0o644,
        mtime_ns: 1_700_000_000_123_456_789,
        size,
        offset,
        target: target.as_bytes().into(),
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand when a format changes"]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let vectors = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol-vectors.txt")).unwrap();
    let mut all = Vec::new();
    for line in vectors.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, hex) = line.split_once(' ').unwrap();
        let frame = unhex(hex.trim());
        write(&root.join("frame"), name, &frame);
        all.extend_from_slice(&frame);
        if name == "readv" {
            for size in [0u64, 3, 4096, 1 << 30] {
                let mut seed = size.to_le_bytes().to_vec();
                seed.extend_from_slice(&frame[5..]);
                write(&root.join("readv"), &format!("readv-{size}"), &seed);
            }
        }
    }
    write(&root.join("frame"), "session", &all);
    // Adjacent segments that coalesce, as a client reading a file in pieces sends them.
    let segments = (0..16).map(|i| Segment { file: (i % 2) as u16, offset: (i / 2) * 4096, len: 4096 }).collect();
    let m = Msg::Readv { paths: vec![b"a".to_vec(), b"dir/b".to_vec()], segments }.encode();
    let mut seed = (1u64 << 20).to_le_bytes().to_vec();
    seed.extend_from_slice(&m[5..]);
    assert_eq!(m[4], FrameType::Readv as u8);
    write(&root.join("readv"), "readv-adjacent", &seed);

    let index = Index::from_entries(vec![
        entry("dir", Kind::Dir, 0, 0, ""),
        entry("dir/a", Kind::File, 10, 0, ""),
        entry("dir/empty", Kind::File, 0, 0, ""),
        entry("dir/link", Kind::Symlink, 0, 0, "a"),
        entry("dir/sub", Kind::Dir, 0, 0, ""),
        entry("dir/sub/b", Kind::File, 5000, 10, ""),
        entry("z", Kind::File, 1, 5010, ""),
    ])
    .unwrap();
    // The index target reads a mode byte first: even asks it to append the checksum itself.
    for (name, bytes) in [("small-tree", index.encode()), ("empty", Index::from_entries(Vec::new()).unwrap().encode())] {
        write(&root.join("index"), &format!("{name}-whole"), &[&[1u8][..], &bytes].concat());
        write(&root.join("index"), &format!("{name}-body"), &[&[0u8][..], &bytes[..bytes.len() - 8]].concat());
    }
    // The segment target reads a mode byte, then segments as a u16 length and bytes (even: the
    // target appends each checksum). The same tree as a stream of segments of 1, 3 and all.
    let mut linked = index.entries().to_vec();
    linked.push(entry("zz", Kind::HardLink, 0, 6, ""));
    let linked = Index::from_entries(linked).unwrap();
    for per in [1u64, 3, 100] {
        let segments = encode_segments(entries_of(&linked), per, 1 << 20).unwrap();
        for (mode, name) in [(1u8, "whole"), (0, "body")] {
            let mut seed = vec![mode | ((per as u8 - 1) << 1)];
            for s in &segments {
                let s = if mode == 1 { &s[..] } else { &s[..s.len() - 8] };
                seed.extend_from_slice(&(s.len() as u16).to_le_bytes());
                seed.extend_from_slice(s);
            }
            write(&root.join("segment"), &format!("tree-by-{per}-{name}"), &seed);
        }
    }
}
