"""What a spawned rank runs in tests/test_distributed.py (importable by name in a child)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

from bench.spec.run import RunSpec
from bench.store.checkpoints import load_state
from bench.store.claims import LeaseLost
from bench.train.loop import train
from bench.train.runtime import Runtime


def lead_losing_claim(spec: RunSpec, run_dir: Path, lose_at: int) -> None:
    """Rank 0: train ``spec`` with one thread; the claim check fails on its ``lose_at``-th
    call, and then, as ``train_job`` does, rank 0 trains again (resuming). The resume state
    found at that point is kept as ``interrupted.pt``."""
    calls = itertools.count(1)

    def check() -> None:
        if next(calls) == lose_at:
            raise LeaseLost("the test took the claim away")

    one = Runtime(threads=1)
    try:
        train(spec, run_dir, progress=False, runtime=one, check=check)
    except LeaseLost:
        shutil.copy(run_dir / "state.pt", run_dir / "interrupted.pt")
    else:
        raise AssertionError("the lost claim did not stop the run")
    train(spec, run_dir, progress=False, runtime=one)
    assert load_state(run_dir / "state.pt")["epoch"] == spec.epochs


def lead(spec: RunSpec, run_dir: Path) -> None:
    """Rank 0: train ``spec`` with one thread."""
    train(spec, run_dir, progress=False, runtime=Runtime(threads=1))
