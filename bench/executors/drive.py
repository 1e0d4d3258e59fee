"""Placing a command's jobs on an engine, waiting for them, and showing where they are.

What is done is read from the database (runs, evaluations, claims), never from the
engine: a job counts as done when its run is trained and every evaluation it asks for is
stored, whoever did it. The engine's state (from ``placements``) is shown beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from bench.executors.base import EXECUTORS, Executor, Options
from bench.executors.work import Context
from bench.jobs.experiments import describe_jobs, job_status
from bench.report.text import time_left
from bench.spec.experiments import Job
from bench.store import placements


class JobsFailed(RuntimeError):
    """Placed jobs failed or ended unfinished; the message says which and where to look."""


def check(name: str, opts: Options) -> Executor:
    """The executor ``name`` with these options (an unknown name or a bad option: a one-line
    error), before anything is placed."""
    return EXECUTORS.get(name)(opts)


def place(
    executor: Executor,
    engine: Engine,
    ctx: Context,
    jobs: list[Job],
    opts: Options,
    say: Callable[[str], None],
) -> None:
    """Hand the jobs that are not complete yet to ``executor``; with ``opts.wait``, wait for
    them, saying how many are done as that changes, and raise ``JobsFailed`` if any
    failed or is left unfinished."""
    todo = [j for j in jobs if not job_status(engine, j).complete]
    if not todo:
        say(f"all {len(jobs)} job(s) are done already")
        return
    executor.submit(engine, ctx, todo)
    say(f"placed {len(todo)} job(s) on {executor.name}")
    if not opts.wait:
        executor.close()
        say("not waiting (--no-wait): `--status` with the same options shows their progress")
        return
    try:
        wait_for(executor, engine, todo, opts.poll, say)
    except KeyboardInterrupt:
        say(
            "stopped waiting: local workers and SLURM jobs go on (Ray tasks stop with this "
            "command); `--status` shows them"
        )
        raise
    finally:
        executor.close()


def wait_for(
    executor: Executor, engine: Engine, jobs: list[Job], poll: float, say: Callable[[str], None]
) -> None:
    """Until the engine has nothing running: say how many jobs are done as that changes;
    then ``JobsFailed`` if the engine reports failures or a job is not done."""
    shown, started = -1, time.monotonic()
    while True:
        going = executor.running()
        done = sum(job_status(engine, j).complete for j in jobs)
        if done != shown:
            say(f"{done}/{len(jobs)} job(s) done{time_left(started, done, len(jobs))}")
            shown = done
        if not going:
            break
        time.sleep(poll)
    failures = executor.failures()
    left = [j.spec.name for j in jobs if not job_status(engine, j).complete]
    if failures or left:
        first = failures[0] if failures else f"{left[0]} is not done"
        raise JobsFailed(f"{len(failures)} failure(s), {len(left)} job(s) not done; first: {first}")


def status_lines(engine: Engine, jobs: list[Job]) -> list[str]:
    """``describe_jobs``' lines, each with where its job was last placed and the engine's
    state of it (an engine unreachable from here: the state recorded last)."""
    placed = placements.latest(engine, [j.spec.key for j in jobs])
    out = []
    for job, line in zip(jobs, describe_jobs(engine, jobs), strict=True):
        p = placed.get(job.spec.key)
        if p is not None:
            state = EXECUTORS.get(p.executor).state(p) if p.executor in EXECUTORS else p.state
            when = f"{p.submitted_at:%Y-%m-%d %H:%M:%S}"
            line += f"  | {p.executor} {p.external_id} (placed {when} UTC): {state}"
        out.append(line)
    return out
