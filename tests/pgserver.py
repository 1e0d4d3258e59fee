"""A throwaway PostgreSQL server for the tests (and benchmarks/soak.py).

``initdb`` and ``pg_ctl`` (PostgreSQL's own binaries: /usr/lib/postgresql/*/bin, or on
PATH) make a cluster in a temporary folder and serve it on a free 127.0.0.1 port with
trust authentication, fsync off; ``stop`` removes it all. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg


def bin_dir() -> Path | None:
    """The newest folder holding both ``initdb`` and ``pg_ctl``."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True
    )
    on_path = shutil.which("initdb")
    for d in [*found, *([Path(on_path).parent] if on_path else [])]:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def _run_as() -> list[str] | None:
    """The prefix that runs the server's commands: nothing, or runuser to postgres as root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


def unavailable() -> str | None:
    """Why no test server can be started here (None: it can)."""
    if bin_dir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) found: apt-get install postgresql"
    if _run_as() is None:
        return "running as root, and no 'postgres' user (or runuser) to run PostgreSQL as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL cluster: ``start``, ``create_database``, ``stop``."""

    def __init__(self) -> None:
        bindir, prefix = bin_dir(), _run_as()
        assert bindir is not None and prefix is not None, unavailable()
        self.bin, self.prefix, self.port = bindir, prefix, free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "data"

    def _cmd(self, tool: str, *args: str) -> None:
        cmd = [*self.prefix, str(self.bin / tool), *args]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, check=False)
        if out.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {out.stderr.strip()} {tail}")

    def start(self) -> Server:
        self._cmd("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c max_connections=200"
        )
        self._cmd(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        try:
            self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"bench_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
