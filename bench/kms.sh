#!/usr/bin/env bash
# KMS benchmark: transit unwrap latency and the time to rotate BENCH_KEYS
# (default 10 000) data keys from a keystore key to a Vault transit key and
# then to that key's next version, against OpenBao's dev server started by
# tests/emulators.sh (stopped on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/emulators.sh
cargo bench --locked --bench kms
