#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the one integration test binary
# (real servers on 127.0.0.1:0, real HTTP, real storage). First it installs
# and starts what the tests need (tests/emulators.sh): the official
# Elasticsearch client, and S3 (moto), GCS (gcp-storage-emulator) and Azure
# Blob (Azurite) emulators on free loopback ports, stopped when the tests end.
# Arguments go to `cargo test` (a test name filter, say).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/emulators.sh
# In-process test servers run on the test runtime's worker threads, whose
# stacks default to 2 MiB: too little for some debug-build futures (a stack
# overflow aborted the test binary once in CI). The server binary sets 8 MiB
# itself (src/main.rs); this gives the test binary's threads the same.
export RUST_MIN_STACK=8388608
# Benchmarks are not tests: they run with `cargo bench` and bench/run.sh.
cargo test --locked --lib --bins --tests "$@"
