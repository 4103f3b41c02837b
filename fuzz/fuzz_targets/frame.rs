//! Bytes as a node reads them from a connection: frames one after another. Decoding answers a
//! message or an error, never a panic; what it accepts encodes back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhaul_core::wire::frame::{read_msg, Msg};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    while let Ok(Some(m)) = read_msg(&mut r, 1 << 20) {
        let f = m.encode();
        assert_eq!(Msg::decode(f[4], &f[5..]).expect("a message's own encoding decodes"), m);
    }
});
