#!/usr/bin/env bash
# Re-encryption benchmark: throughput on fs (BENCH_MIB, default 1400 MiB of random text, about 1 GiB stored),
# snapshot throughput during a re-encryption relative to without, and on
# S3 (moto, started by tests/emulators.sh and stopped on exit) with one
# replica and with three (BENCH_S3_MIB, default 256).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/emulators.sh
cargo bench --locked --bench reencrypt
