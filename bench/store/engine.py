"""Opening the results database: a SQLite file (the default) or a database server.

``--db`` / ``BENCH_DB`` takes a file path or any SQLAlchemy URL; opening one creates its
tables or migrates an older schema in place (bench/store/migrate.py). The schema itself is
in bench/store/db.py, which re-exports what this module defines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bench.core.home import ENV_DB, default_db
from bench.store import migrate

# How long a SQLite writer waits for another one (many workers' claims and epochs queue).
SQLITE_BUSY_SECONDS = 30.0


class DatabaseError(RuntimeError):
    """The results database cannot be opened or read; the message is one line."""


DbArg = str | os.PathLike[str] | None


def db_url(db: DbArg = None) -> URL:
    """The database ``--db`` / ``BENCH_DB`` names: a file path (SQLite, the default
    ``$BENCH_HOME/bench.sqlite``) or any SQLAlchemy URL (``postgresql+psycopg://u@host/db``;
    a plain ``postgresql://`` uses psycopg too)."""
    value = str(db) if db is not None else os.environ.get(ENV_DB) or ""
    if "://" not in value:
        return URL.create("sqlite", database=str(db_path(value or None)))
    try:
        url = make_url(value)
    except ArgumentError:
        raise DatabaseError(f"--db {value!r} is neither a file path nor a database URL") from None
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def db_path(path: DbArg = None) -> Path:
    """The SQLite file of ``path`` (else ``BENCH_DB``, else the default)."""
    return Path(path or os.environ.get(ENV_DB) or default_db()).expanduser().resolve()


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def describe_db(db: DbArg = None) -> str:
    """The database for messages: a SQLite file's path, else its URL without the password."""
    url = db_url(db)
    if is_sqlite(url):
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def db_exists(db: DbArg = None) -> bool:
    """Whether the database is there to read: a SQLite file exists; a server is assumed to."""
    url = db_url(db)
    return not is_sqlite(url) or not url.database or Path(url.database).exists()


def connect(db: DbArg = None) -> Engine:
    """Open the results database (a file path or a URL, see ``db_url``), creating its
    tables or bringing an older one up to date (Alembic migrations, bench/store/migrate.py).

    SQLite files are opened in WAL mode with a 30 s busy timeout, so readers never wait
    for writers and writers queue; a file that is not a SQLite database, a folder, or a
    server that cannot be reached is a one-line ``DatabaseError``.
    """
    url = db_url(db)
    engine = _sqlite_engine(url) if is_sqlite(url) else _server_engine(url)
    try:
        migrate.upgrade(engine)
    except (SQLAlchemyError, ModuleNotFoundError) as e:
        engine.dispose()
        where = describe_db(db)
        if is_sqlite(url):
            raise DatabaseError(
                f"{where} is not a usable SQLite results database ({_oneline(e)})"
            ) from None
        raise DatabaseError(f"cannot open the database {where} ({_oneline(e)})") from None
    return engine


def _json(o: Any) -> str:
    return json.dumps(o)


def _sqlite_engine(url: URL) -> Engine:
    if url.database:
        p = Path(url.database)
        if p.is_dir():
            raise DatabaseError(f"--db {p} is a folder, not a database file")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabaseError(f"cannot create the folder of {p}: {e.strerror}") from None
    # timeout: the busy wait of a writer behind another (the claims of many workers);
    # check_same_thread off: a claim's heartbeat thread uses the pool too (one at a time).
    args = {"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False}
    engine = create_engine(url, json_serializer=_json, connect_args=args)

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:  # WAL: readers don't block a training run
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def _server_engine(url: URL) -> Engine:
    """A database server (PostgreSQL): connections checked before use, since a server
    closes idle ones that a long training run keeps in its pool."""
    try:
        return create_engine(url, json_serializer=_json, pool_pre_ping=True)
    except (ArgumentError, ModuleNotFoundError) as e:
        where = url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot use the database URL {where}: {_oneline(e)}") from None


def _oneline(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e)
    return " ".join(text.split())[:160]
