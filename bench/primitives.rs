//! The CPU cost of each step of the snapshot and restore data paths, one
//! core, on generated log documents like the ones `bench/compare.py`
//! loads (about 1 KiB of JSON each, random words): content-defined
//! chunking, chunk ids (HMAC-SHA256 as stored today), zstd at the levels
//! worth considering, AES-256-GCM-SIV sealing, and the reverse path.
//!
//! `cargo bench --bench primitives` prints one JSON object: MB/s per step
//! and the per-core rates of the whole snapshot and restore paths (the
//! reciprocal sum of the steps), which `bench/compare.py` uses as the
//! machine's CPU limit.

use std::time::Instant;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use sha2::Sha256;

const MIB: usize = 1024 * 1024;

/// About `size` bytes of newline-separated JSON documents of random words.
fn documents(size: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let words: Vec<String> = (0..5000)
        .map(|_| {
            let n = rng.gen_range(3..=10);
            (0..n).map(|_| rng.gen_range(b'a'..=b'z') as char).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(size + 4096);
    let mut n = 0u64;
    while out.len() < size {
        let mut text = String::new();
        while text.len() < 900 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&words[rng.gen_range(0..words.len())]);
        }
        let doc = format!(
            "{{\"@timestamp\":{},\"n\":{n},\"level\":\"info\",\"message\":\"{text}\"}}\n",
            1_700_000_000_000u64 + n * 37
        );
        out.extend_from_slice(doc.as_bytes());
        n += 1;
    }
    out
}

/// MB/s of `work` over `bytes`, best of three passes.
fn rate(bytes: usize, mut work: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        work();
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best / 1e6
}

fn main() {
    let data = documents(64 * MIB);
    let pieces: Vec<(usize, usize)> =
        fastcdc::v2020::FastCDC::new(&data, 64 * 1024, 256 * 1024, 1024 * 1024)
            .map(|c| (c.offset, c.length))
            .collect();
    let chunks: Vec<&[u8]> = pieces.iter().map(|&(o, l)| &data[o..o + l]).collect();
    let n = data.len();
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: f64| {
        out.insert(k.into(), serde_json::json!((v * 10.0).round() / 10.0));
        v
    };

    let cdc = put(
        "fastcdc_mb_s",
        rate(n, || {
            let c = fastcdc::v2020::FastCDC::new(&data, 64 * 1024, 256 * 1024, 1024 * 1024).count();
            std::hint::black_box(c);
        }),
    );
    let hmac = put(
        "hmac_sha256_mb_s",
        rate(n, || {
            for c in &chunks {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&[7u8; 32]).unwrap();
                m.update(c);
                std::hint::black_box(m.finalize().into_bytes());
            }
        }),
    );
    let mut packed_by_level = Vec::new();
    let mut zstd_rates = Vec::new();
    for level in [1, 3] {
        let mut packed = Vec::new();
        let r = rate(n, || {
            packed = chunks
                .iter()
                .map(|c| zstd::bulk::compress(c, level).unwrap())
                .collect::<Vec<_>>();
        });
        let total: usize = packed.iter().map(|p| p.len()).sum();
        put(&format!("zstd{level}_mb_s"), r);
        put(&format!("zstd{level}_ratio"), n as f64 / total as f64);
        zstd_rates.push(r);
        packed_by_level.push(packed);
    }
    let mut reused = zstd::bulk::Compressor::new(1).unwrap();
    let zstd1_reused = put(
        "zstd1_reused_context_mb_s",
        rate(n, || {
            for c in &chunks {
                std::hint::black_box(reused.compress(c).unwrap());
            }
        }),
    );
    let packed = &packed_by_level[0];
    let packed_len: usize = packed.iter().map(|p| p.len()).sum();
    let cipher = Aes256GcmSiv::new_from_slice(&[9u8; 32]).unwrap();
    let nonce = Nonce::from_slice(&[1u8; 12]);
    let mut sealed = Vec::new();
    // Sealing runs on compressed bytes; its rate is per byte of plaintext
    // file, so the time is divided into the original size.
    let seal = put(
        "aes_gcm_siv_seal_mb_s_of_file",
        rate(n, || {
            sealed = packed
                .iter()
                .map(|p| {
                    cipher
                        .encrypt(
                            nonce,
                            Payload {
                                msg: p,
                                aad: b"aad",
                            },
                        )
                        .unwrap()
                })
                .collect::<Vec<_>>();
        }),
    );
    put("aes_gcm_siv_raw_mb_s", seal * packed_len as f64 / n as f64);
    let open = put(
        "aes_gcm_siv_open_mb_s_of_file",
        rate(n, || {
            for s in &sealed {
                std::hint::black_box(
                    cipher
                        .decrypt(
                            nonce,
                            Payload {
                                msg: s,
                                aad: b"aad",
                            },
                        )
                        .unwrap(),
                );
            }
        }),
    );
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let unzstd = put(
        "unzstd1_mb_s",
        rate(n, || {
            for (p, c) in packed.iter().zip(&chunks) {
                std::hint::black_box(dec.decompress(p, c.len()).unwrap());
            }
        }),
    );
    let inv = |rs: &[f64]| 1.0 / rs.iter().map(|r| 1.0 / r).sum::<f64>();
    put(
        "snapshot_path_today_mb_s_per_core",
        inv(&[cdc, hmac, zstd_rates[1], seal]),
    );
    put(
        "snapshot_path_zstd1_mb_s_per_core",
        inv(&[cdc, hmac, zstd1_reused, seal]),
    );
    put("restore_path_mb_s_per_core", inv(&[open, unzstd, hmac]));
    put("mb_of_documents", n as f64 / 1e6);
    println!("{}", serde_json::Value::Object(out));
}
