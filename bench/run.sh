#!/usr/bin/env bash
# Snapshot and restore throughput and the server's peak memory on a
# generated index. BENCH_MIB sets the index size (default 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin snapvault
exec python3 bench/run.py "${BENCH_MIB:-1024}"
