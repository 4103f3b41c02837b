//! A stream of content index segments (protocol v2 draft, issue 33), as a receiver would take
//! them: each decoded alone, then checked against those before it. An accepted segment encodes
//! back to itself, holds only clean paths, and leaves the validator's state its fixed size;
//! what the stream accepted, cut again by the writer at other boundaries, is accepted again as
//! the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhaul_core::hash::xxh3;
use longhaul_core::limits::SEGMENT_BYTES;
use longhaul_core::vfile::index::check_path;
use longhaul_core::vfile::segment::{encode_segments, Segment, Validator};

fuzz_target!(|data: &[u8]| {
    // A mode byte, then segments, each a u16 length and its bytes. An even mode: each segment
    // is a body that gets its XXH3 trailer here, so the fuzzer reaches the checks behind the
    // checksum; odd: the bytes as they are. The mode's other bits pick the writer's cut.
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let mut v = Validator::new();
    let state = v.state_bytes();
    let mut accepted = Vec::new();
    while rest.len() >= 2 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let chunk = &rest[2..2 + n];
        rest = &rest[2 + n..];
        let owned;
        let bytes = if mode % 2 == 0 {
            owned = [chunk, &xxh3(chunk).to_le_bytes()[..]].concat();
            &owned[..]
        } else {
            chunk
        };
        let Ok(seg) = Segment::decode(bytes) else { break };
        assert_eq!(Segment::decode(&seg.encode()).expect("a segment's own encoding decodes"), seg);
        if v.accept(&seg).is_err() {
            break;
        }
        assert_eq!(v.state_bytes(), state, "the validator's state does not grow");
        for e in &seg.entries {
            check_path(&e.path).expect("an accepted segment holds only clean paths");
        }
        accepted.extend(seg.entries);
    }
    if accepted.is_empty() {
        return;
    }
    let cut = u64::from(mode >> 1) % 7 + 1;
    let segments = encode_segments(accepted.clone(), cut, SEGMENT_BYTES.max).expect("an accepted stream is a valid walk");
    let mut again = Validator::new();
    let mut back = Vec::new();
    for b in &segments {
        let s = Segment::decode(b).expect("the writer's segment decodes");
        again.accept(&s).expect("the writer's stream is accepted");
        back.extend(s.entries);
    }
    assert_eq!(back, accepted);
});
