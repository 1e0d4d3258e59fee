"""Opening the results database: a SQLite file (the default) or a database server.

``--db`` / ``BENCH_DB`` takes a file path or any SQLAlchemy URL; opening one creates its
tables or migrates an older schema in place (bench/store/migrate.py). The schema itself is
in bench/store/db.py, which re-exports what this module defines.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    if db is not None and not str(db).strip():
        raise DatabaseError("--db is empty: give a database file or a URL, or leave it out")
    value = str(db) if db is not None else os.environ.get(ENV_DB) or ""
    if "://" not in value:
        return URL.create("sqlite", database=str(db_path(value or None)))
    try:
        url = make_url(value)
        url.port  # noqa: B018  (a port that is not a number fails here, not at connect time)
    except (ArgumentError, ValueError):
        shown = _masked(value)
        raise DatabaseError(
            f"--db {shown} is neither a file path nor a database URL "
            "(driver://user@host:port/name, the port a number)"
        ) from None
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def _masked(value: str) -> str:
    """A URL for messages with its password replaced (it may not even parse)."""
    head, sep, rest = value.partition("://")
    if not sep or "@" not in rest:
        return repr(value)
    cred, at, host = rest.rpartition("@")
    user = cred.split(":", 1)[0]
    return repr(f"{head}://{user}{':***' if ':' in cred else ''}{at}{host}")


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


def read_only_file(db: DbArg = None) -> bool:
    """A SQLite database this process can read but not write (its file or its folder is
    read-only): it is opened read-only, without WAL's side files."""
    url = db_url(db)
    if not is_sqlite(url) or not url.database or not Path(url.database).is_file():
        return False
    p = Path(url.database)
    return not (os.access(p, os.W_OK) and os.access(p.parent, os.W_OK | os.X_OK))


def connect(db: DbArg = None, *, read_only: bool = False) -> Engine:
    """Open the results database (a file path or a URL, see ``db_url``), creating its
    tables or bringing an older one up to date (Alembic migrations, bench/store/migrate.py).

    SQLite files are opened in WAL mode with a 30 s busy timeout, so readers never wait
    for writers and writers queue; a file that is not a SQLite database, a folder, or a
    server that cannot be reached is a one-line ``DatabaseError``.
    """
    url = db_url(db)
    if read_only and is_sqlite(url) and url.database:
        return _read_only_engine(Path(url.database))
    engine = _sqlite_engine(url) if is_sqlite(url) else _server_engine(url)
    try:
        migrate.upgrade(engine)
    except migrate.NewerDatabase as e:
        engine.dispose()
        raise DatabaseError(f"cannot use {describe_db(db)}: {e}") from None
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
        for parent in p.parents:
            if parent.exists() and not parent.is_dir():
                raise DatabaseError(f"cannot put the database {p} in {parent}: it is a file")
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


def _read_only_engine(path: Path) -> Engine:
    """A SQLite file opened read-only and immutable (no lock or WAL files are written);
    it must already be at this bench's schema, since it cannot be migrated."""
    uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
    engine = create_engine(
        "sqlite://", json_serializer=_json, creator=lambda: sqlite3.connect(uri, uri=True)
    )
    try:
        with engine.connect() as conn:
            revision = migrate.current(conn)
    except SQLAlchemyError as e:
        engine.dispose()
        raise DatabaseError(f"{path} is not a readable SQLite database ({_oneline(e)})") from None
    if revision != migrate.HEAD:
        engine.dispose()
        raise DatabaseError(
            f"{path} is read-only here and at schema revision {revision or 'none'}, not "
            f"{migrate.HEAD}: open it once where it can be written, to migrate it"
        )
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
