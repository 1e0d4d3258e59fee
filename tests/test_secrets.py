"""No output of bench holds a database password: a PostgreSQL run with a password in its
URL, then every artefact it leaves is searched for it (issue 22). A file that must hold
the URL (a placed job's task file, submitit's pickles) is readable by its owner only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import requires_mnist
from sqlalchemy import MetaData, select
from typer.testing import CliRunner

from bench.cli import app
from bench.store import db as bdb

SECRET = "Pw-b3nch-s3cret"
TINY = [
    "--model",
    "tiny-cnn",
    "--dataset",
    "mnist",
    "--train-subset",
    "64",
    "--epochs",
    "1",
    "--test-subset",
    "20",
    "--attacks",
    "clean,fgsm",
    "--no-progress",
]


def _with_password(url: str) -> str:
    """The test server trusts every local connection, so any password is accepted."""
    return url.replace("postgres@", f"postgres:{SECRET}@")


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def _database_text(url: str) -> str:
    """Every row of every table, as text."""
    engine = bdb.connect(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(str(row) for t in meta.sorted_tables for row in conn.execute(select(t)))


@requires_mnist
def test_no_artefact_of_a_postgres_run_shows_its_password(pg_server, tmp_path: Path) -> None:
    url = _with_password(pg_server.create_database())
    runs, site, ex = tmp_path / "runs", tmp_path / "site", tmp_path / "executors"
    said = [
        _cli("run", "--defense", "natural", *TINY, "--db", url, "--runs-dir", str(runs)),
        _cli(
            "run",
            "--defense",
            "standard",
            *TINY,
            "--train-steps",
            "1",
            "--db",
            url,
            "--runs-dir",
            str(runs),
            "--executor",
            "local",
            "--workers",
            "1",
            "--executor-dir",
            str(ex),
        ),
        _cli("run", "--defense", "standard", *TINY, "--train-steps", "1", "--db", url, "--status"),
        _cli("ls", "runs", "--db", url),
        _cli("table", "--format", "json", "--db", url),
        _cli("table", "--paper", "--db", url),
        _cli(
            "export",
            "--out",
            str(tmp_path / "x.json"),
            "--markdown",
            str(tmp_path / "x.md"),
            "--db",
            url,
        ),
        _cli("report", "--out", str(site), "--db", url, "--quiet"),
    ]
    name = next(line.split("|")[1].strip() for line in said[3].splitlines() if "natural" in line)
    said.append(_cli("show", name, "--db", url))
    assert all(SECRET not in text for text in said)
    assert (site / "index.html").exists() and "127.0.0.1" in (site / "index.html").read_text()
    assert _files_holding(site, SECRET) == []
    assert _files_holding(runs, SECRET) == []
    assert (tmp_path / "x.json").exists() and (tmp_path / "x.md").exists()
    assert all(ex in p.parents for p in _files_holding(tmp_path, SECRET))  # exports: none
    for path in _files_holding(ex, SECRET):  # the task files hand the URL to the workers
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert SECRET not in _database_text(url)  # provenance, placements, claims


@requires_mnist
def test_submitit_pickles_holding_the_url_are_owner_only(pg_server, tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    url = _with_password(pg_server.create_database())
    ex = tmp_path / "executors"
    _cli(
        "run",
        "--defense",
        "natural",
        *TINY,
        "--db",
        url,
        "--runs-dir",
        str(tmp_path / "r"),
        "--executor",
        "slurm",
        "--submitit-cluster",
        "local",
        "--executor-dir",
        str(ex),
    )
    holding = _files_holding(ex, SECRET)
    assert holding, "submitit's pickles hold the URL: the test would prove nothing"
    for path in holding:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
