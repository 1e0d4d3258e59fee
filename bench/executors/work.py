"""The one worker entry point every executor runs: a job goes through ``train_job`` and
``eval_job`` under their claims, whichever engine started the process.

``run_placed(ctx, job)`` is what a SLURM job (submitit) or a Ray task calls: it trains and
evaluates one job, waiting for any other worker that holds its claim (afterwards the job
is done, or taken over here if that worker died). ``pull(ctx, jobs)`` is what a local
worker process runs (``python -m bench.executors.work TASK.pkl``): the same loop as
``bench experiment``, which takes the jobs nobody holds and comes back to the others. So
an engine only places work; the claims decide who does what, and a job done by anyone is
skipped by everyone.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.core.home import default_runs_dir
from bench.jobs.experiments import run_experiment, run_job
from bench.spec.experiments import Job
from bench.store import db as bdb
from bench.store.engine import is_sqlite
from bench.train.runtime import Runtime

# The environment a worker takes from the command that placed it (a SLURM node or a Ray
# worker may not share the driver's environment).
PASSED_ENV = ("BENCH_HOME", "BENCH_DATA_ROOT", "BENCH_LEASE_SECONDS")


@dataclass(frozen=True)
class Context:
    """Where and how placed jobs run: the same for every job of one command (picklable)."""

    db: str  # a SQLite file or a database URL (with its password: the worker connects)
    runs_dir: str | None = None
    data_root: str | None = None
    device: str = "cpu"
    runtime: Runtime | None = None
    progress: bool = False
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def context(
    engine: Engine,
    *,
    runs_dir: Path | None,
    data_root: str | None,
    device: str,
    runtime: Runtime | None,
    progress: bool = False,
) -> Context:
    """The context of a command's engine and options, with its BENCH_* environment."""
    env = tuple((k, _absolute(k, os.environ[k])) for k in PASSED_ENV if os.environ.get(k))
    return Context(
        db=_db(engine),
        runs_dir=str(Path(runs_dir or default_runs_dir()).resolve()),
        data_root=str(Path(data_root).resolve()) if data_root else None,
        device=device,
        runtime=runtime,
        progress=progress,
        env=env,
    )


def _db(engine: Engine) -> str:
    """What a worker passes to ``connect``: a SQLite file's path as it is (a URL would
    have to escape characters such as ``?`` and ``%`` in it), else the URL."""
    url = engine.url
    if is_sqlite(url) and url.database:
        return url.database
    return url.render_as_string(hide_password=False)


def _absolute(key: str, value: str) -> str:
    """Folders as absolute paths: a worker may start in another directory (Ray does)."""
    return value if key == "BENCH_LEASE_SECONDS" else str(Path(value).resolve())


def with_threads(ctx: Context, threads: int) -> Context:
    """``ctx`` with ``threads`` CPU threads per job unless --threads chose: a job shares its
    machine's cores with the others (local workers, a job's --cpus-per-job elsewhere)."""
    runtime = ctx.runtime or Runtime()
    if runtime.threads is not None:
        return ctx
    return dataclasses.replace(ctx, runtime=dataclasses.replace(runtime, threads=threads))


def _enter(ctx: Context) -> Engine:
    for key, value in ctx.env:
        os.environ[key] = value
    return bdb.connect(ctx.db)


def _runs_dir(ctx: Context) -> Path | None:
    return Path(ctx.runs_dir) if ctx.runs_dir else None


def run_placed(ctx: Context, job: Job) -> str:
    """Train and evaluate one job under its claims; returns its run name."""
    engine = _enter(ctx)
    try:
        run_job(
            engine,
            job,
            _runs_dir(ctx),
            ctx.device,
            ctx.data_root,
            ctx.progress,
            ctx.runtime,
            wait=True,
        )
    finally:
        engine.dispose()
    return job.spec.name


def pull(ctx: Context, jobs: list[Job]) -> None:
    """A local worker: every job nobody else holds, until all are done."""
    engine = _enter(ctx)

    def say(job: Job, stage: str) -> None:
        print(f"[worker {os.getpid()}] {stage}: {job.spec.name}", file=sys.stderr, flush=True)

    try:
        run_experiment(
            engine,
            jobs,
            runs_dir=_runs_dir(ctx),
            device=ctx.device,
            data_root=ctx.data_root,
            progress=ctx.progress,
            on_job=say,
            runtime=ctx.runtime,
        )
    finally:
        engine.dispose()


def write_task(path: Path, ctx: Context, jobs: list[Job]) -> Path:
    """The file a local worker reads: this command's context and jobs, pickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the DB URL
    with os.fdopen(fd, "wb") as f:
        pickle.dump((ctx, jobs), f)
    return path


def main(argv: list[str]) -> int:
    """``python -m bench.executors.work TASK.pkl``: a local worker (only on files this
    machine's `bench` wrote: unpickling runs code)."""
    if len(argv) != 1:
        print("usage: python -m bench.executors.work TASK.pkl", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        ctx, jobs = pickle.load(f)
    pull(ctx, jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
