#!/usr/bin/env bash
# The cost of authentication per request: requests per second and latency
# of `GET /_snapshot/r/_all` (a repository with 50 snapshots) from wrk, with
# security off (loopback demo), with basic credentials, with an API key
# (both verified once, then cached), and with a wrong password (an argon2id
# verification on every request, the worst case). Needs `wrk`
# (Debian package). BENCH_SECS sets each run's length (default 10),
# BENCH_ROUNDS how many alternating rounds (default 3; medians reported).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench/auth.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --locked --bin snapvault
exec python3 bench/auth.py "${BENCH_SECS:-10}" "${BENCH_ROUNDS:-3}"
