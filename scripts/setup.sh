#!/usr/bin/env bash
# Create .venv (if missing) and install bench with its dev tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "error: $PY not found; install Python >= 3.10" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.bench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # .[dev]: pytest, ruff, import-linter and selenium (the site's browser test; the browser
  # itself, Debian chromium + chromium-driver, is installed by .ci/run where apt can).
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
