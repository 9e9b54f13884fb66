#!/usr/bin/env bash
# snapvault against restic, borg and `cp -r` + `sync` on the same files
# (bench/compare.py). BENCH_MIB sets the index size (default 1024),
# BENCH_RUNS the number of runs (default 3), BENCH_SCALE_MIB the sizes the
# index then grows to for the size curve (default: 1, 2 and 3 times
# BENCH_MIB), BENCH_MANY_FILES the segment files of the unchanged-snapshot
# index (default 10000);
# results go to BENCH_OUT (default bench/out): compare.md, compare.json,
# memory.csv, and the plots bench/memory.png and bench/throughput.png.
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
out="${BENCH_OUT:-bench/out}"
BENCH_OUT="$out" python3 bench/compare.py
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import matplotlib' 2>/dev/null || "$venv/bin/pip" install -q matplotlib
"$venv/bin/python" bench/plot.py "$out" bench
