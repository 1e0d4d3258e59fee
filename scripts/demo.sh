#!/usr/bin/env bash
# Set up, then the quick real demo: Standard, TRADES and MART on an MNIST subset -> Table 2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bench demo "$@"
