#!/usr/bin/env bash
# Installs what the console's browser tests drive: Debian's Chromium
# (/usr/bin/chromium; apt, as root) and playwright-core from npm (into
# tests/console/node_modules, at the version package-lock.json pins; it
# downloads no browser of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the console tests need Chromium: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get install -y -qq chromium > /dev/null || { apt-get update -qq && apt-get install -y -qq chromium > /dev/null; }
fi
if ! [ -d tests/console/node_modules/playwright-core ]; then
  npm ci --prefix tests/console --no-audit --no-fund --silent
fi
