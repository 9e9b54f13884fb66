#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the one integration test binary
# (real servers on 127.0.0.1:0, real HTTP, real storage), after installing
# what the tests need: the official Elasticsearch Python client, in a
# virtual environment under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x target/venv/bin/python ] || ! target/venv/bin/python -c 'import elasticsearch' 2>/dev/null; then
  mkdir -p target
  python3 -m venv target/venv
  target/venv/bin/pip install --quiet --disable-pip-version-check 'elasticsearch>=8.19,<9'
fi
export SNAPVAULT_TEST_PYTHON="$PWD/target/venv/bin/python"
# Benchmarks are not tests: they run with `cargo bench` and bench/run.sh.
cargo test --locked --lib --bins --tests
