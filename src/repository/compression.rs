//! zstd for the repository's objects, with compression and decompression
//! contexts reused from a small pool.
//!
//! Why level 1: on log documents (`cargo bench --bench primitives`, see
//! bench/RESULTS.md) level 1 compresses about 1.8 times faster than
//! level 3 for about a fifth more stored bytes, and compression is the
//! costliest step of a snapshot. Why reused contexts: a fresh context per
//! chunk allocates and clears zstd's tables every time, which cost as much
//! as the compression of a 256 KiB chunk itself. Why a pool rather than a
//! context per thread: the blocking pool has many threads, and a context
//! is about a megabyte; CPU jobs run one per core ([`super::cpu`]), so the
//! pool holds about as many contexts as there are cores. Objects written
//! at any level read the same way.

use std::sync::Mutex;

/// The zstd level of new objects.
pub const LEVEL: i32 = 1;

static COMPRESSORS: Mutex<Vec<zstd::bulk::Compressor<'static>>> = Mutex::new(Vec::new());
static DECOMPRESSORS: Mutex<Vec<zstd::bulk::Decompressor<'static>>> = Mutex::new(Vec::new());

/// Contexts kept for reuse at most (beyond these, one is dropped after use).
const KEEP: usize = 8;

fn take<T>(pool: &Mutex<Vec<T>>) -> Option<T> {
    pool.lock().expect("context pool").pop()
}

fn give<T>(pool: &Mutex<Vec<T>>, ctx: T) {
    let mut pool = pool.lock().expect("context pool");
    if pool.len() < KEEP {
        pool.push(ctx);
    }
}

/// Compresses `plain` with a pooled context.
pub fn compress(plain: &[u8]) -> Vec<u8> {
    let mut ctx = take(&COMPRESSORS)
        .unwrap_or_else(|| zstd::bulk::Compressor::new(LEVEL).expect("zstd context"));
    let packed = ctx.compress(plain).expect("zstd compression of memory");
    give(&COMPRESSORS, ctx);
    packed
}

/// Decompresses `packed`; `len`, when known, is the exact plaintext size
/// (a larger frame is an error, not a reallocation).
pub fn decompress(packed: &[u8], len: Option<usize>) -> std::io::Result<Vec<u8>> {
    let Some(len) = len else {
        return zstd::stream::decode_all(packed);
    };
    let mut ctx = match take(&DECOMPRESSORS) {
        Some(c) => c,
        None => zstd::bulk::Decompressor::new()?,
    };
    let plain = ctx.decompress(packed, len);
    give(&DECOMPRESSORS, ctx);
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_a_size() {
        let plain: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let packed = compress(&plain);
        assert!(packed.len() < plain.len());
        assert_eq!(decompress(&packed, Some(plain.len())).unwrap(), plain);
        assert_eq!(decompress(&packed, None).unwrap(), plain);
        // A frame larger than the size announced is refused.
        assert!(decompress(&packed, Some(plain.len() - 1)).is_err());
    }

    #[test]
    fn reads_objects_written_at_level_three() {
        let plain = b"level three objects of earlier versions".repeat(100);
        let old = zstd::bulk::compress(&plain, 3).unwrap();
        assert_eq!(decompress(&old, Some(plain.len())).unwrap(), plain);
    }
}
