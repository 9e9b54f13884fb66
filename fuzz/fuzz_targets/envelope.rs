//! Opening sealed objects with fixed test keys: arbitrary bytes, as a data
//! object or a wrapped key, never open and never panic; a sealed object
//! with any byte changed or appended fails to open, and opens unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapvault::crypto::{self, Compression, Dek, KeyId, MasterKey};

const REPO: &str = "fuzz-repository-uuid";
const PATH: &str = "chunks/ab/abcdef";

fuzz_target!(|data: &[u8]| {
    let dek = Dek::from_bytes(KeyId([1; 16]), [2; 32]);
    let kek = MasterKey::from_bytes("fuzz", [3; 32]).derive_kek(REPO);
    assert!(crypto::open(&dek, REPO, PATH, data).is_err());
    assert!(crypto::unwrap(&kek, REPO, "keys/fuzz/1", data).is_err());

    // The input as a change to a real sealed object.
    let sealed = crypto::seal(&dek, Compression::None, REPO, PATH, b"fuzzed plaintext");
    let mut changed = sealed.clone();
    for (i, b) in data.iter().enumerate() {
        match changed.get_mut(i) {
            Some(x) => *x ^= b,
            None => changed.push(*b),
        }
    }
    let opened = crypto::open(&dek, REPO, PATH, &changed);
    if changed == sealed {
        assert_eq!(opened.unwrap().1, b"fuzzed plaintext");
    } else {
        assert!(opened.is_err());
    }
});
