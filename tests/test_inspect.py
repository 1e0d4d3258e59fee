"""`bench show`, `bench rm` and `bench ls runs` on the golden fixture database."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.store import db as bdb

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden.sqlite"
DEMO_MART = "mnist-smallcnn-mart-demo-mnist-n2000-e3-s0-c29a75"


def _db(tmp_path: Path) -> str:
    shutil.copy(FIXTURE, tmp_path / "g.sqlite")
    return str(tmp_path / "g.sqlite")


def _count(db: str, table) -> int:
    with Session(bdb.connect(db)) as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_show_has_every_section(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["show", DEMO_MART, "--db", _db(tmp_path)])
    assert res.exit_code == 0, res.output
    for part in ("# " + DEMO_MART, "## Epochs", "## Checkpoints", "## Evaluations", "## Audit"):
        assert part in res.output
    assert "| clean " in res.output and "demo-mnist" in res.output


def test_ls_runs_shows_progress_and_best(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["ls", "runs", "--db", _db(tmp_path)])
    assert res.exit_code == 0 and DEMO_MART in res.output
    assert "best PGD-20 %" in res.output and "3/3" in res.output


def test_rm_asks_and_deletes_only_that_run(tmp_path: Path) -> None:
    db = _db(tmp_path)
    runs, evs = _count(db, bdb.Run), _count(db, bdb.Evaluation)
    no = CliRunner().invoke(app, ["rm", DEMO_MART, "--db", db], input="n\n")
    assert no.exit_code == 1 and _count(db, bdb.Run) == runs
    yes = CliRunner().invoke(app, ["rm", DEMO_MART, "--db", db, "--yes"])
    assert yes.exit_code == 0, yes.output
    assert _count(db, bdb.Run) == runs - 1 and _count(db, bdb.Evaluation) == evs - 8
    gone = CliRunner().invoke(app, ["show", DEMO_MART, "--db", db])
    assert gone.exit_code == 2 and "no run named" in gone.output


def test_an_empty_export_says_what_would_fill_it(tmp_path: Path) -> None:
    db = str(tmp_path / "empty.sqlite")
    bdb.connect(db).dispose()
    res = CliRunner().invoke(
        app, ["table", "--paper", "--table", "3", "--format", "json", "--db", db]
    )
    assert res.exit_code == 0 and "note: no evaluations in Table 3 yet" in res.output
    md = CliRunner().invoke(app, ["table", "--paper", "--table", "3", "--db", db])
    assert "transfer-pgd20" in md.output  # the command that fills it


def test_eval_all_takes_every_finished_run(tmp_path: Path) -> None:
    """`--all` names the finished runs (here their checkpoint files are absent: one line)."""
    res = CliRunner().invoke(app, ["eval", "--all", "--attacks", "clean", "--db", _db(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "checkpoint" in res.output and "missing" in res.output
