#!/usr/bin/env bash
# Installs what building Runway needs beyond the Rust toolchain: the
# wasm32-wasip2 target for the pinned toolchain (rust-toolchain.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
