#!/usr/bin/env bash
# snapvault against restic, borg and `cp -r` + `sync` on the same files
# (bench/compare.py). BENCH_MIB sets the index size (default 1024),
# BENCH_RUNS the number of runs (default 3); results go to BENCH_OUT
# (default bench/out): compare.md, compare.json, memory.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q restic borgbackup
fi
cargo build --release --locked --bin snapvault
BENCH_PRIMITIVES="$(cargo bench --locked --bench primitives 2>/dev/null | tail -1)"
export BENCH_PRIMITIVES
exec python3 bench/compare.py
