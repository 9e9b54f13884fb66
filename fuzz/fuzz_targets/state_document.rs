//! The shared state document as read from the state store, in any format
//! it migrates from: arbitrary bytes decode or fail with a typed error,
//! and what decodes writes back to something that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapvault::state::migrations::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = decode("state/doc-1.json", data) {
        let bytes = serde_json::to_vec(&doc).expect("a decoded document serialises");
        decode("state/doc-2.json", &bytes).expect("a written document decodes");
    }
});
