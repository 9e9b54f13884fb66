#!/usr/bin/env bash
# Bulk indexing throughput over HTTP and the server's memory: ~1 KiB JSON
# log documents into a 2-shard index, NDJSON bodies generated in memory
# before the clock starts. BENCH_MIB sets how much NDJSON is sent (default
# 1024), BENCH_BODY_MIB the size of one request (default 8),
# BENCH_CONNECTIONS the concurrent connections (default 4), BENCH_IDS
# `client` (explicit `_id`s, default) or `auto` (generated ids), BENCH_UPDATE=1
# sends everything a second time (overwrites).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin snapvault
exec python3 bench/bulk.py "${BENCH_MIB:-1024}"
