"""The pipeline end to end, pinned: a database built by the real jobs (train_job, eval_job
with a dummy attack registered from outside the package) renders the same counts and the
same Table 2 as the files committed in tests/fixtures/jobs/ (tests/fixtures/make_jobs_db.py
builds it; its docstring says how to write the files again after a deliberate change)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import requires_mnist

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

import make_jobs_db  # noqa: E402  (a script beside the fixtures, not a package)


@requires_mnist
def test_the_jobs_build_renders_the_committed_tables(tmp_path: Path) -> None:
    names = make_jobs_db.build(tmp_path / "jobs.sqlite", tmp_path / "runs")
    assert len(names) == len(make_jobs_db.RUNS)
    out = make_jobs_db.renders(tmp_path / "jobs.sqlite", names)
    for name, text in out.items():
        assert text == (FIXTURES / "jobs" / name).read_text(), name
    # the dummy attack went through the same protocol and rows as a built-in one
    assert out["evaluations.csv"].count(",golden-dummy,") == 2 * len(names)
