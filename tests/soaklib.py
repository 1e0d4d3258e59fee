"""The fault soak: worker processes running one experiment grid on one database, killed
with SIGKILL now and then and replaced, checked against a sequential run of the grid.

Used by tests/test_soak.py (small) and benchmarks/soak.py (larger, prints the figures).
Each worker is a plain `bench experiment table2-mnist ...` process; the first kill waits
for a worker that is mid-way through training a run (so that a run must be resumed), the
others hit a random worker. Afterwards ``verify`` counts what must be zero: runs not
done, epochs recorded twice or missing, evaluations stored twice or missing, numbers that
differ from the sequential run's, "database is locked" in any worker's output.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bench.store import claims
from bench.store import db as bdb

MAIN = "from bench.cli import main; main()"


@dataclass(frozen=True)
class Grid:
    """tiny-cnn on MNIST: defenses x seeds, one job each (train, then 4 attacks x 2 ckpts)."""

    defenses: tuple[str, ...] = ("standard", "mma", "trades", "mart")
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 2
    train_subset: int = 128
    test_subset: int = 64
    train_steps: int = 5

    @property
    def jobs(self) -> int:
        return len(self.defenses) * len(self.seeds)

    def args(self) -> list[str]:
        return [
            "experiment",
            "table2-mnist",
            "--model",
            "tiny-cnn",
            "--dataset",
            "mnist",
            "--only",
            ",".join(self.defenses),
            "--seeds",
            ",".join(map(str, self.seeds)),
            "--epochs",
            str(self.epochs),
            "--train-subset",
            str(self.train_subset),
            "--test-subset",
            str(self.test_subset),
            "--train-steps",
            str(self.train_steps),
            "--threads",
            "1",
            "--device",
            "cpu",
            "--no-progress",
        ]


def start(grid: Grid, db: str, home: Path, log: Path, lease: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BENCH_DB": db,
        "BENCH_HOME": str(home),
        "BENCH_LEASE_SECONDS": str(lease),
        "OMP_NUM_THREADS": "1",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", MAIN, *grid.args()], env=env, stdout=out, stderr=out
        )


def sequential(grid: Grid, db: str, home: Path) -> float:
    """One worker, no kills: the reference. Returns its wall time in seconds."""
    t0 = time.perf_counter()
    proc = start(grid, db, home, home.parent / f"{home.name}-sequential.log", 60)
    if proc.wait(timeout=1800) != 0:
        raise RuntimeError(f"the sequential run failed: see {home.parent}")
    return time.perf_counter() - t0


@dataclass
class Soak:
    wall: float = 0.0
    kills: int = 0
    logs: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # workers that exited with an error
    reads: int = 0  # the driver reads the database as a user polling it would
    read_errors: list[str] = field(default_factory=list)


def _read(engine, out: Soak) -> None:
    """One reader's poll (what `bench ls runs` / `--dry-run` read): it must never fail."""
    try:
        with Session(engine) as s:
            s.scalars(select(bdb.Run)).all()
            s.scalar(select(func.count()).select_from(bdb.EpochMetric))
        out.reads += 1
    except SQLAlchemyError as e:
        out.read_errors.append(" ".join(str(e).split())[:200])


def _training_owner(engine) -> int | None:
    """The pid of a worker that is mid-way through training a run (an epoch done)."""
    with Session(engine) as s:
        rows = s.execute(
            select(bdb.Claim.owner)
            .join(bdb.Run, bdb.Claim.key == claims.run_key("") + bdb.Run.key)
            .where(bdb.Claim.owner.is_not(None), bdb.Run.status == "running")
            .where(bdb.Run.epochs_done >= 1)
        ).all()
    return claims.owner_pid(rows[0].owner) if rows else None


def soak(
    grid: Grid,
    db: str,
    home: Path,
    *,
    workers: int = 3,
    kill_every: tuple[float, float] = (4.0, 8.0),
    lease: float = 3.0,
    seed: int = 0,
    max_kills: int | None = None,
    timeout: float = 1800,
) -> Soak:
    """Run ``workers`` workers until the grid is done, killing one (SIGKILL) every
    ``kill_every`` seconds (uniform; at most ``max_kills``) and starting a new one in its
    place."""
    rng, out, engine = random.Random(seed), Soak(), bdb.connect(db)
    procs: list[subprocess.Popen[bytes]] = []

    def spawn() -> None:
        out.logs.append(home.parent / f"{home.name}-worker{len(out.logs)}.log")
        procs.append(start(grid, db, home, out.logs[-1], lease))

    t0 = time.perf_counter()
    for _ in range(workers):
        spawn()
    next_kill = t0 + rng.uniform(*kill_every)
    while any(p.poll() is None for p in procs):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the soak did not finish in {timeout:.0f} s")
        done = any(p.returncode == 0 for p in procs)  # a worker ends once every job is done
        live = [p for p in procs if p.poll() is None]
        more = max_kills is None or out.kills < max_kills
        if not done and more and time.perf_counter() >= next_kill:
            target = _training_owner(engine) if out.kills == 0 else rng.choice(live).pid
            victim = next((p for p in live if p.pid == target), None)
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                out.kills += 1
                spawn()
                next_kill = time.perf_counter() + rng.uniform(*kill_every)
        _read(engine, out)
        time.sleep(0.2)
    out.wall = time.perf_counter() - t0
    out.failures = [
        str(log) for p, log in zip(procs, out.logs, strict=True) if p.returncode not in (0, -9)
    ]
    engine.dispose()
    return out


def _numbers(db: str) -> dict[str, object]:
    """Everything computed, by run name: epochs, checkpoints, evaluations (not timings)."""
    engine = bdb.connect(db)
    out: dict[str, object] = {}
    with Session(engine) as s:
        for run in s.scalars(select(bdb.Run)):
            epochs = sorted(
                (e.epoch, e.lr, e.train_loss, e.clean_acc, e.robust_acc) for e in run.epochs
            )
            ckpts = sorted((c.tag, c.epoch, c.sha256) for c in run.checkpoints)
            evals = sorted((e.key, e.correct, e.n, e.robust_mask) for e in run.evaluations)
            out[run.name] = (run.status, epochs, ckpts, evals)
    engine.dispose()
    return out


def verify(db: str, reference: str, grid: Grid, logs: list[Path]) -> dict[str, int]:
    """The soak's figures; every one but ``jobs``, ``runs`` and ``evaluations`` must be 0."""
    ours, ref = _numbers(db), _numbers(reference)
    engine = bdb.connect(db)
    with Session(engine) as s:
        rows = s.execute(select(bdb.EpochMetric.run_id, bdb.EpochMetric.epoch)).all()
        epochs = collections.Counter(tuple(r) for r in rows)
        keys = collections.Counter(s.scalars(select(bdb.Evaluation.key)))
        n_runs = len(list(s.scalars(select(bdb.Run.id))))
    engine.dispose()
    ref_evals = sum(len(v[3]) for v in ref.values())  # type: ignore[index]
    text = "".join(log.read_text(errors="replace") for log in logs if log.exists())
    return {
        "jobs": grid.jobs,
        "runs": n_runs,
        "evaluations": sum(keys.values()),
        "runs_not_done": sum(v[0] != "done" for v in ours.values()) + grid.jobs - n_runs,  # type: ignore[index]
        "epochs_duplicated": sum(c - 1 for c in epochs.values()),
        "epochs_missing": grid.jobs * grid.epochs - len(epochs),
        "evaluations_duplicated": sum(c - 1 for c in keys.values()),
        "evaluations_missing": ref_evals - len(keys),
        "runs_differing_from_sequential": sum(ours.get(k) != v for k, v in ref.items()),
        "database_locked_messages": text.count("database is locked"),
        "tracebacks": text.count("Traceback"),
    }
