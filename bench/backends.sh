#!/usr/bin/env bash
# Snapshot and restore throughput per repository backend on loopback: fs,
# and the S3, Azure Blob and GCS emulators that the tests use (started by
# tests/emulators.sh). BENCH_MIB sets the index size (default 128).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/emulators.sh
cargo build --release --locked --bin snapvault
exec target/venv/bin/python bench/backends.py "${BENCH_MIB:-128}"
