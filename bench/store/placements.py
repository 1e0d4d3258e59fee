"""Where executors placed jobs (``placements``): recorded at submission, read by ``--status``.

A placement never decides what is done: the runs, epochs, evaluations and claims do. It
only remembers, per job, which engine was asked to run it (``local``, ``slurm``, ``ray``),
the engine's own id for it (worker pids, a SLURM job id, a Ray task id), where to look
(host, log folder, cluster address), and the engine's state as last seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.store.db import Placement, now


@dataclass(frozen=True)
class Placed:
    """One job handed to an engine (what ``record`` stores)."""

    job_key: str
    job_name: str
    executor: str
    external_id: str
    location: str = ""
    state: str = "SUBMITTED"


def record(engine: Engine, placed: list[Placed]) -> list[int]:
    """Store the placements; returns their row ids (for ``set_state``)."""
    with Session(engine, expire_on_commit=False) as s:
        rows = [
            Placement(
                job_key=p.job_key,
                job_name=p.job_name[:200],
                executor=p.executor,
                external_id=p.external_id[:200],
                location=p.location[:500],
                state=p.state,
            )
            for p in placed
        ]
        s.add_all(rows)
        s.commit()
        return [r.id for r in rows]


def set_state(engine: Engine, ids: list[int], state: str) -> None:
    """The engine's state of these placements, as just seen."""
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(Placement)
            .where(Placement.id.in_(ids))
            .values(state=state[:200], updated_at=now())
        )


def latest(engine: Engine, job_keys: list[str]) -> dict[str, Placement]:
    """The newest placement of each job that has one (by spec key)."""
    out: dict[str, Placement] = {}
    with Session(engine, expire_on_commit=False) as s:
        rows = s.scalars(
            select(Placement).where(Placement.job_key.in_(job_keys)).order_by(Placement.id)
        )
        for row in rows:
            out[row.job_key] = row
    return out
