#!/usr/bin/env bash
# Builds the example workflows into target/guest/wasm32-wasip2/guest/*.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --quiet --profile guest --target wasm32-wasip2 --target-dir target/guest \
  -p hello -p report -p hostile -p not-a-workflow \
  -p sleepy -p approval -p fanout -p steps -p collect -p summarize -p review -p pr-review -p fetch -p steps-reordered -p release -p triage
