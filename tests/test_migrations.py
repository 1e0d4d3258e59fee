"""Schema migrations (bench/store/migrate.py): a new database gets the models' schema on
both backends, an older one is upgraded in place, many processes may open one at once, and
a database that cannot be opened is one line."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from bench.cli import app
from bench.store import db as bdb
from bench.store import migrate

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden.sqlite"


def test_head_is_the_newest_script() -> None:
    assert migrate.scripts().get_current_head() == migrate.HEAD


def test_a_new_database_has_exactly_the_models_schema(db_url: str) -> None:
    engine = bdb.connect(db_url)
    with engine.connect() as conn:
        assert migrate.current(conn) == migrate.HEAD
        assert compare_metadata(MigrationContext.configure(conn), bdb.Base.metadata) == []


def _counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    tables = ("runs", "epoch_metrics", "checkpoints", "evaluations", "audit_flags")
    out = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    con.close()
    return out


def test_a_database_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    copy = tmp_path / "old.sqlite"
    shutil.copy(GOLDEN, copy)  # made by an older bench: no provenance column, no claims
    before = _counts(copy)
    assert before["evaluations"] > 0
    engine = bdb.connect(copy)
    insp = inspect(engine)
    assert "claims" in insp.get_table_names()
    assert "provenance" in {c["name"] for c in insp.get_columns("evaluations")}
    with engine.connect() as conn:
        assert migrate.current(conn) == migrate.HEAD
        assert compare_metadata(MigrationContext.configure(conn), bdb.Base.metadata) == []
    engine.dispose()
    assert _counts(copy) == before  # nothing rebuilt, nothing lost


def test_an_older_revision_is_upgraded_and_a_current_one_left_alone(db_url, monkeypatch) -> None:
    engine = bdb.connect(db_url)
    with engine.begin() as conn:  # as revision 0001 left it
        conn.execute(text("DROP TABLE claims"))
        conn.execute(text("DROP TABLE placements"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    assert {"claims", "placements"} <= set(inspect(bdb.connect(db_url)).get_table_names())

    def no_migration(_conn) -> None:
        raise AssertionError("a database at HEAD was migrated again")

    monkeypatch.setattr(migrate, "_run", no_migration)
    bdb.connect(db_url).dispose()


def test_processes_opening_a_new_database_at_once_all_succeed(db_url: str) -> None:
    code = f"from bench.store import db; db.connect({db_url!r}).dispose(); print('ok')"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err
    with bdb.connect(db_url).connect() as conn:
        assert migrate.current(conn) == migrate.HEAD


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the database"),
        ("nosuchdb://host/x", "cannot use the database URL"),
        ("postgresql://user:secret@127.0.0.1:1/x", "cannot open the database"),
    ],
)
def test_an_unusable_database_url_is_one_line(url: str, message: str) -> None:
    res = CliRunner().invoke(app, ["table", "--db", url])
    assert res.exit_code == 2
    assert res.output.startswith("error: ") and message in res.output
    assert res.output.count("\n") == 1 and "secret" not in res.output


def test_a_plain_postgresql_url_uses_psycopg() -> None:
    assert bdb.db_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert bdb.db_url("results/x.sqlite").drivername == "sqlite"
    assert bdb.describe_db("postgresql://u:pw@h/d") == "postgresql+psycopg://u:***@h/d"
