"""Schema migrations: Alembic, run when a database is opened.

The revisions live in bench/store/migrations/versions/ (docs/databases.md says how to add
one). ``upgrade`` brings any database to ``HEAD``: a new one gets every table, one made
before migrations existed (no ``alembic_version``) is taken up by the baseline revision,
which adds only what is missing, so results databases upgrade in place.

Many workers may open a database at once: the first takes a lock (SQLite: the write lock,
``BEGIN IMMEDIATE``; PostgreSQL: an advisory transaction lock), checks the revision again
and migrates in one transaction; the others wait, then find it done. A database already
at ``HEAD`` costs one query, and Alembic (0.1-0.2 s to import) is loaded only to migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision; tests/test_migrations.py checks it is the scripts' head.
HEAD = "0004"
VERSION_TABLE = "alembic_version"
_PG_LOCK = 0x62656E6368  # "bench": the advisory lock id of migrations


def current(conn: Connection) -> str | None:
    """The database's revision (None: a new database, or one from before migrations)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


class NewerDatabase(RuntimeError):
    """The database was written by a newer bench (a revision after ``HEAD``)."""


def _check_known(revision: str | None) -> None:
    if revision is not None and (not revision.isdigit() or int(revision) > int(HEAD)):
        raise NewerDatabase(
            f"it was written by a newer bench (schema revision {revision}; this bench knows "
            f"up to {HEAD}): upgrade bench (pip install -U) to read it"
        )


def upgrade(engine: Engine) -> None:
    """Migrate the database to ``HEAD`` (a quick check when it is there); a database from a
    newer bench is refused (``NewerDatabase``), never migrated or written."""
    with engine.connect() as conn:
        revision = current(conn)
        if revision == HEAD:
            return
        _check_known(revision)
        conn.rollback()
        lock(conn)
        if current(conn) != HEAD:
            _run(conn)
        conn.commit()


def lock(conn: Connection) -> None:
    """Begin a transaction that only one process at a time holds: SQLite's write lock
    (waiting up to the busy timeout), or PostgreSQL's migration advisory lock."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})


def scripts() -> Any:
    """Alembic's view of bench/store/migrations (a ``ScriptDirectory``); imported here, not
    at start-up, since a database at ``HEAD`` needs no Alembic."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def _run(conn: Connection) -> None:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    script = scripts()

    def steps(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs(HEAD, rev)

    with EnvironmentContext(Config(), script, fn=steps, destination_rev=HEAD) as env:
        env.configure(connection=conn)
        with env.begin_transaction():  # joins ours: the caller commits
            env.run_migrations()
