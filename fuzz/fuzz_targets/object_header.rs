//! The fixed header of every encrypted object: any bytes parse to a header
//! or a `BadHeader` error, and a parsed header writes back the bytes it
//! was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapvault::crypto::header::{Header, LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::parse("fuzz/object", data) {
        assert_eq!(&h.to_bytes()[..], &data[..LEN]);
    }
});
