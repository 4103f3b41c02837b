//! A READV request as the node handles it: decoded, checked against the limits, then planned
//! into file reads for files of a given size. The plan reads exactly the bytes the answer
//! announces, in order, and never past a file's end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhaul_core::wire::frame::{FrameType, Limits, Msg};
use longhaul_core::wire::readv::{available, check, plan, COALESCE};

const LIMITS: Limits =
    Limits { max_streams: 64, max_block: 4 << 20, max_manifest: 1 << 20, max_readv_segments: 1024, max_readv_segment: 2 << 20 };

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes give the size of every file; the rest is the READV body.
    let Some((size, body)) = data.split_first_chunk::<8>() else { return };
    let size = u64::from_le_bytes(*size);
    let Ok(Msg::Readv { paths, segments }) = Msg::decode(FrameType::Readv as u8, body) else { return };
    if check(paths.len(), &segments, &LIMITS).is_err() {
        return;
    }
    let lens: Vec<u32> = segments.iter().map(|s| available(s, size)).collect();
    let runs = plan(&segments, &lens);
    let announced: u64 = lens.iter().map(|&l| l as u64).sum();
    assert_eq!(runs.iter().map(|r| r.len).sum::<u64>(), announced);
    for r in &runs {
        assert!((r.file as usize) < paths.len());
        assert!(r.offset + r.len <= size, "a run reads past the end of its file");
        assert!(r.len <= COALESCE.max(LIMITS.max_readv_segment as u64));
    }
});
