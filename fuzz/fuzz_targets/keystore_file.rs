//! The keystore file's text (master keys and secure settings): any text
//! parses or fails with a typed error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapvault::crypto::Keystore;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Keystore::parse(std::path::Path::new("keystore.json"), text) {
        let _ = e.to_string();
    }
});
