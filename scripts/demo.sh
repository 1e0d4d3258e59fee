#!/usr/bin/env bash
# Set up, then the quick real demo: Standard, TRADES and MART on an MNIST subset -> Table 2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Offline data: a sibling shared/datasets (as scripts/test.sh), unless BENCH_DATA_ROOT says otherwise.
if [ -z "${BENCH_DATA_ROOT:-}" ] && [ -d ../shared/datasets ]; then
  export BENCH_DATA_ROOT="$(cd ../shared/datasets && pwd)"
fi
exec .venv/bin/bench demo "$@"
