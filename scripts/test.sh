#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests (which build the
# example guests for wasm32-wasip2 themselves) and the SDK's doc example.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/setup-test-tools.sh
# Chromium and playwright-core, for the console's browser tests.
./scripts/setup-browser.sh
# The tests that need PostgreSQL start a throwaway cluster themselves
# (scripts/postgres.sh, as the postgres user when run as root); it is
# stopped when this script ends.
trap 'cargo test -q -p runway --test postgres stop_the_test_cluster -- --ignored >/dev/null 2>&1 || true' EXIT
cargo test -p runway
# The durable-execution, server and models suites again, on PostgreSQL.
RUNWAY_TEST_STORE=postgres cargo test -p runway --test durable --test server --test models
cargo test -p runway-sdk --doc
