"""The pipeline end to end, pinned: a database built by the real jobs (train_job, eval_job
with a dummy attack registered from outside the package) renders the same runs, rows and
Table 2 as the files committed in tests/fixtures/jobs/ (tests/fixtures/make_jobs_db.py
builds it; its docstring says how to write the files again after a deliberate change).

Everything but the counts must match exactly: run names (the specs' hashes), checkpoints,
attacks, test points, the notes and the layout. A count may move by a few points between
CPUs whose kernels round differently (the files were written on an AVX512 machine), so
counts are compared within ``SLACK`` and the Markdown with its numbers masked.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pandas as pd
from conftest import requires_mnist

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

import make_jobs_db  # noqa: E402  (a script beside the fixtures, not a package)

SLACK = 3  # test points of 64


def _same_frame(ours: str, pinned: str, exact: list[str]) -> None:
    a, b = pd.read_csv(io.StringIO(ours)), pd.read_csv(io.StringIO(pinned))
    pd.testing.assert_frame_equal(a[exact], b[exact])
    assert (a["correct"] - b["correct"]).abs().max() <= SLACK


def _masked(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", text)


@requires_mnist
def test_the_jobs_build_renders_the_committed_tables(tmp_path: Path) -> None:
    names = make_jobs_db.build(tmp_path / "jobs.sqlite", tmp_path / "runs")
    assert len(names) == len(make_jobs_db.RUNS)
    out = make_jobs_db.renders(tmp_path / "jobs.sqlite", names)
    pinned = {n: (FIXTURES / "jobs" / n).read_text() for n in out}
    _same_frame(
        out["evaluations.csv"], pinned["evaluations.csv"], ["run", "checkpoint", "attack", "n"]
    )
    _same_frame(
        out["table2.csv"], pinned["table2.csv"], ["run", "defense", "checkpoint", "attack", "n"]
    )
    assert _masked(out["table2.md"]) == _masked(pinned["table2.md"])
    # the dummy attack went through the same protocol and rows as a built-in one
    assert out["evaluations.csv"].count(",golden-dummy,") == 2 * len(names)
