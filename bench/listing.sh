#!/usr/bin/env bash
# Listing and status on a large repository: creates BENCH_SNAPSHOTS
# (default 10 000) snapshots of a tiny index on `fs`, then times
# `GET /_snapshot/r/_all` (verbose and not), one snapshot by name,
# `_status` of one snapshot, `_cat/snapshots/r` (text and json, with the
# time to the first byte of the body), and counts the files left in the
# repository root and the state store. BENCH_REQUESTS sets the requests
# per endpoint (default 100), BENCH_CLIENTS the snapshot creators (default
# 2); BENCH_DATA_DIR keeps the deployment there, and a run on a kept one
# skips the creation (to time another binary, BENCH_BIN, on the same data).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin snapvault
exec python3 bench/listing.py "${BENCH_SNAPSHOTS:-10000}"
