#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo: schemathesis
# (PyPI), which fuzzes the HTTP API from its OpenAPI description. It goes
# into a virtualenv under target/tools, so nothing outside the repo changes
# (or, where Python has no venv module, into target/tools/pylib behind a
# small launcher at the same path).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tools/venv
version=4.32.5
if "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  exit 0
fi
mkdir -p target/tools
if python3 -m venv "$venv" 2>/dev/null && [ -x "$venv/bin/pip" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
else
  rm -rf "$venv"
  python3 -m pip install --quiet --disable-pip-version-check --target target/tools/pylib "schemathesis==$version"
  mkdir -p "$venv/bin"
  lib="$(pwd)/target/tools/pylib"
  cat > "$venv/bin/st" <<LAUNCH
#!/usr/bin/env bash
PYTHONPATH="$lib\${PYTHONPATH:+:\$PYTHONPATH}" exec python3 -c 'import sys; from schemathesis.cli import schemathesis; sys.argv[0] = "st"; sys.exit(schemathesis())' "\$@"
LAUNCH
  chmod +x "$venv/bin/st"
fi
"$venv/bin/st" --version
