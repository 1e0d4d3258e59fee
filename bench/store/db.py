"""The results database (SQLite through SQLAlchemy 2.0): the schema, how to open it, and
the queries several layers share (find, list and delete runs; stored audit results).

States only, never code: runs (spec + provenance), per-epoch metrics, checkpoints and
evaluations. Numbers are stored as numbers; each evaluation also keeps which test points
stayed robust (a packed bit mask), so worst cases over attacks need no new attack.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from bench.core.constants import RunStatus
from bench.core.home import ENV_DB, default_db


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    defense: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    preset: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.CREATED.value)
    seed: Mapped[int] = mapped_column(Integer)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    run_dir: Mapped[str] = mapped_column(String(500))
    data_label: Mapped[str] = mapped_column(String(300), default="")
    n_train: Mapped[int | None] = mapped_column(Integer, nullable=True)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    train_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    epochs: Mapped[list[EpochMetric]] = relationship(back_populates="run", cascade="all")
    checkpoints: Mapped[list[Checkpoint]] = relationship(back_populates="run", cascade="all")
    evaluations: Mapped[list[Evaluation]] = relationship(back_populates="run", cascade="all")


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)  # 1-based: epochs completed
    lr: Mapped[float] = mapped_column(Float)
    train_loss: Mapped[float] = mapped_column(Float)
    clean_acc: Mapped[float] = mapped_column(Float)
    robust_acc: Mapped[float] = mapped_column(Float)  # monitor attack (PGD-20)
    n_monitor: Mapped[int] = mapped_column(Integer)
    monitor_attack: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    run: Mapped[Run] = relationship(back_populates="epochs")


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "tag"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    tag: Mapped[str] = mapped_column(String(16))  # best | last
    epoch: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    robust_acc: Mapped[float] = mapped_column(Float)
    run: Mapped[Run] = relationship(back_populates="checkpoints")


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    checkpoint: Mapped[str] = mapped_column(String(16))  # best | last
    checkpoint_epoch: Mapped[int] = mapped_column(Integer)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    attack: Mapped[str] = mapped_column(String(64), index=True)  # preset name
    attack_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset: Mapped[str] = mapped_column(String(64))
    data_label: Mapped[str] = mapped_column(String(300), default="")
    n: Mapped[int] = mapped_column(Integer)
    correct: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(64), default="")
    # git commit, library versions, device, host: how this row was computed.
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    robust_mask: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    run: Mapped[Run] = relationship(back_populates="evaluations")

    def robust(self) -> np.ndarray:
        """Per test point: True where the model stayed correct under this attack."""
        return unpack_mask(self.robust_mask, self.n)


class AuditFlag(Base):
    """One gradient-masking check on one evaluated checkpoint (bench/eval/audit.py, docs/audit.md).

    Recomputed from the evaluations after every ``eval_job``; ``status`` is ok, flag or
    not-evaluated (an attack the check needs has no evaluation: never shown as a pass).
    ``value`` keeps the check's number (e.g. the zero-gradient fraction) apart from text.
    """

    __tablename__ = "audit_flags"
    __table_args__ = (UniqueConstraint("run_id", "checkpoint", "check"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    checkpoint: Mapped[str] = mapped_column(String(16))
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # ok | flag | not-evaluated
    n: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


def make_evaluation(
    *,
    key: str,
    checkpoint: Checkpoint,
    attack: str,
    attack_params: dict[str, Any],
    dataset: str,
    data_label: str,
    robust: np.ndarray,
    seconds: float,
    seed: int,
    provenance: dict[str, Any],
) -> Evaluation:
    """An evaluation row from a per-point robust mask: n, correct and accuracy derive from it."""
    robust = np.asarray(robust, dtype=bool)
    n = int(robust.size)
    return Evaluation(
        key=key,
        run_id=checkpoint.run_id,
        checkpoint=checkpoint.tag,
        checkpoint_epoch=checkpoint.epoch,
        checkpoint_sha256=checkpoint.sha256,
        attack=attack,
        attack_params=attack_params,
        dataset=dataset,
        data_label=data_label,
        n=n,
        correct=int(robust.sum()),
        accuracy=float(robust.mean()) if n else float("nan"),
        seconds=seconds,
        seed=seed,
        device=str(provenance.get("device", "")),
        provenance=provenance,
        robust_mask=pack_mask(robust),
    )


def pack_mask(mask: np.ndarray) -> bytes:
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes()


def unpack_mask(blob: bytes, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[:n].astype(bool)


class DatabaseError(RuntimeError):
    """The results database cannot be opened or read; the message is one line."""


def db_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get(ENV_DB) or default_db()).expanduser().resolve()


def connect(path: str | os.PathLike[str] | None = None) -> Engine:
    """Open (creating if needed) the SQLite results database at ``path``.

    The URL is built with ``URL.create``, so any file name works (``?``, ``%`` included);
    a file that is not a SQLite database, or a folder, is a one-line ``DatabaseError``.
    """
    p = db_path(path)
    if p.is_dir():
        raise DatabaseError(f"--db {p} is a folder, not a database file")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatabaseError(f"cannot create the folder of {p}: {e.strerror}") from None
    url = URL.create("sqlite", database=str(p))
    engine = create_engine(url, json_serializer=lambda o: json.dumps(o))

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:  # WAL: readers don't block a training run
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    try:
        _create(engine)
        _upgrade(engine)
    except SQLAlchemyError as e:
        engine.dispose()
        raise DatabaseError(
            f"{p} is not a usable SQLite results database ({_oneline(e)})"
        ) from None
    return engine


def _oneline(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e)
    return " ".join(text.split())[:160]


def _create(engine: Engine) -> None:
    """Create missing tables. Two processes opening a new database at once race between
    SQLAlchemy's existence check and CREATE TABLE: "already exists" means the other one
    won for that table, so check again (a few times, briefly) instead of failing."""
    for attempt in range(10):
        try:
            Base.metadata.create_all(engine)
            return
        except OperationalError as e:
            if "already exists" not in str(e) or attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


def _upgrade(engine: Engine) -> None:
    """Add the nullable columns newer versions introduced to a database made by an older one."""
    insp = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have and col.nullable:
                    kind = col.type.compile(dialect=engine.dialect)
                    sql = f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}'
                    try:
                        with conn.begin_nested():
                            conn.execute(text(sql))
                    except OperationalError as e:  # another process added it first
                        if "duplicate column" not in str(e):
                            raise


def find_run(session: Session, name_or_key: str) -> Run | None:
    return session.scalars(
        select(Run).where((Run.name == name_or_key) | (Run.key == name_or_key))
    ).first()


def delete_run(session: Session, run: Run) -> int:
    """Delete a run and every row that belongs to it; returns the number of rows deleted."""
    flags = list(session.scalars(select(AuditFlag).where(AuditFlag.run_id == run.id)))
    for row in flags:
        session.delete(row)
    n = 1 + len(flags) + len(run.epochs) + len(run.checkpoints) + len(run.evaluations)
    session.delete(run)  # its epochs, checkpoints and evaluations go with it (cascade)
    session.commit()
    return n


def list_runs(engine: Engine) -> list[Run]:
    """Every run, in the order they were created."""
    with Session(engine) as s:
        return list(s.scalars(select(Run).order_by(Run.id)))


def audit_records(engine: Engine, runs: list[str] | None = None) -> list[dict[str, object]]:
    """Stored audit results of the runs' current checkpoints, as plain records for tables."""
    query = (
        select(AuditFlag, Run)
        .join(Run, AuditFlag.run_id == Run.id)
        .join(
            Checkpoint,
            (Checkpoint.run_id == AuditFlag.run_id)
            & (Checkpoint.tag == AuditFlag.checkpoint)
            & (Checkpoint.sha256 == AuditFlag.checkpoint_sha256),
        )
        .order_by(Run.id, AuditFlag.checkpoint, AuditFlag.id)
    )
    if runs is not None:
        query = query.where(Run.name.in_(runs))
    with Session(engine) as s:
        return [
            {
                "run": r.name,
                "checkpoint": a.checkpoint,
                "check": a.check,
                "status": a.status,
                "n": a.n,
                "value": a.value,
                "detail": a.detail,
            }
            for a, r in s.execute(query).all()
        ]
