#!/usr/bin/env bash
# How long a scheduled SLM run takes to be picked up after its slot, with
# one and with three replicas (release build, fs state store and
# repository): prints one JSON line per deployment with the runs, distinct
# slots (equal when no slot ran twice) and the delay from slot to the
# snapshot's start (median, p90, max, in ms). BENCH_SECS sets how long the
# policy runs (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin snapvault
exec python3 bench/slm.py "${BENCH_SECS:-30}"
