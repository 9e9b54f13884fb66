#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the one integration test binary
# (real servers on 127.0.0.1:0, real HTTP, real storage). The suite needs
# nothing outside cargo today; when emulators are added, this script installs
# and starts them before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
