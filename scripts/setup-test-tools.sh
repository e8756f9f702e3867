#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo: schemathesis
# (PyPI), which fuzzes the HTTP API from its OpenAPI description. It goes
# into a virtualenv under target/tools, so nothing outside the repo changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tools/venv
version=4.32.5
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  mkdir -p target/tools
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
