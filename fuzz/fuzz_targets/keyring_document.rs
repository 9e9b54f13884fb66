//! A repository's keyring generation as read from storage: arbitrary bytes
//! decode or fail with a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapvault::repository::keyring::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(keyring) = decode("keyring/keyring-1.json", data) {
        let bytes = serde_json::to_vec(&keyring).expect("a keyring serialises");
        decode("keyring/keyring-2.json", &bytes).expect("a written keyring decodes");
    }
});
