"""The outside probe's hostile inputs (issue 22), each against a database holding one
finished run: exit code 2, at most 3 lines on stderr, no traceback, and not one row added
to any table (claims, placements and audit included)."""

from __future__ import annotations

import collections
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import requires_mnist
from sqlalchemy import func, select, table
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.store import claims
from bench.store import db as bdb

TINY = ["--model", "tiny-cnn", "--dataset", "mnist", "--train-subset", "64", "--epochs", "1"]
RUN = ["run", "--defense", "natural", *TINY, "--test-subset", "20", "--attacks", "clean"]
TABLES = (
    "runs",
    "epoch_metrics",
    "checkpoints",
    "evaluations",
    "audit_flags",
    "claims",
    "placements",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results home with one trained and evaluated run."""
    root = tmp_path_factory.mktemp("hostile")
    res = CliRunner().invoke(
        app, [*RUN, "--db", str(root / "bench.sqlite"), "--runs-dir", str(root / "runs")]
    )
    assert res.exit_code == 0, res.output
    return root


def copy_db(src: Path, dst: Path) -> Path:
    """A consistent copy of a WAL-mode SQLite file (its -wal pages included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def rows(db: Path) -> dict[str, int]:
    engine = bdb.connect(db)
    with Session(engine) as s:
        out = {t: int(s.scalar(select(func.count()).select_from(table(t))) or 0) for t in TABLES}
    engine.dispose()
    return out


def run_name(db: Path) -> str:
    with Session(bdb.connect(db)) as s:
        return s.scalars(select(bdb.Run.name)).one()


def _pickle(where: Path) -> Path:
    path = where / "evil.pt"
    path.write_bytes(pickle.dumps(collections.OrderedDict(a=print)))
    return path


# name -> (argv after `bench`, a needle of the one-line message); {home} and {tmp} are filled in
CASES: dict[str, tuple[list[str], str]] = {
    "attack-param-type": (
        [*RUN[:-2], "--attacks", "pgd20", "--attack-param", "pgd20.steps=abc"],
        "expected a whole number",
    ),
    "seed-overflow": ([*RUN, "--seed", str(2**70)], "2**63 - 1"),
    "seeds-overflow": ([*RUN, "--seeds", f"0,{2**64}"], "2**63 - 1"),
    "eval-seed-overflow": (["eval", "{run}", "--seed", str(2**70)], "2**63 - 1"),
    "threads-huge": ([*RUN, "--threads", "100000"], "--oversubscribe"),
    "nproc-huge": ([*RUN, "--nproc", "1000"], "--oversubscribe"),
    "train-subset-too-big": ([*RUN, "--train-subset", "100000"], "larger than the training"),
    "test-subset-too-big": ([*RUN, "--test-subset", "100000"], "larger than the test split"),
    "fp16-on-cpu": ([*RUN, "--precision", "fp16", "--device", "cpu"], "needs a CUDA device"),
    "runs-dir-a-file": ([*RUN, "--runs-dir", "{tmp}/afile/runs"], "is a file, not a folder"),
    "milestones-text": ([*RUN, "--milestones", "a,b"], "--milestones expects epochs"),
    "unlabelled-pickle": (
        [
            "run",
            "--defense",
            "mart-semi",
            *TINY,
            "--test-subset",
            "20",
            "--unlabelled",
            "{tmp}/evil.pt",
            "--no-eval",
        ],
        "not a plain tensor file",
    ),
    "zoo-checkpoint-folder": (
        ["zoo", "eval", "Wang2020Improving", "--checkpoint-file", "{tmp}", "--attacks", "clean"],
        "is a folder, not a file",
    ),
    "ray-unreachable": (
        [*RUN, "--seed", "5", "--executor", "ray", "--ray-address", "127.0.0.1:1"],
        "nothing answers there",
    ),
    "eval-checkpoint-changed": (["eval", "{run}", "--attacks", "fgsm"], "changed since it was"),
}
DB_CASES: dict[str, tuple[str, str]] = {  # --db value -> needle (the database is not ours)
    "db-empty": ("", "--db is empty"),
    "db-port-text": ("postgresql+psycopg://bench:SECRET@localhost:abc/db", "the port a number"),
}


def _fill(args: list[str], run: str, tmp: Path) -> list[str]:
    return [a.replace("{run}", run).replace("{tmp}", str(tmp)) for a in args]


def _check(result, needle: str) -> None:
    err = result.stderr.strip()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert needle in err, err
    assert len(err.splitlines()) <= 3, err


@requires_mnist
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_one_line_exit_2_and_adds_no_row(
    name: str, home: Path, tmp_path: Path
) -> None:
    db = tmp_path / "bench.sqlite"
    copy_db(home / "bench.sqlite", db)
    (tmp_path / "afile").write_text("a file where a folder is expected")
    _pickle(tmp_path)
    run = run_name(db)
    if name == "eval-checkpoint-changed":  # the stored file no longer has the stored hash
        copy = tmp_path / "runs"
        shutil.copytree(home / "runs", copy)
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE checkpoints SET path = replace(path, ?, ?)", (str(home / "runs"), str(copy))
            )
        for f in copy.rglob("best.safetensors"):
            f.write_bytes(f.read_bytes() + b"\0")
    before = rows(db)
    args = _fill(CASES[name][0], run, tmp_path)
    result = CliRunner().invoke(app, [*args, "--db", str(db)])
    _check(result, CASES[name][1])
    assert rows(db) == before


@pytest.mark.parametrize("name", sorted(DB_CASES))
def test_a_bad_database_option_is_one_line_and_never_shows_a_password(name: str) -> None:
    value, needle = DB_CASES[name]
    result = CliRunner().invoke(app, ["ls", "runs", "--db", value])
    _check(result, needle)
    assert "SECRET" not in result.output


@requires_mnist
def test_a_home_that_is_a_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BENCH_DB", raising=False)
    _check(CliRunner().invoke(app, RUN), "is a file")


def test_a_database_from_a_newer_bench_is_refused_in_one_line(home: Path, tmp_path: Path) -> None:
    db = tmp_path / "newer.sqlite"
    copy_db(home / "bench.sqlite", db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0042'")
    data = db.read_bytes()
    _check(CliRunner().invoke(app, ["ls", "runs", "--db", str(db)]), "written by a newer bench")
    assert db.read_bytes() == data


def test_a_database_that_lost_its_revision_is_adopted(home: Path, tmp_path: Path) -> None:
    """docs/databases.md: tables but no alembic_version (every table already there)."""
    db = tmp_path / "old.sqlite"
    copy_db(home / "bench.sqlite", db)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE alembic_version")
    before = rows(db)
    result = CliRunner().invoke(app, ["ls", "runs", "--db", str(db)])
    assert result.exit_code == 0 and "done" in result.output, result.output
    assert rows(db) == before


def test_a_read_only_database_is_read_without_writing_beside_it(home: Path, tmp_path: Path):
    """Opened read-only and immutable: no -wal/-shm files appear (the decision is the OS's
    permissions, which root bypasses here; ``read_only_file`` is checked with them mocked)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "bench.sqlite"
    copy_db(home / "bench.sqlite", db)
    engine = bdb.connect(db, read_only=True)
    from bench.report.frames import evaluations_frame

    assert len(evaluations_frame(engine)) > 0
    engine.dispose()
    assert sorted(p.name for p in folder.iterdir()) == ["bench.sqlite"]


@requires_mnist
def test_sigterm_is_handled_as_ctrl_c(tmp_path: Path) -> None:
    """What SLURM sends before it kills a job: one line, exit 143, the run recorded as
    interrupted and its claim released (a rerun resumes at once, not after the lease)."""
    db = tmp_path / "t.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        "--defense",
        "natural",
        *TINY[:-2],
        "--epochs",
        "50",
        "--train-subset",
        "256",
        "--test-subset",
        "20",
        "--no-eval",
        "--quiet",
        "--db",
        str(db),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _epochs(db):
            time.sleep(0.2)
        assert _epochs(db), "no epoch finished in time"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed assertion leaves no training run behind
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert "terminated (SIGTERM)" in err
    engine = bdb.connect(db)
    with Session(engine) as s:
        run = s.scalars(select(bdb.Run)).one()
        assert run.status == "interrupted"
        assert claims.holder(engine, claims.run_key(run.key)) is None


def _epochs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT count(*) FROM epoch_metrics").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0
