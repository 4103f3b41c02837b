//! Checks the codec against the hex test vectors in docs/protocol-vectors.txt, which other
//! implementations can use too.

use super::*;
use crate::util::hex;

const VECTORS: &str = include_str!("../../../../../docs/protocol-vectors.txt");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn message(name: &str) -> Msg {
    let token: Token = core::array::from_fn(|i| i as u8);
    match name {
        "hello" => Msg::Hello { min: 1, max: 1, features: FEATURE_XXH3, nonce: core::array::from_fn(|i| 0x10 + i as u8) },
        "hello_both" => {
            Msg::Hello { min: 1, max: 1, features: FEATURE_XXH3 | FEATURE_BLAKE3, nonce: core::array::from_fn(|i| 0x10 + i as u8) }
        }
        "hello_ok" => Msg::HelloOk {
            version: 1,
            features: FEATURE_XXH3,
            limits: Limits {
                max_streams: 64,
                max_block: 4 << 20,
                max_manifest: 256 << 20,
                max_readv_segments: 1024,
                max_readv_segment: 2 << 20,
            },
            auth: true,
            nonce: core::array::from_fn(|i| 0x20 + i as u8),
        },
        "auth" => Msg::Auth { mac: core::array::from_fn(|i| 0x30 + i as u8) },
        "auth_ok" => Msg::AuthOk { mac: core::array::from_fn(|i| 0x50 + i as u8) },
        "get" => Msg::Get { path: b"data".to_vec(), streams: 2, block_size: 4 << 20, keep: 0 },
        "get_keep" => Msg::Get { path: b"data".to_vec(), streams: 2, block_size: 4 << 20, keep: KEEP_OWNER | KEEP_XATTRS },
        "list" => Msg::List { path: b"data".to_vec() },
        "listing" => Msg::Listing {
            last: true,
            entries: vec![
                ListEntry { name: b"a".to_vec(), kind: 2, mode: 0o644, size: 5, mtime_ns: 1_700_000_000_000_000_000 },
                ListEntry { name: b"sub".to_vec(), kind: 1, mode: 0o755, size: 0, mtime_ns: -1 },
            ],
        },
        "readv" => Msg::Readv {
            paths: vec![b"a".to_vec(), b"d/b".to_vec()],
            segments: vec![Segment { file: 0, offset: 0, len: 4 }, Segment { file: 1, offset: 4096, len: 2 << 20 }],
        },
        "readv_data" => Msg::ReadvData {
            results: vec![SegmentResult { len: 4, code: String::new() }, SegmentResult { len: 0, code: "E_NOT_FOUND".into() }],
        },
        "stats" => Msg::Stats,
        "stats_ok" => Msg::StatsOk { json: "{\"active\":0}".into() },
        "copy" => Msg::Copy { to: "10.0.0.2:7000".into(), src: b"data".to_vec(), dest: b"in".to_vec(), streams: 2, block_size: 4 << 20 },
        "copy_progress" => Msg::CopyProgress { bytes_done: 1 << 20, bytes_total: 4 << 20, files_done: 1, files_total: 3 },
        "manifest" => Msg::Manifest { dest: b"in".to_vec(), streams: 2, block_size: 4 << 20, index: vec![0xaa, 0xbb] },
        "ready" => Msg::Ready { token, streams: 2 },
        "data_hello" => Msg::DataHello { token, stream: 1 },
        "plan" => Msg::Plan { nblocks: 10, ranges: vec![(0, 3), (5, 6)] },
        "block" => Msg::Block { offset: 4 << 20, len: 4 << 20, xxh3: 0x0123_4567_89ab_cdef },
        "block_b3" => Msg::BlockB3 { offset: 0, len: 4096, xxh3: 7, blake3: core::array::from_fn(|i| 0xa0 + i as u8) },
        "stream_end" => Msg::StreamEnd { blocks: 3, bytes: 12 << 20 },
        "done" => Msg::Done { blocks: 5, bytes: 20_000_000 },
        "streams_opened" => Msg::StreamsOpened { count: 8 },
        "summary" => Msg::Summary(SummaryMsg {
            bytes: 20_000_000,
            files: 302,
            dirs: 3,
            symlinks: 1,
            blocks: 5,
            micros: 35_072,
            verified: 302,
            disk: None,
            owner_not_kept: None,
            xattrs_not_kept: None,
            cpu_us: None,
        }),
        "summary_disk" => Msg::Summary(SummaryMsg {
            bytes: 20_000_000,
            files: 302,
            dirs: 3,
            symlinks: 1,
            blocks: 5,
            micros: 35_072,
            verified: 0,
            disk: Some(DiskStats {
                writers: 4,
                bytes_written: 20_000_000,
                write_us: 30_000,
                fsync_us: 2_000,
                busy_us: 40_000,
                idle_us: 100_000,
                queue_full_us: 5_000,
                pool_us: 0,
                rate_us: 0,
            }),
            owner_not_kept: None,
            xattrs_not_kept: None,
            cpu_us: None,
        }),
        "file_digests" => {
            Msg::FileDigests { digests: vec![(1, core::array::from_fn(|i| i as u8)), (4, core::array::from_fn(|i| 0xe0 + i as u8))] }
        }
        "sums" => Msg::Sums { mode: SUMS_CONTENT, digests: vec![(2, core::array::from_fn(|i| 0x40 + i as u8))] },
        "unchanged" => Msg::Unchanged { files: 120, bytes: 480 << 20 },
        "mirror" => Msg::Mirror { delete: true, dry_run: false, rules: vec![(true, b"keep.tmp".to_vec()), (false, b"*.tmp".to_vec())] },
        "changes" => {
            Msg::Changes { items: vec![(MARK_NEW, b"d/a".to_vec()), (MARK_UPDATE, b"d/b".to_vec()), (MARK_DELETE, b"d/old/".to_vec())] }
        }
        "tally" => Msg::Tally(Tally {
            new_files: 1,
            new_bytes: 10,
            changed_files: 2,
            changed_bytes: 20,
            deleted_files: 3,
            deleted_dirs: 1,
            deleted_bytes: 30,
            ..Tally::default()
        }),
        "tree_sums" => Msg::TreeSums { path: b"data".to_vec() },
        "tree_sums_part" => Msg::TreeSumsPart {
            last: true,
            entries: vec![
                SumEntry {
                    path: b"d/f".to_vec(),
                    kind: 2,
                    mode: 0o644,
                    size: 5,
                    mtime_ns: 1_700_000_000_000_000_000,
                    target: Vec::new(),
                    digest: Some(core::array::from_fn(|i| 0x60 + i as u8)),
                },
                SumEntry { path: b"l".to_vec(), kind: 3, mode: 0o777, size: 0, mtime_ns: -1, target: b"d/f".to_vec(), digest: None },
            ],
        },
        "block_raw" => Msg::BlockRaw { offset: 3 << 20, len: 1 << 20 },
        "bench" => Msg::Bench { streams: 2, block_size: 1 << 20, size: 10 << 30 },
        "piece" => Msg::Piece { offset: (1 << 20) + 4096, len: 10, xxh3: 0x0123456789abcdef, blake3: None },
        "piece_b3" => Msg::Piece { offset: 4096, len: 10, xxh3: 7, blake3: Some(core::array::from_fn(|i| 0xa0 + i as u8)) },
        "held" => Msg::Held { last: true, ranges: vec![(0, 3), (5, 9)] },
        "error" => Msg::Error { code: "E_PATH_ESCAPE".into(), message: "path escapes the destination root".into() },
        other => panic!("no message for vector {other}"),
    }
}

/// Every message name, in the order of docs/protocol-vectors.txt.
const ALL: [&str; 40] = [
    "hello",
    "hello_ok",
    "auth",
    "auth_ok",
    "manifest",
    "ready",
    "data_hello",
    "block",
    "stream_end",
    "done",
    "summary",
    "summary_disk",
    "error",
    "hello_both",
    "get",
    "get_keep",
    "list",
    "listing",
    "readv",
    "readv_data",
    "stats",
    "stats_ok",
    "copy",
    "copy_progress",
    "block_b3",
    "plan",
    "file_digests",
    "sums",
    "unchanged",
    "mirror",
    "changes",
    "tally",
    "tree_sums",
    "tree_sums_part",
    "block_raw",
    "bench",
    "piece",
    "piece_b3",
    "held",
    "streams_opened",
];

fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    VECTORS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(char::is_whitespace).expect("NAME HEX");
            (name, unhex(hex.trim()))
        })
        .collect()
}

#[test]
fn every_frame_type_has_a_vector() {
    let names: Vec<&str> = vectors().iter().map(|(n, _)| *n).collect();
    for n in ALL {
        assert!(names.contains(&n), "docs/protocol-vectors.txt lacks {n}");
    }
}

#[test]
fn encoding_matches_the_vectors() {
    for (name, bytes) in vectors() {
        assert_eq!(hex(&message(name).encode()), hex(&bytes), "vector {name}");
    }
}

/// Issue 31: a bench's SUMMARY carries the node's CPU time last, after the disk figures and the
/// owner and xattr counts (0 there, a bench has no index), and decodes to it; without it the
/// frame is the one the vectors hold.
#[test]
fn issue_31_a_bench_summary_carries_the_nodes_cpu_after_the_disk_figures() {
    let Msg::Summary(plain) = message("summary_disk") else { unreachable!() };
    let bench = SummaryMsg { cpu_us: Some(1_234_567), ..plain.clone() };
    let bytes = Msg::Summary(bench.clone()).encode();
    assert_eq!(bytes.len(), Msg::Summary(plain).encode().len() + 24);
    let decoded = SummaryMsg { owner_not_kept: Some(0), xattrs_not_kept: Some(0), ..bench };
    assert_eq!(read_msg(&mut &bytes[..], 1 << 20).unwrap().unwrap(), Msg::Summary(decoded));
}

/// The SUMMARY's trailing counts come in one order (owner, xattrs, CPU), each there when a
/// later one is: whichever of them a session has, they decode to what was sent.
#[test]
fn the_summarys_trailing_counts_decode_whichever_are_there() {
    let Msg::Summary(plain) = message("summary_disk") else { unreachable!() };
    let base = Msg::Summary(plain.clone()).encode().len();
    for (owner, xattrs, cpu, extra) in [
        (Some(3), None, None, 8),
        (Some(3), Some(4), None, 16),
        (Some(0), Some(4), None, 16),
        (Some(3), Some(4), Some(5), 24),
        (Some(0), Some(0), Some(5), 24),
    ] {
        let s = SummaryMsg { owner_not_kept: owner, xattrs_not_kept: xattrs, cpu_us: cpu, ..plain.clone() };
        let bytes = Msg::Summary(s.clone()).encode();
        assert_eq!(bytes.len(), base + extra, "{s:?}");
        assert_eq!(read_msg(&mut &bytes[..], 1 << 20).unwrap().unwrap(), Msg::Summary(s));
    }
}

#[test]
fn decoding_the_vectors_gives_the_messages() {
    for (name, bytes) in vectors() {
        let got = read_msg(&mut &bytes[..], 1 << 20).unwrap().unwrap();
        assert_eq!(got, message(name), "vector {name}");
    }
}

#[test]
fn limits_are_checked_before_allocation() {
    // A HELLO that claims 3 GiB.
    let mut f = [0u8; 5];
    f[..4].copy_from_slice(&(3u32 << 30).to_le_bytes());
    f[4] = FrameType::Hello as u8;
    let e = read_msg(&mut &f[..], 1 << 20).unwrap_err();
    assert_eq!(e.code(), "E_LIMIT");
    // A MANIFEST over the advertised bound.
    f[..4].copy_from_slice(&(2u32 << 20).to_le_bytes());
    f[4] = FrameType::Manifest as u8;
    assert_eq!(read_msg(&mut &f[..], 1 << 20).unwrap_err().code(), "E_LIMIT");
}

#[test]
fn a_tree_sums_part_over_its_entry_cap_is_refused() {
    let e = SumEntry { path: b"f".to_vec(), kind: 2, mode: 0o644, size: 0, mtime_ns: 0, target: Vec::new(), digest: None };
    let at_cap = Msg::TreeSumsPart { last: false, entries: vec![e.clone(); MAX_TREE_SUMS_ENTRIES] }.encode();
    assert!(at_cap.len() < MAX_CONTROL_FRAME as usize);
    assert!(read_msg(&mut &at_cap[..], 0).is_ok());
    let over = Msg::TreeSumsPart { last: false, entries: vec![e; MAX_TREE_SUMS_ENTRIES + 1] }.encode();
    assert_eq!(read_msg(&mut &over[..], 0).unwrap_err().code(), "E_PROTOCOL");
}

#[test]
fn malformed_frames_are_protocol_errors() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("unknown type", vec![1, 0, 0, 0, 0x42]),
        ("zero length", vec![0, 0, 0, 0, 1]),
        ("truncated body", vec![9, 0, 0, 0, 0x06, 1, 2]),
        ("trailing bytes", {
            let mut v = message("done").encode();
            v.push(0);
            let n = (v.len() - 4) as u32;
            v[..4].copy_from_slice(&n.to_le_bytes());
            v
        }),
        ("summary with part of the disk figures", {
            let mut v = message("summary_disk").encode();
            v.truncate(v.len() - 8);
            let n = (v.len() - 4) as u32;
            v[..4].copy_from_slice(&n.to_le_bytes());
            v
        }),
        ("plan range past the end", Msg::Plan { nblocks: 4, ranges: vec![(2, 5)] }.encode()),
        ("plan ranges unsorted", Msg::Plan { nblocks: 9, ranges: vec![(5, 6), (1, 2)] }.encode()),
        ("plan range empty", Msg::Plan { nblocks: 9, ranges: vec![(3, 3)] }.encode()),
        (
            "mirror with unknown flags",
            Msg::Mirror { delete: true, dry_run: false, rules: vec![] }
                .encode()
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 5 { 4 } else { b })
                .collect(),
        ),
        ("held ranges unsorted", Msg::Held { last: true, ranges: vec![(5, 6), (1, 2)] }.encode()),
        ("held range empty", Msg::Held { last: true, ranges: vec![(3, 3)] }.encode()),
        ("held ranges overlapping", Msg::Held { last: false, ranges: vec![(1, 4), (3, 6)] }.encode()),
        ("held with a bad last flag", {
            let mut v = Msg::Held { last: true, ranges: vec![] }.encode();
            v[5] = 2;
            v
        }),
        (
            "held over its range cap",
            Msg::Held { last: true, ranges: (0..MAX_HELD_RANGES as u32 + 1).map(|i| (2 * i, 2 * i + 1)).collect() }.encode(),
        ),
        ("empty piece", Msg::Piece { offset: 0, len: 0, xxh3: 0, blake3: None }.encode()),
        ("piece with part of a blake3", {
            let mut v = Msg::Piece { offset: 0, len: 1, xxh3: 0, blake3: None }.encode();
            v.extend_from_slice(&[0; 16]);
            let n = (v.len() - 4) as u32;
            v[..4].copy_from_slice(&n.to_le_bytes());
            v
        }),
        ("changes with an unknown mark", Msg::Changes { items: vec![(b'?', b"x".to_vec())] }.encode()),
        ("hello without magic", vec![21, 0, 0, 0, 0x01, b'N', b'O', b'P', b'E', 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (name, bytes) in cases {
        let e = read_msg(&mut &bytes[..], 1 << 20).unwrap_err();
        assert_eq!(e.code(), "E_PROTOCOL", "case {name}: {e}");
    }
    assert!(read_msg(&mut &[][..], 1 << 20).unwrap().is_none(), "a clean end of stream is not an error");
}

#[test]
#[ignore = "prints the vectors; run by hand when a frame changes"]
fn print_vectors() {
    for n in ALL {
        println!("{n} {}", hex(&message(n).encode()));
    }
}

mod props {
    use proptest::prelude::*;

    use super::*;

    /// Bodies near a valid one: a vector's body with bytes flipped, cut or added.
    fn mutated() -> impl Strategy<Value = (u8, Vec<u8>)> {
        let seeds: Vec<(u8, Vec<u8>)> = vectors().into_iter().map(|(_, f)| (f[4], f[5..].to_vec())).collect();
        (proptest::sample::select(seeds), proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), any::<u16>(), any::<bool>())
            .prop_map(|((ty, mut body), flips, cut, grow)| {
                for (at, b) in flips {
                    if !body.is_empty() {
                        let i = at % body.len();
                        body[i] ^= b;
                    }
                }
                if grow {
                    body.extend_from_slice(&cut.to_le_bytes());
                } else {
                    body.truncate(cut as usize % (body.len() + 1));
                }
                (ty, body)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever arrives, decoding answers Ok or an error, and what it accepts encodes back
        /// to a frame that decodes to the same message.
        #[test]
        fn prop_decode_never_panics_and_round_trips(ty in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = Msg::decode(ty, &body) {
                let f = m.encode();
                prop_assert_eq!(Msg::decode(f[4], &f[5..]).unwrap(), m);
            }
        }

        #[test]
        fn prop_mutated_vectors_never_panic((ty, body) in mutated()) {
            match Msg::decode(ty, &body) {
                Ok(m) => {
                    let f = m.encode();
                    prop_assert_eq!(Msg::decode(f[4], &f[5..]).unwrap(), m);
                }
                Err(e) => {
                    let code = e.code();
                    prop_assert!(code == "E_PROTOCOL" || code == "E_LIMIT", "{}", e);
                }
            }
        }

        /// READV requests of any shape survive encoding, and a count the body cannot hold is
        /// refused before anything is allocated for it.
        #[test]
        fn prop_readv_round_trips(
            paths in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20),
            segs in proptest::collection::vec((any::<u16>(), any::<u64>(), any::<u32>()), 0..300),
        ) {
            let m = Msg::Readv { paths, segments: segs.into_iter().map(|(file, offset, len)| Segment { file, offset, len }).collect() };
            let f = m.encode();
            prop_assert_eq!(Msg::decode(f[4], &f[5..]).unwrap(), m);
            let mut lying = f[5..].to_vec();
            lying[0] = 0xff;
            lying[1] = 0xff;
            prop_assert!(Msg::decode(f[4], &lying).is_err());
        }
    }
}
