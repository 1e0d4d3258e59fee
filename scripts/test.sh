#!/usr/bin/env bash
# Set up, then lint and run the whole test suite (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Offline data for the tests: a sibling shared/datasets, unless BENCH_DATA_ROOT says otherwise.
if [ -z "${BENCH_DATA_ROOT:-}" ] && [ -d ../shared/datasets ]; then
  export BENCH_DATA_ROOT="$(cd ../shared/datasets && pwd)"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
