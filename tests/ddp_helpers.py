"""What a spawned rank runs in tests/test_distributed.py (importable by name in a child)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from bench.spec.run import RunSpec
from bench.train.loop import Interrupted, train
from bench.train.runtime import Runtime


def lead(spec: RunSpec, run_dir: Path, stop_after: int | None) -> None:
    """Rank 0: train ``spec`` in ``run_dir`` with one thread, as `bench run` would."""
    with contextlib.suppress(Interrupted):
        train(spec, run_dir, progress=False, stop_after=stop_after, runtime=Runtime(threads=1))
