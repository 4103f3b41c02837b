//! A content index (the manifest a sender sends first). Decoding checks every path rule,
//! count, size and offset; an index it accepts encodes back to the same index, and every byte
//! of its stream maps to exactly one file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhaul_core::hash::xxh3;
use longhaul_core::vfile::index::{check_path, Index};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    // An even first byte: the rest is an index body that gets its XXH3 trailer here, so the
    // fuzzer reaches the entry checks behind the checksum. Odd: the bytes as they are.
    let owned;
    let bytes = if mode % 2 == 0 {
        owned = [rest, &xxh3(rest).to_le_bytes()[..]].concat();
        &owned[..]
    } else {
        rest
    };
    if let Ok(index) = Index::decode(bytes) {
        assert_eq!(Index::decode(&index.encode()).expect("an index's own encoding decodes"), index);
        for e in index.entries() {
            check_path(&e.path).expect("a decoded index holds only clean paths");
        }
        let total = index.total();
        let mut at = 0;
        for p in index.pieces(0, total.min(1 << 20)) {
            assert_eq!(p.range_offset, at, "pieces cover the range in order");
            at += p.len;
        }
        assert_eq!(at, total.min(1 << 20));
    }
});
