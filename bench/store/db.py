"""The results database (SQLAlchemy 2.0; SQLite or PostgreSQL): the schema, and the
queries several layers share (find, list and delete runs; stored audit results).

States only, never code: runs (spec + provenance), per-epoch metrics, checkpoints and
evaluations. Numbers are stored as numbers; each evaluation also keeps which test points
stayed robust (a packed bit mask), so worst cases over attacks need no new attack. Claims
say which worker is working on a run or an evaluation now (bench/store/claims.py);
placements, where an executor placed a job (bench/executors).
Opening a database is bench/store/engine.py (``connect`` etc., re-exported here); schema
changes are Alembic migrations (bench/store/migrations/, docs/databases.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

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
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from bench.core.constants import RunStatus
from bench.store.engine import DatabaseError as DatabaseError
from bench.store.engine import connect as connect
from bench.store.engine import db_exists as db_exists
from bench.store.engine import db_path as db_path
from bench.store.engine import db_url as db_url
from bench.store.engine import describe_db as describe_db
from bench.store.engine import read_only_file as read_only_file

T = TypeVar("T")


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
    # --val-subset: the same monitor on the held-out training images (migration 0004)
    val_clean_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_robust_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_val: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run: Mapped[Run] = relationship(back_populates="epochs")


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "tag"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    tag: Mapped[str] = mapped_column(String(16))  # best | last | best-val
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


class Claim(Base):
    """Which worker is working on a job now: one row per run or evaluation key.

    ``owner`` (host:pid:uuid) holds it until ``expires_at``, renewed by its heartbeat; a
    free (owner NULL) or expired claim may be taken by another worker. ``attempts``
    counts how often it was taken (a run resumed after a killed worker: 2).
    """

    __tablename__ = "claims"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # run:<key>, eval:<key>
    kind: Mapped[str] = mapped_column(String(16))  # run | eval
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Placement(Base):
    """Where an executor placed a job (bench/executors): which engine, its own id for it,
    when, and the engine's last known state. The job's progress is the database's own
    (runs, epochs, evaluations, claims); this row only says where to look for its worker.
    """

    __tablename__ = "placements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_key: Mapped[str] = mapped_column(String(64), index=True)  # the run's spec key
    job_name: Mapped[str] = mapped_column(String(200))
    executor: Mapped[str] = mapped_column(String(16))  # local | slurm | ray
    external_id: Mapped[str] = mapped_column(String(200))  # pid, SLURM job id, Ray task id
    location: Mapped[str] = mapped_column(String(500), default="")  # host, log folder, address
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)
    state: Mapped[str] = mapped_column(String(200), default="SUBMITTED")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=now)


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


def find_run(session: Session, name_or_key: str) -> Run | None:
    """The run with this name or key, else the one run whose name or key starts with it
    (a prefix shared by several runs is a one-line ``LookupError`` naming them)."""
    exact = session.scalars(
        select(Run).where((Run.name == name_or_key) | (Run.key == name_or_key))
    ).first()
    if exact is not None or not name_or_key:
        return exact
    starts = (Run.name.startswith(name_or_key, autoescape=True)) | (
        Run.key.startswith(name_or_key, autoescape=True)
    )
    found = list(session.scalars(select(Run).where(starts).order_by(Run.id).limit(4)))
    if len(found) > 1:
        names = ", ".join(r.name for r in found[:3]) + (" ..." if len(found) > 3 else "")
        raise LookupError(f"{name_or_key!r} is the start of several runs ({names}): say more")
    return found[0] if found else None


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


def add_once(session: Session, row: T, find: Callable[[], T | None]) -> T:
    """Add and commit ``row``; if another worker committed the same unique key first
    (IntegrityError), roll back and return theirs (``find``): no duplicate, no crash."""
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        other = find()
        if other is None:
            raise
        return other
    return row
