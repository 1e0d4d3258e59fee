"""Runs for the evaluation-protocol tests (AutoAttack, transfer): trained in seconds on CPU.

The registry's smallest CNN needs many epochs before it learns anything, so these tests
use a softmax regression (the registered ``linear`` model): one epoch on 1000 real MNIST
images gives ~85% accuracy, which is all a test of the evaluation machinery needs.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from bench import jobs
from bench.spec.run import RunSpec, resolve
from bench.store import db as bdb

SOFTMAX = "linear"  # softmax regression, registered in bench.models


def trained_run(
    tmp: Path, defense: str = "natural", *, test_subset: int = 32, **overrides: object
) -> tuple[Engine, RunSpec]:
    """A fresh database in ``tmp`` holding one finished run of ``defense`` on the linear model."""
    engine = bdb.connect(tmp / "bench.sqlite")
    over = {"epochs": 1, "lr": 0.5, "batch_size": 64, "eps": 0.1, **overrides}
    if defense != "natural":
        over.setdefault("steps", 3)
        over.setdefault("step_size", 0.04)
    spec = resolve(
        defense,
        SOFTMAX,
        "mnist",
        seed=0,
        train_subset=1000,
        test_subset=test_subset,
        overrides=over,
    )
    jobs.train_job(engine, spec, runs_dir=tmp / "runs", progress=False)
    return engine, spec
