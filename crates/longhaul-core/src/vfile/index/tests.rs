use proptest::prelude::*;

use super::*;

fn dir(p: &str) -> Entry {
    Entry {
        path: p.as_bytes().into(),
        kind: Kind::Dir,
        mode: 0o755,
        mtime_ns: 1_700_000_000_123_456_789,
        size: 0,
        offset: 0,
        target: Box::default(),
    }
}
fn file(p: &str, size: u64) -> Entry {
    Entry { path: p.as_bytes().into(), kind: Kind::File, mode: 0o644, mtime_ns: -5, size, offset: 0, target: Box::default() }
}
fn link(p: &str, t: &str) -> Entry {
    Entry { path: p.as_bytes().into(), kind: Kind::Symlink, mode: 0o777, mtime_ns: 0, size: 0, offset: 0, target: t.as_bytes().into() }
}

fn sample() -> Index {
    Index::from_entries(vec![
        file("t/b/2", 10),
        dir("t"),
        dir("t/b"),
        file("t/a", 5),
        file("t/empty", 0),
        link("t/l", "../x"),
        file("t/z z/ü", 1),
        dir("t/z z"),
    ])
    .unwrap()
}

/// Encodes `entries` as given (offsets as they stand) and decodes them again.
fn decode_raw(entries: Vec<Entry>) -> Result<Index> {
    let total = entries.iter().filter(|e| e.kind == Kind::File).map(|e| e.size).sum();
    Index::decode(&encode_entries(&entries, total))
}

fn code(r: Result<Index>) -> String {
    r.err().map(|e| e.code().to_owned()).unwrap_or_else(|| "accepted".into())
}

#[test]
fn order_is_tree_order_and_offsets_follow_it() {
    let ix = sample();
    let paths: Vec<String> = ix.entries().iter().map(|e| lossy(&e.path)).collect();
    assert_eq!(paths, ["t", "t/a", "t/b", "t/b/2", "t/empty", "t/l", "t/z z", "t/z z/ü"]);
    let offs: Vec<(u64, u64)> = ix.entries().iter().map(|e| (e.offset, e.size)).collect();
    assert_eq!(offs, [(0, 0), (0, 5), (0, 0), (5, 10), (15, 0), (0, 0), (0, 0), (15, 1)]);
    assert_eq!(ix.total(), 16);
}

#[test]
fn locate_finds_the_owner_of_every_byte() {
    let ix = sample();
    let owner = |o| ix.locate(o).map(|i| lossy(&ix.entries()[i].path));
    assert_eq!(owner(0).as_deref(), Some("t/a"));
    assert_eq!(owner(4).as_deref(), Some("t/a"));
    assert_eq!(owner(5).as_deref(), Some("t/b/2"));
    assert_eq!(owner(14).as_deref(), Some("t/b/2"));
    // The empty file at 15 owns nothing; the next data file does.
    assert_eq!(owner(15).as_deref(), Some("t/z z/ü"));
    assert_eq!(owner(16), None);
}

#[test]
fn pieces_cut_a_range_at_file_boundaries() {
    let ix = sample();
    let p: Vec<(u64, u64, u64)> = ix.pieces(3, 10).map(|p| (p.file_offset, p.range_offset, p.len)).collect();
    assert_eq!(p, [(3, 0, 2), (0, 2, 8)]);
    let all: u64 = ix.pieces(0, 16).map(|p| p.len).sum();
    assert_eq!(all, 16);
}

#[test]
fn round_trip_keeps_everything() {
    let ix = sample();
    assert_eq!(Index::decode(&ix.encode()).unwrap(), ix);
}

#[test]
fn malformed_paths_are_refused_with_their_codes() {
    let cases: &[(&str, Vec<Entry>, &str)] = &[
        ("dot-dot", vec![file("../x", 1)], "E_PATH_ESCAPE"),
        ("inner dot-dot", vec![dir("a"), file("a/../../x", 1)], "E_PATH_ESCAPE"),
        ("absolute", vec![file("/etc/x", 1)], "E_PATH_ESCAPE"),
        ("through a symlink", vec![link("l", "/etc"), file("l/passwd", 1)], "E_PATH_ESCAPE"),
        ("NUL", vec![file("a\0b", 1)], "E_BAD_PATH"),
        ("empty component", vec![dir("a"), file("a//b", 1)], "E_BAD_PATH"),
        ("trailing slash", vec![dir("a/")], "E_BAD_PATH"),
        ("dot component", vec![dir("a"), file("a/./b", 1)], "E_BAD_PATH"),
        ("empty path", vec![file("", 1)], "E_BAD_PATH"),
        ("duplicate", vec![file("a", 1), file("a", 1)], "E_DUPLICATE"),
        ("missing parent", vec![file("a/b", 1)], "E_INDEX"),
        ("parent is a file", vec![file("a", 1), file("a/b", 1)], "E_INDEX"),
        // Parents are found on the stack of entries above the current one: after a sibling's
        // subtree, with the grandparent listed, through a symlink deeper down.
        ("missing parent after a subtree", vec![dir("a"), dir("a/b"), file("a/b/x", 1), file("a/c/y", 1)], "E_INDEX"),
        ("missing parent under a listed grandparent", vec![dir("a"), file("a/b/c", 1)], "E_INDEX"),
        ("parent is a file after a subtree", vec![dir("a"), dir("a/b"), file("a/b/x", 1), file("a/c", 1), file("a/c/y", 1)], "E_INDEX"),
        ("through a deeper symlink", vec![dir("a"), dir("a/b"), file("a/b/x", 1), link("a/l", "/etc"), file("a/l/p", 1)], "E_PATH_ESCAPE"),
        ("out of order", vec![file("b", 1), file("a", 1)], "E_INDEX"),
        ("link without target", vec![link("l", "")], "E_BAD_PATH"),
        ("long component", vec![file(&"x".repeat(256), 1)], "E_LIMIT"),
    ];
    for (name, entries, want) in cases {
        let mut entries = entries.clone();
        let mut cursor = 0;
        for e in &mut entries {
            if e.kind == Kind::File {
                e.offset = cursor;
                cursor += e.size;
            }
        }
        assert_eq!(&code(decode_raw(entries)), want, "case {name}");
    }
}

#[test]
fn inconsistent_sizes_and_offsets_are_refused() {
    let mut gap = vec![file("a", 4), file("b", 4)];
    gap[1].offset = 5;
    assert_eq!(code(decode_raw(gap)), "E_INDEX");
    let overlap = vec![file("a", 4), file("b", 4)]; // both at offset 0
    assert_eq!(code(decode_raw(overlap)), "E_INDEX");
    let mut sized_dir = vec![dir("d")];
    sized_dir[0].size = 3;
    assert_eq!(code(Index::decode(&encode_entries(&sized_dir, 3))), "E_INDEX");
    // A header total that disagrees with the files.
    assert_eq!(code(Index::decode(&encode_entries(&[file("a", 4)], 9))), "E_INDEX");
    // A total past the limit.
    assert_eq!(code(Index::decode(&encode_entries(&[file("a", MAX_TOTAL + 1)], MAX_TOTAL + 1))), "E_LIMIT");
    let mut bad_mode = vec![file("a", 1)];
    bad_mode[0].mode = 0o100644;
    assert_eq!(code(decode_raw(bad_mode)), "E_INDEX");
}

#[test]
fn damaged_encodings_are_refused_before_allocation() {
    let good = sample().encode();
    // Every truncation fails cleanly.
    for n in 0..good.len() {
        assert!(Index::decode(&good[..n]).is_err(), "truncated to {n} bytes was accepted");
    }
    // Any flipped bit fails the checksum (or the structure).
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        assert!(Index::decode(&bad).is_err(), "flipped byte {i} was accepted");
    }
    // A header that claims 16 M entries in a few bytes is refused without allocating them.
    let mut huge = encode_entries(&[], 0);
    huge[8..12].copy_from_slice(&(MAX_ENTRIES as u32).to_le_bytes());
    let n = huge.len() - 8;
    let sum = xxh3(&huge[..n]);
    huge[n..].copy_from_slice(&sum.to_le_bytes());
    assert_eq!(code(Index::decode(&huge)), "E_INDEX");
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,6}".prop_map(|s| s.into_bytes()),
        "[a-zA-Z0-9 ._-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..").prop_map(|s| s.into_bytes()),
        "[é中ü ]{1,4}".prop_map(|s| s.into_bytes()),
        // Not UTF-8 at all: names are bytes as on disk.
        proptest::collection::vec(0x80u8..=0xff, 1..5),
    ]
}

/// A random tree: each entry's parent is an earlier directory.
fn arb_tree() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec((arb_name(), 0u8..3, 0u64..5000, any::<i64>(), 0u32..0o7777, 0usize..1000), 1..60).prop_map(|items| {
        let mut entries: Vec<Entry> = Vec::new();
        let mut dirs: Vec<Vec<u8>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, kind, size, mtime_ns, mode, parent_pick) in items {
            let mut path = if dirs.is_empty() || parent_pick % 4 == 0 { Vec::new() } else { dirs[parent_pick % dirs.len()].clone() };
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            if !seen.insert(path.clone()) {
                continue;
            }
            let kind = [Kind::Dir, Kind::File, Kind::Symlink][kind as usize];
            if kind == Kind::Dir {
                dirs.push(path.clone());
            }
            let target = if kind == Kind::Symlink { b"../somewhere else".to_vec() } else { vec![] };
            entries.push(Entry {
                path: path.into(),
                kind,
                mode,
                mtime_ns,
                size: if kind == Kind::File { size } else { 0 },
                offset: 0,
                target: target.into(),
            });
        }
        entries
    })
}

proptest! {
    #[test]
    fn prop_round_trip(entries in arb_tree()) {
        let ix = Index::from_entries(entries).unwrap();
        let back = Index::decode(&ix.encode()).unwrap();
        prop_assert_eq!(&back, &ix);
    }

    #[test]
    fn prop_pieces_cover_every_block_exactly(entries in arb_tree(), bs in 1u64..9000) {
        let ix = Index::from_entries(entries).unwrap();
        let mut covered = 0u64;
        let mut start = 0u64;
        while start < ix.total() {
            let len = bs.min(ix.total() - start);
            let mut at = 0u64;
            for p in ix.pieces(start, len) {
                let e = &ix.entries()[p.entry];
                prop_assert_eq!(p.range_offset, at);
                prop_assert_eq!(e.offset + p.file_offset, start + at);
                prop_assert!(p.file_offset + p.len <= e.size);
                prop_assert_eq!(ix.locate(start + at), Some(p.entry));
                at += p.len;
            }
            prop_assert_eq!(at, len);
            covered += len;
            start += len;
        }
        prop_assert_eq!(covered, ix.total());
    }

    #[test]
    fn prop_path_order_is_component_by_component(
        a in proptest::collection::vec(prop_oneof![Just(b'/'), Just(0u8), Just(b'.'), Just(b'a'), Just(b'b'), Just(0xffu8)], 0..24),
        b in proptest::collection::vec(prop_oneof![Just(b'/'), Just(0u8), Just(b'.'), Just(b'a'), Just(b'b'), Just(0xffu8)], 0..24),
    ) {
        // The definition the fast comparison must agree with, on paths with long shared prefixes.
        let split = |p: &[u8]| p.split(|&c| c == b'/').map(<[u8]>::to_vec).collect::<Vec<_>>();
        prop_assert_eq!(path_cmp(&a, &b), split(&a).cmp(&split(&b)));
        let (long_a, long_b) = ([b"dir/sub/shared-prefix/".as_slice(), &a].concat(), [b"dir/sub/shared-prefix/".as_slice(), &b].concat());
        prop_assert_eq!(path_cmp(&long_a, &long_b), split(&long_a).cmp(&split(&long_b)));
    }

    #[test]
    fn prop_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Index::decode(&bytes);
    }
}

fn hard_link(p: &str, to: u64) -> Entry {
    Entry { path: p.as_bytes().into(), kind: Kind::HardLink, mode: 0o644, mtime_ns: -5, size: 0, offset: to, target: Box::default() }
}

/// Issue 32: a hard link travels as the position of its file, owns no bytes of the stream,
/// and survives the round trip; without the feature it becomes a file of its own again.
#[test]
fn hard_links_round_trip_without_bytes_and_flatten_to_files() {
    let ix = Index::from_entries(vec![dir("t"), file("t/a", 5), hard_link("t/b", 1), file("t/c", 3), hard_link("t/d", 1)]).unwrap();
    assert_eq!(ix.total(), 8);
    assert_eq!(Index::decode(&ix.encode()).unwrap(), ix);
    let owners: Vec<usize> = ix.pieces(0, 8).map(|p| p.entry).collect();
    assert_eq!(owners, [1, 3], "links own no stream bytes");
    let (flat, n) = ix.without_hard_links().unwrap();
    assert_eq!(n, 2);
    let shape: Vec<(Kind, u64, u64)> = flat.entries().iter().map(|e| (e.kind, e.size, e.offset)).collect();
    assert_eq!(shape, [(Kind::Dir, 0, 0), (Kind::File, 5, 0), (Kind::File, 5, 5), (Kind::File, 3, 10), (Kind::File, 5, 13)]);
    assert_eq!(flat.total(), 18);
}

/// Issue 32: the decoder refuses a link to itself, to a later or missing entry, to a
/// directory, symlink or another link, before anything is made (a link's encoding has no size).
#[test]
fn hard_links_to_anything_but_an_earlier_file_are_refused() {
    let t = || vec![dir("t"), file("t/a", 5), dir("t/d"), link("t/l", "x")];
    for (name, to) in [("itself", 4), ("later", 5), ("missing", 99), ("a directory", 0), ("a symlink", 3), ("huge", u64::MAX)] {
        let mut entries = t();
        entries.push(hard_link("t/m", to));
        if name == "later" {
            entries.push(file("t/z", 1));
        }
        let mut shifted = entries.clone();
        let mut cursor = 0;
        for e in shifted.iter_mut().filter(|e| e.kind == Kind::File) {
            e.offset = cursor;
            cursor += e.size;
        }
        assert_eq!(code(decode_raw(shifted)), "E_INDEX", "a link to {name}");
    }
    let mut to_link = t();
    to_link.push(hard_link("t/m", 1));
    to_link.push(hard_link("t/n", 4));
    assert_eq!(code(decode_raw(to_link)), "E_INDEX", "a link to a link");
    let mut fine = t();
    fine.push(hard_link("t/m", 1));
    assert_eq!(code(decode_raw(fine)), "accepted");
}

fn sparse(entry: u32, extents: &[(u64, u64)]) -> Sparse {
    Sparse { entry, extents: extents.into() }
}

/// Issue 32: a sparse file's data extents travel in the index (flag 1) and decide which
/// blocks are wholly holes; without them the index is what it was.
#[test]
fn sparse_extents_round_trip_and_name_the_hole_blocks() {
    use crate::vfile::blocks::BlockPlan;
    let base = Index::from_entries(vec![dir("t"), file("t/a", 100), file("t/s", 64 << 10), file("t/z", 10)]).unwrap();
    // Data at [0, 4K) and [40K, 44K) of the 64 KiB file, which starts at stream offset 100.
    let ix = base.clone().with_sparse(vec![sparse(2, &[(0, 4096), (40 << 10, 4096)])]).unwrap();
    let bytes = ix.encode();
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 1, "flag 1 marks the extents section");
    assert_eq!(Index::decode(&bytes).unwrap(), ix);
    assert_eq!(ix.extents_of(2), Some(&[(0, 4096), (40 << 10, 4096)][..]));
    assert_eq!(ix.extents_of(1), None);
    assert_eq!(base.encode()[6..8], [0, 0], "no sparse file, no flag");
    // 4 KiB blocks: the file's bytes are stream [100, 65636); its holes [4196, 41060) and
    // [45156, 65636) hold blocks 2..=9 and 12..=15 wholly; block 16 also holds t/z.
    let plan = BlockPlan::new(ix.total(), 4096);
    assert_eq!(ix.hole_blocks(plan), vec![(2, 10), (12, 16)]);
    assert_eq!(ix.without_sparse(), (base, 1));
    // A file that is one hole at the end of the stream: its last, short block is a hole too.
    let tail = Index::from_entries(vec![file("a", 5000)]).unwrap().with_sparse(vec![sparse(0, &[])]).unwrap();
    assert_eq!(tail.hole_blocks(BlockPlan::new(5000, 4096)), vec![(0, 2)]);
}

/// Issue 32: extents that overlap, touch, are empty, run past the size, name a non-file or
/// come out of order, or a file with too many, are refused by the decoder.
#[test]
fn bad_extents_are_refused() {
    let entries = Index::from_entries(vec![dir("t"), file("t/a", 100), file("t/b", 1000)]).unwrap().entries().to_vec();
    let total = 1100;
    let try_ = |s: Vec<Sparse>| code(Index::decode(&encode_with_sparse(&entries, total, &s)));
    assert_eq!(try_(vec![sparse(2, &[(0, 10), (500, 500)])]), "accepted");
    for (name, s) in [
        ("overlapping", vec![sparse(2, &[(0, 100), (50, 10)])]),
        ("touching", vec![sparse(2, &[(0, 100), (100, 10)])]),
        ("backwards", vec![sparse(2, &[(500, 10), (0, 10)])]),
        ("empty", vec![sparse(2, &[(0, 0)])]),
        ("past the size", vec![sparse(2, &[(990, 11)])]),
        ("overflowing", vec![sparse(2, &[(u64::MAX, 2)])]),
        ("a directory", vec![sparse(0, &[(0, 1)])]),
        ("a missing entry", vec![sparse(9, &[(0, 1)])]),
        ("twice", vec![sparse(1, &[(0, 1)]), sparse(1, &[(5, 1)])]),
        ("out of order", vec![sparse(2, &[(0, 1)]), sparse(1, &[(0, 1)])]),
    ] {
        assert_eq!(try_(s), "E_INDEX", "{name}");
    }
    let many: Vec<(u64, u64)> = (0..MAX_EXTENTS as u64 + 1).map(|k| (k * 2, 1)).collect();
    let big = Index::from_entries(vec![dir("t"), file("t/a", 100), file("t/b", 1 << 20)]).unwrap().entries().to_vec();
    let e = Index::decode(&encode_with_sparse(&big, 100 + (1 << 20), &[sparse(2, &many)])).unwrap_err();
    assert_eq!(e.code(), "E_LIMIT");
    // A count larger than the bytes left is refused before anything is allocated.
    let mut lying = encode_with_sparse(&entries, total, &[sparse(2, &[(0, 10)])]);
    // The section's last bytes are entry, count, start, len (one byte each): the count says 127.
    let at = lying.len() - 8 - 3;
    assert_eq!(lying[at], 1);
    lying[at] = 0x7f;
    let body = lying.len() - 8;
    let sum = crate::hash::xxh3(&lying[..body]);
    lying[body..].copy_from_slice(&sum.to_le_bytes());
    assert_eq!(code(Index::decode(&lying)), "E_INDEX");
}

/// Issue 32: owners and groups travel in their own section (flag 2), only the ids asked for;
/// a section of the wrong kind, or one cut short, is refused.
#[test]
fn owners_round_trip_and_bad_sections_are_refused() {
    let base = Index::from_entries(vec![dir("t"), file("t/a", 5), link("t/l", "a")]).unwrap();
    let ids: Box<[(u32, u32)]> = vec![(0, 0), (1234, 2345), (u32::MAX - 1, 7)].into();
    for which in [OWNER_UID, OWNER_GID, OWNER_UID | OWNER_GID] {
        let ix = base.clone().with_owners(Some(Owners { which, ids: ids.clone() })).unwrap();
        let back = Index::decode(&ix.encode()).unwrap();
        let kept: Vec<(u32, u32)> =
            ids.iter().map(|&(u, g)| (if which & OWNER_UID != 0 { u } else { 0 }, if which & OWNER_GID != 0 { g } else { 0 })).collect();
        assert_eq!(back.owners().map(|o| (o.which, o.ids.to_vec())), Some((which, kept)), "which {which}");
        assert_eq!(back.without_owners(), base);
    }
    assert!(base.clone().with_owners(Some(Owners { which: 4, ids: ids.clone() })).is_err());
    assert!(base.clone().with_owners(Some(Owners { which: 1, ids: ids[..2].into() })).is_err());
    // Cut one id short, checksum made again: refused.
    let ix = base.clone().with_owners(Some(Owners { which: 3, ids })).unwrap();
    let mut bytes = ix.encode();
    let body = bytes.len() - 8;
    bytes.remove(body - 1);
    let body = body - 1;
    let sum = crate::hash::xxh3(&bytes[..body]);
    bytes[body..].copy_from_slice(&sum.to_le_bytes());
    assert_eq!(code(Index::decode(&bytes)), "E_INDEX");
}

/// Issue 32: extended attributes travel in their own section (flag 4); a name with NUL, more
/// than 64 KiB an entry, a hard link or an entry out of order is refused.
#[test]
fn xattrs_round_trip_and_bad_ones_are_refused() {
    let base = Index::from_entries(vec![dir("t"), file("t/a", 5), hard_link("t/b", 1)]).unwrap();
    let attr = |n: &str, v: &[u8]| -> (Box<[u8]>, Box<[u8]>) { (n.as_bytes().into(), v.into()) };
    let x = vec![
        Xattrs { entry: 0, attrs: vec![attr("user.dir", b"d")] },
        Xattrs { entry: 1, attrs: vec![attr("user.a", b""), attr("trusted.b", &[0, 1, 2])] },
    ];
    let ix = base.clone().with_xattrs(x.clone()).unwrap();
    let back = Index::decode(&ix.encode()).unwrap();
    assert_eq!(back, ix);
    assert_eq!(back.xattrs_of(1).map(|a| a.len()), Some(2));
    assert_eq!(back.without_xattrs(), (base.clone(), 2));
    let refused = |x: Vec<Xattrs>| base.clone().with_xattrs(x).err().map(|e| e.code().to_owned());
    assert_eq!(refused(vec![Xattrs { entry: 2, attrs: vec![attr("user.a", b"")] }]).as_deref(), Some("E_INDEX"), "a hard link");
    assert_eq!(refused(vec![x[1].clone(), x[0].clone()]).as_deref(), Some("E_INDEX"), "out of order");
    assert_eq!(refused(vec![Xattrs { entry: 1, attrs: vec![attr("user.\0a", b"")] }]).as_deref(), Some("E_INDEX"), "NUL");
    let big = vec![Xattrs { entry: 1, attrs: vec![attr("user.big", &vec![7; MAX_XATTR_BYTES])] }];
    assert_eq!(refused(big).as_deref(), Some("E_LIMIT"));
}
