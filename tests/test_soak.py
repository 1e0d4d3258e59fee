"""The fault soak, small (tests/soaklib.py; benchmarks/soak.py is the larger one): three
`bench experiment` workers on one database, SIGKILLed now and then and replaced, finish a
grid of 8 jobs (4 defenses x 2 seeds, tiny-cnn, 128 MNIST images, 2 epochs, 4 attacks x 2
checkpoints on 64 test points) with every run done, each epoch and evaluation stored once,
numbers equal to a sequential run's, and no "database is locked" anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import soaklib
from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.store import db as bdb

GRID = soaklib.Grid()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The grid run by one worker, without kills (SQLite)."""
    home = tmp_path_factory.mktemp("sequential") / "home"
    db = str(home.parent / "reference.sqlite")
    soaklib.sequential(GRID, db, home)
    return db


@requires_mnist
@pytest.mark.slow
def test_killed_workers_lose_and_duplicate_nothing(db_url: str, reference: str, tmp_path: Path):
    result = soaklib.soak(
        GRID, db_url, tmp_path / "home", workers=3, kill_every=(1.0, 2.0), max_kills=3
    )
    assert result.failures == []
    assert result.reads > 10 and result.read_errors == []  # a reader polling all along
    figures = soaklib.verify(db_url, reference, GRID, result.logs)
    assert figures["runs"] == GRID.jobs and figures["evaluations"] > 0
    assert {k: v for k, v in figures.items() if k not in ("jobs", "runs", "evaluations")} == {
        k: 0 for k in figures if k not in ("jobs", "runs", "evaluations")
    }
    # a fast machine can finish the grid before the third kill (CI did, in 14.5 s): the
    # first kill (mid-training) and one more are what the checks above are about
    assert result.kills >= 2
    with Session(bdb.connect(db_url)) as s:  # the first kill hit a run mid-way: resumed
        taken_again = s.scalars(
            select(bdb.Claim).where(bdb.Claim.kind == "run", bdb.Claim.attempts >= 2)
        ).all()
    assert taken_again
