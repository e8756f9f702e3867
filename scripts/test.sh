#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests (which build the
# example guests for wasm32-wasip2 themselves) and the SDK's doc example.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/setup-test-tools.sh
cargo test -p runway
cargo test -p runway-sdk --doc
