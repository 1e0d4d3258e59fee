"""Who works on what: a run or an evaluation is claimed by one worker at a time.

A claim is a row of ``claims`` (db.Claim) keyed by the job (``run:<spec key>``,
``eval:<evaluation key>``). Its owner (``host:pid:uuid``) holds a lease that a heartbeat
thread renews while the job runs; a worker that dies (kill -9) stops renewing, its lease
expires after ``BENCH_LEASE_SECONDS`` (default 60) and another worker may take the job
over: a run resumes after its last epoch, an evaluation starts again.

Taking a claim is atomic. SQLite takes the database's write lock first (``BEGIN
IMMEDIATE``); PostgreSQL locks the claim's row (``SELECT ... FOR UPDATE SKIP LOCKED``: a
row another worker is taking right now counts as busy). Inside that, the owner changes
only if the claim is free, expired, or already ours. Writes that only the owner may make
(a run's epochs and status) are *fenced*: ``Lease.fence`` renews the claim inside the same
transaction and rolls it back if the claim is no longer ours.

Clocks: expiry times are the workers' UTC clocks; hosts sharing a database need clocks
within a few seconds of each other (NTP), far less than the lease.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from bench.store.db import Claim, now
from bench.store.migrate import lock

ENV_LEASE = "BENCH_LEASE_SECONDS"
DEFAULT_LEASE = 60.0
RUN, EVAL = "run", "eval"  # the kinds of claim


def run_key(spec_key: str) -> str:
    """The claim of training the run with this spec key."""
    return f"{RUN}:{spec_key}"


def eval_key(evaluation_key: str) -> str:
    """The claim of computing the evaluation with this key."""
    return f"{EVAL}:{evaluation_key}"


@dataclass(frozen=True)
class Holder:
    """The live owner of a claim, as another worker sees it."""

    owner: str
    expires_at: dt.datetime | None
    heartbeat_at: dt.datetime | None

    def describe(self) -> str:
        if self.heartbeat_at is None:
            return self.owner
        ago = (now() - self.heartbeat_at).total_seconds()
        return f"{self.owner} (last heartbeat {max(ago, 0.0):.0f} s ago)"


class Busy(RuntimeError):
    """Another live worker holds the claim (raised when not waiting for it)."""

    def __init__(self, key: str, holder: Holder) -> None:
        super().__init__(f"{key} is being worked on by {holder.describe()}")
        self.key, self.holder = key, holder


class LeaseLost(RuntimeError):
    """This worker's claim expired and another worker took the job over: stop, write nothing."""


def lease_seconds() -> float:
    """The lease: ``BENCH_LEASE_SECONDS`` (default 60): how long a dead worker blocks a job."""
    text = os.environ.get(ENV_LEASE) or str(DEFAULT_LEASE)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.5 <= value <= 86400:  # also catches nan
        raise ValueError(f"{ENV_LEASE} must be seconds between 0.5 and 86400, got {text!r}")
    return value


def poll_seconds(lease: float) -> float:
    """How often a waiting worker looks again: a sixth of the lease, 0.2-5 s."""
    return min(5.0, max(0.2, lease / 6))


def new_owner() -> str:
    """A fresh owner id, ``host:pid@start:uuid`` (``start``: the process's start time, so a
    reused pid is told apart): unique per claim, readable in ``bench ls``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}@{_start_time(pid)}:{uuid.uuid4().hex[:12]}"


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), or "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name before ")" may hold spaces


def owner_pid(owner: str) -> int | None:
    """The process id in an owner id (``host:pid@start:uuid``, or the older ``host:pid:uuid``)."""
    pid = owner.split(":")[1].partition("@")[0] if owner.count(":") >= 2 else ""
    return int(pid) if pid.isdigit() else None


def dead_here(owner: str) -> bool:
    """Whether ``owner`` is a process on this host that no longer runs: its pid is gone, or
    now belongs to a process started at another time. Owners elsewhere are never judged."""
    host, _, rest = owner.partition(":")
    started = rest.partition(":")[0].partition("@")[2]
    pid = owner_pid(owner)
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    now_started = _start_time(pid)
    return bool(started and now_started and started != now_started)


def _retry(fn: Callable[[], bool | Holder | None]) -> bool | Holder | None:
    """Run a claim transaction; a SQLite writer queue longer than the busy timeout
    ("database is locked") is waited out again rather than shown to the user."""
    for attempt in range(20):
        try:
            return fn()
        except OperationalError as e:
            if "locked" not in str(e) or attempt == 19:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _ensure_row(conn: Connection, key: str, kind: str) -> None:
    if conn.execute(select(Claim.key).where(Claim.key == key)).first() is not None:
        return
    try:
        with conn.begin_nested():  # PostgreSQL: another worker may insert it at the same time
            conn.execute(Claim.__table__.insert().values(key=key, kind=kind, attempts=0))
    except IntegrityError:
        pass


def _take(
    engine: Engine, key: str, kind: str, owner: str, lease: float, took_over: list[str]
) -> Holder | None:
    """One atomic attempt: None when ``owner`` now holds the claim, else who does. A live
    lease of a process on this host that has exited is taken over at once, its owner
    appended to ``took_over``."""
    with engine.connect() as conn:
        lock_row = conn.dialect.name == "postgresql"
        if not lock_row:
            lock(conn)  # SQLite: BEGIN IMMEDIATE, the write lock, before reading the row
        _ensure_row(conn, key, kind)
        q = select(Claim.owner, Claim.expires_at, Claim.heartbeat_at).where(Claim.key == key)
        row = conn.execute(q.with_for_update(skip_locked=True) if lock_row else q).first()
        t = now()
        if row is None:  # locked: another worker is taking it at this moment
            return Holder("another worker (taking it now)", None, None)
        live = row.expires_at is not None and row.expires_at > t
        if row.owner not in (None, owner) and live and not dead_here(row.owner):
            return Holder(row.owner, row.expires_at, row.heartbeat_at)
        if row.owner not in (None, owner) and live:  # its process is gone: take over now
            took_over.append(row.owner)
        conn.execute(
            update(Claim)
            .where(Claim.key == key)
            .values(
                kind=kind,
                owner=owner,
                claimed_at=t,
                heartbeat_at=t,
                expires_at=t + dt.timedelta(seconds=lease),
                attempts=Claim.attempts + 1,
            )
        )
        conn.commit()
        return None


def _renew(engine: Engine, key: str, owner: str, lease: float) -> bool:
    with engine.begin() as conn:
        t = now()
        res = conn.execute(
            update(Claim)
            .where(Claim.key == key, Claim.owner == owner)
            .values(heartbeat_at=t, expires_at=t + dt.timedelta(seconds=lease))
        )
        return res.rowcount == 1


def _free(engine: Engine, key: str, owner: str) -> bool:
    with engine.begin() as conn:
        res = conn.execute(
            update(Claim)
            .where(Claim.key == key, Claim.owner == owner)
            .values(owner=None, expires_at=None)
        )
        return res.rowcount == 1


class Lease:
    """A claim this worker holds: renewed by a heartbeat thread until released.

    Use as a context manager (``with hold(...) as lease:``); ``check()`` raises
    ``LeaseLost`` once the claim may no longer be ours, ``fence(session)`` before a commit
    only the owner may make.
    """

    def __init__(self, engine: Engine, key: str, owner: str, seconds: float) -> None:
        self.engine, self.key, self.owner, self.seconds = engine, key, owner, seconds
        self._renewed = time.monotonic()
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {key}", daemon=True)

    def start(self) -> Lease:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                if not _retry(lambda: _renew(self.engine, self.key, self.owner, self.seconds)):
                    self._lost.set()  # another worker took it over
                    return
                self._renewed = time.monotonic()
            except SQLAlchemyError:
                pass  # the database is unreachable for now: check() tells when it matters

    @property
    def lost(self) -> bool:
        """Taken over, or not renewed for most of a lease (so perhaps expired)."""
        stale = time.monotonic() - self._renewed > 0.8 * self.seconds
        return self._lost.is_set() or stale

    def check(self) -> None:
        """Raise ``LeaseLost`` when the claim may no longer be ours (call between steps)."""
        if self.lost:
            raise LeaseLost(f"lost the claim on {self.key}: another worker took it over")

    def fence(self, session: Session) -> None:
        """Renew the claim in ``session``'s transaction, so that its commit happens only
        while the claim is ours; otherwise roll back and raise ``LeaseLost``."""
        t = now()
        res = session.execute(
            update(Claim)
            .where(Claim.key == self.key, Claim.owner == self.owner)
            .values(heartbeat_at=t, expires_at=t + dt.timedelta(seconds=self.seconds)),
            execution_options={"synchronize_session": False},
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            self._lost.set()
            raise LeaseLost(f"lost the claim on {self.key}: another worker took it over")
        self._renewed = time.monotonic()

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with contextlib.suppress(SQLAlchemyError):  # if not, the lease expires by itself
            _retry(lambda: _free(self.engine, self.key, self.owner))

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.release()


def hold(
    engine: Engine,
    key: str,
    kind: str,
    *,
    wait: bool = True,
    on_wait: Callable[[Holder, float], None] | None = None,
) -> Lease:
    """Claim ``key`` for this worker and start its heartbeat.

    Held by another live worker: with ``wait``, look again every ``poll_seconds`` (calling
    ``on_wait(holder, poll)`` whenever the holder changes) until it is released or its
    lease expires; without, raise ``Busy``.
    """
    seconds, owner = lease_seconds(), new_owner()
    shown, took_over = None, []
    while True:
        holder = _retry(lambda: _take(engine, key, kind, owner, seconds, took_over))
        if holder is None:
            if took_over:
                print(
                    f"{key}: its holder {took_over[-1]} was a process on this host that has "
                    "exited; taking it over without waiting for its lease",
                    file=sys.stderr,
                )
            return Lease(engine, key, owner, seconds).start()
        assert isinstance(holder, Holder)
        if not wait:
            raise Busy(key, holder)
        if on_wait is not None and holder.owner != shown:
            on_wait(holder, poll_seconds(seconds))
            shown = holder.owner
        time.sleep(poll_seconds(seconds))


def holder(engine: Engine, key: str) -> Holder | None:
    """The live owner of ``key`` (None: free, or its lease expired)."""
    with Session(engine) as s:
        row = s.get(Claim, key)
        if row is None or row.owner is None or row.expires_at is None:
            return None
        if row.expires_at <= now():
            return None
        return Holder(row.owner, row.expires_at, row.heartbeat_at)
