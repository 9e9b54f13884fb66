#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the one integration test binary
# (real servers on 127.0.0.1:0, real HTTP, real storage). First it installs
# and starts what the tests need, under target/:
# - a Python virtual environment with the official Elasticsearch client and
#   moto (an S3 emulator that honours conditional writes);
# - moto's server on a free loopback port, stopped when the tests end.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
if ! target/venv/bin/python -c 'import elasticsearch, moto' 2>/dev/null; then
  python3 -m venv target/venv
  target/venv/bin/pip install --quiet --disable-pip-version-check 'elasticsearch>=8.19,<9' 'moto[server]>=5,<6'
fi
export SNAPVAULT_TEST_PYTHON="$PWD/target/venv/bin/python"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
export SNAPVAULT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"

# Benchmarks are not tests: they run with `cargo bench` and bench/run.sh.
cargo test --locked --lib --bins --tests
