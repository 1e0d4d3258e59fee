"""Where results live: one home for the database and the run folders.

``BENCH_HOME`` (default ``results``) holds ``bench.sqlite`` and ``runs/``; ``BENCH_DB`` or
``--db`` picks another database, ``--runs-dir`` another folder for checkpoints. Keep the
home outside a git checkout for long runs, so that a fresh checkout does not lose them.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "BENCH_HOME"
ENV_DB = "BENCH_DB"
DEFAULT_HOME = "results"


def home() -> Path:
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser()


def default_db() -> Path:
    return home() / "bench.sqlite"


def default_runs_dir() -> Path:
    return home() / "runs"
